"""Read-side queries: what the live view and the replay read from the database."""

from __future__ import annotations

from typing import Any, cast

from models.entities import Event
from models.records import EventRecord


def events_after(website_id: str, after_id: int, limit: int) -> list[EventRecord]:
    """The website's events with an id above ``after_id``, oldest first, at most ``limit``."""
    rows = (Event.select().where((Event.website == website_id) & (Event.id > after_id))
            .order_by(Event.id).limit(limit).dicts())
    return [EventRecord.from_row(cast(dict[str, Any], row)) for row in rows]


def events_since(website_id: str, since_ms: int, limit: int) -> list[EventRecord]:
    """The website's newest events at or after ``since_ms`` (at most ``limit``), oldest first."""
    rows = (Event.select().where((Event.website == website_id) & (Event.ts >= since_ms))
            .order_by(Event.id.desc()).limit(limit).dicts())
    return [EventRecord.from_row(cast(dict[str, Any], row)) for row in reversed(list(rows))]


def last_seq(website_id: str) -> int:
    """The id of the website's newest committed event (0 before its first)."""
    return int(Event.select(Event.id).where(Event.website == website_id)
               .order_by(Event.id.desc()).scalar() or 0)


def last_seqs() -> dict[str, int]:
    """Every website's newest committed event id (websites without events are absent)."""
    from peewee import fn

    query = Event.select(Event.website, fn.MAX(Event.id)).group_by(Event.website).tuples()
    return {str(row[0]): int(row[1]) for row in cast(Any, query)}
