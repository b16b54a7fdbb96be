"""Validation of tracking request bodies: limits, types, and an error that names the field."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote, urlsplit

from models.records import SENT_FIELDS

MAX_PATHNAME = 2048
MAX_EVENT_TYPE = 64
MAX_ID = 64
MAX_REFERRER = 2048
MAX_HOSTNAME = 253
MAX_TITLE = 500
MAX_PROPS = 30
MAX_PROP_KEY = 64
MAX_PROP_VALUE = 500
MAX_SCREEN_WIDTH = 100_000

# The event fields our tracker sends (models.records.EventFields marks them). Plausible's
# (POST /api/event) and Umami's (POST /api/send) bodies have their own names; plausible_payload
# and umami_payload map them to a TrackPayload.
KNOWN_FIELDS = SENT_FIELDS

_EVENT_TYPE = re.compile(r"[A-Za-z0-9_.:\- ]+")  # used with fullmatch: "$" lets "\n" through
_ID = re.compile(r"[A-Za-z0-9_\-.:]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON's "\ud800" escapes: not storable as UTF-8


class ValidationError(ValueError):
    """A tracking body is invalid; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@dataclass(slots=True)
class TrackPayload:
    """A tracking request body that passed validation."""

    website_id: str
    event_type: str
    pathname: str
    visitor_id: str = ""
    session_id: str = ""
    referrer: str = ""
    hostname: str = ""
    title: str = ""
    screen_width: int | None = None
    props: dict[str, str | int | float | bool | None] = field(default_factory=dict)
    query: str = ""  # the query string split off the pathname (utm_source, ref)
    interactive: bool = True
    revenue_amount: str | None = None
    revenue_currency: str | None = None


