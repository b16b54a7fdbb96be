"""Validation of tracking request bodies: limits, types, and an error that names the field."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

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

# The event fields a tracker sends (models.records.EventFields marks them); Plausible's tracker
# (POST /api/event) uses short names, mapped in plausible_body.
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
