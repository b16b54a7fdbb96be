"""Read-side queries: what the live view and the replay read from the database."""

from __future__ import annotations

from typing import Any, cast

from models.entities import Event, EventCounter
from models.records import EventRecord


def events_after(website_id: str, after_seq: int, limit: int) -> list[EventRecord]:
    """The website's events with a sequence number above ``after_seq``, oldest first, at most
    ``limit``."""
    rows = (Event.select().where((Event.website == website_id) & (Event.seq > after_seq))
            .order_by(Event.seq).limit(limit).dicts())
    return [EventRecord.from_row(cast(dict[str, Any], row)) for row in rows]


def events_since(website_id: str, since_ms: int, limit: int) -> list[EventRecord]:
    """The website's newest events at or after ``since_ms`` (at most ``limit``), oldest first."""
    rows = (Event.select().where((Event.website == website_id) & (Event.ts >= since_ms))
            .order_by(Event.seq.desc()).limit(limit).dicts())
    return [EventRecord.from_row(cast(dict[str, Any], row)) for row in reversed(list(rows))]


def last_seq(website_id: str) -> int:
    """The sequence number of the website's newest committed event (0 before its first)."""
    value = (EventCounter.select(EventCounter.last_seq)
             .where(EventCounter.website == website_id).scalar())
    return int(value or 0)


def last_seqs() -> dict[str, int]:
    """Every website's newest committed sequence number (websites without events are absent)."""
    query = EventCounter.select(EventCounter.website, EventCounter.last_seq).tuples()
    return {str(row[0]): int(row[1]) for row in cast(list[tuple[Any, Any]], query)}

