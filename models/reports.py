"""Read-side queries: what the live view and the replay read from the database."""

from __future__ import annotations

from typing import Any, cast

import peewee

from models.entities import Event, EventCounter
from models.records import EVENT_FIELDS, EventRecord

# The columns of an EventRecord: the sequence number, then EVENT_FIELDS in order.
_RECORD_COLUMNS = [Event.seq, *(Event._meta.columns[name] for name in EVENT_FIELDS)]


def _records(query: peewee.ModelSelect[Event]) -> list[EventRecord]:
    rows = cast(list[tuple[Any, ...]], list(query.tuples()))
    return [EventRecord.from_values(row[0], row[1:]) for row in rows]


def events_after(website_id: str, after_seq: int, limit: int) -> list[EventRecord]:
    """The website's events with a sequence number above ``after_seq``, oldest first, at most
    ``limit``."""
    return _records(Event.select(*_RECORD_COLUMNS)
                    .where((Event.website == website_id) & (Event.seq > after_seq))
                    .order_by(Event.seq).limit(limit))


def events_since(website_id: str, since_ms: int, limit: int) -> list[EventRecord]:
    """The website's newest events at or after ``since_ms`` (at most ``limit``), oldest first."""
    newest = _records(Event.select(*_RECORD_COLUMNS)
                      .where((Event.website == website_id) & (Event.ts >= since_ms))
                      .order_by(Event.seq.desc()).limit(limit))
    return newest[::-1]


def last_seq(website_id: str) -> int:
    """The sequence number of the website's newest committed event (0 before its first)."""
    value = (EventCounter.select(EventCounter.last_seq)
             .where(EventCounter.website == website_id).scalar())
    return int(value or 0)


def last_seqs() -> dict[str, int]:
    """Every website's newest committed sequence number (websites without events are absent)."""
    query = EventCounter.select(EventCounter.website, EventCounter.last_seq).tuples()
    return {str(row[0]): int(row[1]) for row in cast(list[tuple[Any, Any]], query)}