def decode_body(body: bytes) -> dict[str, Any]:
    """Parse a JSON object from the body (JSON or text/plain holding JSON)."""
    if not body.strip():
        raise ValidationError("body", "is empty; send a JSON object")
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # also integers past Python's 4,300-digit limit
        raise ValidationError("body", "is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("body", "must be a JSON object")
    return data


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are Python's JSON extensions, not JSON."""
    raise ValueError(f"{name} is not JSON")


def _string(data: dict[str, Any], name: str, limit: int, *, required: bool = False) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise ValidationError(name, "is required")
        return ""
    if not isinstance(value, str):
        raise ValidationError(name, "must be a string")
    if len(value) > limit:
        raise ValidationError(name, f"is longer than {limit} characters")
    if "\x00" in value:
        raise ValidationError(name, "must not contain NUL characters")
    if _SURROGATE.search(value):
        raise ValidationError(name, "must not contain unpaired surrogates")
    return value


def _identifier(data: dict[str, Any], name: str) -> str:
    value = _string(data, name, MAX_ID)
    if value and not _ID.fullmatch(value):
        raise ValidationError(name, "may only hold letters, digits and - _ . :")
    return value


def _props(value: Any) -> dict[str, str | int | float | bool | None]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("props", "must be an object")
    if len(value) > MAX_PROPS:
        raise ValidationError("props", f"has more than {MAX_PROPS} keys")
    props: dict[str, str | int | float | bool | None] = {}
    for key, item in value.items():
        if not key or len(key) > MAX_PROP_KEY or _CONTROL.search(key) or _SURROGATE.search(key):
            raise ValidationError("props", f"keys must be 1–{MAX_PROP_KEY} printable characters")
        if isinstance(item, str):
            if len(item) > MAX_PROP_VALUE or "\x00" in item or _SURROGATE.search(item):
                raise ValidationError(f"props.{key}", f"must be at most {MAX_PROP_VALUE} "
                                      "characters, without NUL")
        elif isinstance(item, bool) or item is None:
            pass
        elif isinstance(item, int | float):
            if isinstance(item, float) and item != item or abs(item) > 1e15:
                raise ValidationError(f"props.{key}", "is not a usable number")
        else:
            raise ValidationError(f"props.{key}", "must be a string, number, boolean or null")
        props[key] = item
    return props


def validate(data: dict[str, Any]) -> TrackPayload:
    """Check a decoded body against the limits; raise ValidationError naming the field."""
    website_id = _string(data, "website_id", MAX_ID, required=True)
    event_type = _string(data, "event_type", MAX_EVENT_TYPE, required=True)
    if not _EVENT_TYPE.fullmatch(event_type):
        raise ValidationError("event_type", "may only hold letters, digits, spaces and - _ . :")
    pathname = _string(data, "pathname", MAX_PATHNAME, required=True)
    if not pathname.startswith("/"):
        raise ValidationError("pathname", "must start with /")
    if _CONTROL.search(pathname):
        raise ValidationError("pathname", "must not contain control characters")
    pathname, _, query = pathname.partition("?")
    pathname = pathname.split("#", 1)[0] or "/"
    screen_width = data.get("screen_width")
    if isinstance(screen_width, float) and screen_width.is_integer():
        screen_width = int(screen_width)  # JSON has one number type: 1280.0 is 1280
    if screen_width is not None and (
        isinstance(screen_width, bool) or not isinstance(screen_width, int)
        or not 0 < screen_width <= MAX_SCREEN_WIDTH
    ):
        raise ValidationError("screen_width",
                              f"must be a whole number from 1 to {MAX_SCREEN_WIDTH}")
    return TrackPayload(
        website_id=website_id,
        event_type=event_type,
        pathname=pathname,
        visitor_id=_identifier(data, "visitor_id"),
        session_id=_identifier(data, "session_id"),
        referrer=_string(data, "referrer", MAX_REFERRER),
        hostname=_string(data, "hostname", MAX_HOSTNAME).lower(),
        title=_string(data, "title", MAX_TITLE),
        screen_width=screen_width,
        props=_props(data.get("props")),
        query=query.split("#", 1)[0],
    )


# Plausible's Events API (POST /api/event) and Umami's (POST /api/send): their bodies mapped to
# a TrackPayload, with the limits those products document.
PLAUSIBLE_MAX_PROPS = 30
PLAUSIBLE_MAX_PROP_KEY_BYTES = 300
PLAUSIBLE_MAX_PROP_VALUE_BYTES = 2000
ENGAGEMENT = "engagement"
MAX_ENGAGED_MS = 30 * 60 * 1000  # one engagement event reports at most half an hour
_CURRENCY = re.compile(r"[A-Z]{3}")
_SCREEN = re.compile(r"(\d{1,6})x\d{1,6}")


def _first(data: dict[str, Any], *names: str) -> Any:
    """The value of the first of ``names`` present and not null (Plausible's short/long names)."""
    for name in names:
        if data.get(name) is not None:
            return data[name]
    return None


def _checked_name(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field_name, "is required")
    value = value.strip()
    if len(value) > MAX_EVENT_TYPE or not _EVENT_TYPE.fullmatch(value):
        raise ValidationError(field_name, f"must be at most {MAX_EVENT_TYPE} characters: "
                              "letters, digits, spaces and - _ . :")
    return value


def _url_parts(value: Any, field_name: str, *, base_host: str = "") -> tuple[str, str, str, str]:
    """(host, path, query, fragment) of a URL; a path-only URL is taken on ``base_host``."""
    if not isinstance(value, str) or not value:
        raise ValidationError(field_name, "is required")
    if len(value) > MAX_PATHNAME or "\x00" in value or _SURROGATE.search(value):
        raise ValidationError(field_name, f"must be a URL of at most {MAX_PATHNAME} characters")
    try:
        parts = urlsplit(value if "://" in value or not base_host
                         else f"https://{base_host}/{value.lstrip('/')}")
        host = (parts.hostname or "").lower()
    except ValueError:
        raise ValidationError(field_name, "is not a valid URL") from None
    if parts.scheme.lower() == "data":
        raise ValidationError(field_name, "scheme is not allowed")
    path = unquote(parts.path).rstrip() or "/"
    if not path.startswith("/"):
        path = "/" + path
    if _CONTROL.search(path):
        raise ValidationError(field_name, "must not contain control characters")
    return host, path[:MAX_PATHNAME], parts.query, unquote(parts.fragment)


def _scalar_props(value: Any, *, max_keys: int, max_key: int, max_value: int) -> dict[str, Any]:
    """Custom properties as Plausible keeps them: a JSON object (or a string holding one) whose
    empty, null, list and object values are left out; the limits are in UTF-8 bytes."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    props: dict[str, Any] = {}
    for key, item in value.items():
        if item is None or item == "" or isinstance(item, list | dict):
            continue
        if isinstance(item, float) and (item != item or abs(item) > 1e15):
            continue
        if not key or len(key.encode()) > max_key or _CONTROL.search(key) \
                or _SURROGATE.search(key):
            raise ValidationError("props", f"keys must be 1–{max_key} bytes, printable")
        if isinstance(item, str) and (len(item.encode("utf-8", "replace")) > max_value
                                      or "\x00" in item or _SURROGATE.search(item)):
            raise ValidationError("props", f"values must be at most {max_value} bytes, "
                                  "without NUL")
        props[key] = item
    if len(props) > max_keys:
        raise ValidationError("props", f"must have at most {max_keys} keys")
    return props


def revenue(value: Any) -> tuple[str, str] | None:
    """(amount as decimal text, ISO 4217 currency) of ``{"amount", "currency"}``, or None when
    it is not usable (Plausible drops a bad revenue silently and keeps the event)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict):
        return None
    currency, amount = value.get("currency"), value.get("amount")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency.strip().upper()):
        return None
    if isinstance(amount, bool) or not isinstance(amount, int | float | str):
        return None
    try:
        number = Decimal(str(amount).strip())
    except InvalidOperation:
        return None
    if not number.is_finite() or abs(number) >= Decimal(10) ** 14:
        return None
    number = number.quantize(Decimal("0.000001")).normalize()
    return format(number, "f"), currency.strip().upper()


