"""Events as small typed records: what the writer stores and the hub broadcasts."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from operator import attrgetter
from typing import Any

from models.channels import NO_CAMPAIGN, Campaign

SENT = {"sent": True}  # a field the tracker sends: the tracking endpoint accepts it by name


@dataclass(frozen=True)
class EventFields:
    """THE list of an event's stored fields, the one place to add one. Each field is a column
    of the ``event`` table by the same name (add it to ``models.entities.Event`` too, with a
    migration: a check at import says so), a value of ``NewEvent`` and ``EventRecord``, a key
    of the ``new_event`` JSON unless ``public=False``, and a body field of the tracking
    endpoint when its metadata says ``sent``. Add new fields at the end, with a default."""

    __slots__ = ()  # the concrete records below have the slots

    website_id: str = field(metadata=SENT)
    ts: int  # UTC, milliseconds since the epoch; public as ``timestamp``
    event_type: str = field(metadata=SENT)
    pathname: str = field(metadata=SENT)
    visitor_id: str = field(metadata=SENT)
    session_id: str = field(metadata=SENT)
    referrer: str = field(default="", metadata=SENT)
    source: str = "direct"
    hostname: str = field(default="", metadata=SENT)
    title: str = field(default="", metadata=SENT)
    screen_width: int | None = field(default=None, metadata={**SENT, "public": False})
    device: str = ""
    browser: str = ""
    os: str = ""
    country: str = ""
    props: dict[str, Any] = field(default_factory=dict, metadata={**SENT, "json": True})
    interactive: bool = True  # False: Plausible's ``i: false``, does not end a bounce
    # A decimal number as text ("15.99") with its ISO 4217 currency; public as ``revenue``.
    revenue_amount: str | None = field(default=None, metadata={"public": False, "decimal": True})
    revenue_currency: str | None = field(default=None, metadata={"public": False})
    # The visit this event belongs to: set by models.visits.update_visits in the writer's
    # transaction, just before the event is stored.
    visit_id: int | None = field(default=None, metadata={"public": False})


EVENT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EventFields))
SENT_FIELDS = frozenset(f.name for f in fields(EventFields) if f.metadata.get("sent"))
_JSON_FIELDS = frozenset(f.name for f in fields(EventFields) if f.metadata.get("json"))
_JSON_INDEXES = [i for i, name in enumerate(EVENT_FIELDS) if name in _JSON_FIELDS]
_DECIMAL_FIELDS = frozenset(f.name for f in fields(EventFields) if f.metadata.get("decimal"))
_PUBLIC = [f.name for f in fields(EventFields) if f.metadata.get("public", True)]
_PUBLIC_KEYS = ("id", *("timestamp" if name == "ts" else name for name in _PUBLIC))
_public_values = attrgetter("id", *_PUBLIC)
_stored_values = attrgetter(*EVENT_FIELDS)


def _encode(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _decimal_text(value: Any) -> str | None:
    """A stored decimal (Decimal, float or text) as plain decimal text ("15.99")."""
    return None if value is None else format(Decimal(str(value)).normalize(), "f")


def _from_column(name: str, value: Any) -> Any:
    if name in _JSON_FIELDS:
        return json.loads(value or "{}")
    if name in _DECIMAL_FIELDS:
        return _decimal_text(value)
    if name == "interactive":
        return bool(value) if value is not None else True
    return value


@dataclass(frozen=True)
class _Numbered:
    __slots__ = ()

    id: int  # the event's sequence number within its website (1, 2, 3…)


@dataclass(slots=True, frozen=True)
class NewEvent(EventFields):
    """A validated, enriched event waiting to be stored (it has no id yet)."""

    # Not columns of the event: the landing page's campaign and channel, kept on the visit.
    campaign: Campaign = NO_CAMPAIGN
    channel: str = "Direct"

    def set_visit(self, visit_id: int | None) -> None:
        """Attach the event to its visit (the one field set after the event was made: the
        writer's transaction finds the visit just before it stores the event)."""
        object.__setattr__(self, "visit_id", visit_id)

    def values(self) -> tuple[Any, ...]:
        """The column values of this event, in ``EVENT_FIELDS`` order."""
        values = list(_stored_values(self))
        for index in _JSON_INDEXES:
            values[index] = _encode(values[index])
        return tuple(values)

    def row(self) -> dict[str, Any]:
        """The database row for this event, by column name."""
        return dict(zip(EVENT_FIELDS, self.values(), strict=True))

    def stored(self, seq: int) -> EventRecord:
        """The committed record of this event, now that it has its website's sequence number."""
        return EventRecord(seq, *_stored_values(self))


@lru_cache(maxsize=256)
def _iso_second(second: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a UTC epoch second (events of one second share it)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def iso_ms(ts: int) -> str:
    """An epoch-milliseconds time as ISO 8601 UTC with milliseconds and a ``Z``."""
    second, ms = divmod(ts, 1000)
    return f"{_iso_second(second)}.{ms:03d}Z"


@dataclass(slots=True, frozen=True)
class EventRecord(EventFields, _Numbered):
    """A committed event, as broadcast to live subscribers. Its ``id`` (the first field) is the
    event's sequence number within its website: the SSE ``id:`` and ``Last-Event-ID``."""

    @property
    def timestamp(self) -> datetime:
        """The event's UTC time."""
        return datetime.fromtimestamp(self.ts / 1000, UTC)

    def to_json(self) -> dict[str, Any]:
        """The public JSON form of the event (the ``data`` of a ``new_event`` frame)."""
        data = dict(zip(_PUBLIC_KEYS, _public_values(self), strict=True))
        data["timestamp"] = iso_ms(self.ts)
        data["revenue"] = None if self.revenue_amount is None else {
            "amount": self.revenue_amount, "currency": self.revenue_currency}
        return data

    @classmethod
    def from_values(cls, seq: int, values: Sequence[Any]) -> EventRecord:
        """Build a record from stored column values in ``EVENT_FIELDS`` order."""
        return cls(seq, *(_from_column(name, v)
                          for name, v in zip(EVENT_FIELDS, values, strict=True)))
