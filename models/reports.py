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