def _whole(value: Any, field_name: str, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field_name, "must be a whole number")
    return min(max(value, low), high)


def plausible_payload(data: dict[str, Any]) -> tuple[list[str], TrackPayload]:
    """Plausible's event body → (the domains it counts for, the payload without website_id)."""
    name = _checked_name(_first(data, "n", "name"), "name")
    host, path, query, fragment = _url_parts(_first(data, "u", "url"), "url")
    if _first(data, "h", "hashMode") == 1 and fragment:
        path = (path + "#" + fragment)[:MAX_PATHNAME]
    raw_domain = _first(data, "d", "domain")
    if raw_domain is None:
        raw_domain = host
    if not isinstance(raw_domain, str):
        raise ValidationError("domain", "must be a string")
    domains = [d.strip().lower().removeprefix("www.") for d in raw_domain.split(",")]
    domains = list(dict.fromkeys(d for d in domains if d))[:10]
    if not domains:
        raise ValidationError("domain", "can't be blank")
    for domain in domains:
        if len(domain) > MAX_HOSTNAME or _CONTROL.search(domain) or _SURROGATE.search(domain):
            raise ValidationError("domain", f"must be host names of at most {MAX_HOSTNAME} "
                                  "printable characters")
    referrer = _first(data, "r", "referrer")
    if referrer is not None and not isinstance(referrer, str):
        raise ValidationError("referrer", "must be a string")
    if referrer and (len(referrer) > MAX_REFERRER or "\x00" in referrer
                     or _SURROGATE.search(referrer)):
        raise ValidationError("referrer", f"must be at most {MAX_REFERRER} characters")
    if name == ENGAGEMENT:
        props: dict[str, Any] = {
            "sd": _whole(data.get("sd", 0), "sd", 0, 100),
            "e": _whole(data.get("e", 0), "e", 0, MAX_ENGAGED_MS),
        }
    else:
        props = _scalar_props(_first(data, "p", "props", "m", "meta"),
                              max_keys=PLAUSIBLE_MAX_PROPS,
                              max_key=PLAUSIBLE_MAX_PROP_KEY_BYTES,
                              max_value=PLAUSIBLE_MAX_PROP_VALUE_BYTES)
    money = revenue(_first(data, "$", "revenue")) if name != ENGAGEMENT else None
    return domains, TrackPayload(
        website_id="",
        event_type=name,
        pathname=path,
        referrer=referrer or "",
        hostname=host[:MAX_HOSTNAME],
        props=props,
        query=query,
        interactive=_first(data, "i", "interactive") is not False and name != ENGAGEMENT,
        revenue_amount=money[0] if money else None,
        revenue_currency=money[1] if money else None,
    )


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Umami's nested event data as flat keys ("cart.total"); lists become JSON text."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, name + "."))
        elif isinstance(value, list):
            flat[name] = json.dumps(value, ensure_ascii=False)
        else:
            flat[name] = value
    return flat


def umami_payload(data: dict[str, Any]) -> TrackPayload | None:
    """Umami's ``{"type", "payload"}`` body → the payload; None for an ``identify`` call (its
    session data is not stored)."""
    kind = data.get("type")
    if kind == "identify":
        return None
    if kind != "event":
        raise ValidationError("type", "must be \"event\" or \"identify\"")
    body = data.get("payload")
    if not isinstance(body, dict):
        raise ValidationError("payload", "must be an object")
    website_id = _string(body, "website", MAX_ID, required=True)
    hostname = _string(body, "hostname", MAX_HOSTNAME).lower()
    host, path, query, _ = _url_parts(body.get("url") or "/", "url",
                                      base_host=hostname or "localhost")
    name = body.get("name")
    event_type = "pageview" if name is None or name == "" else _checked_name(name, "name")
    extra = body.get("data")
    if extra is not None and not isinstance(extra, dict):
        raise ValidationError("data", "must be an object")
    props = _scalar_props(_flat(extra or {}), max_keys=PLAUSIBLE_MAX_PROPS,
                          max_key=PLAUSIBLE_MAX_PROP_KEY_BYTES,
                          max_value=PLAUSIBLE_MAX_PROP_VALUE_BYTES)
    screen = _SCREEN.fullmatch(_string(body, "screen", 32))
    width = int(screen.group(1)) if screen else 0
    return TrackPayload(
        website_id=website_id,
        event_type=event_type,
        pathname=path,
        referrer=unquote(_string(body, "referrer", MAX_REFERRER)),
        hostname=hostname or host,
        title=unquote(_string(body, "title", MAX_TITLE * 3))[:MAX_TITLE],
        screen_width=width if 0 < width <= MAX_SCREEN_WIDTH else None,
        props=props,
        query=query,
    )
