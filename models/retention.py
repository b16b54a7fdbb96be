"""Retention: raw events older than ``PULSE_RETENTION_DAYS`` go, in small batches (visits and
rollups stay, so the reports of those days remain)."""

from __future__ import annotations

from models.db import database
from models.entities import Event, Website

RETENTION_BATCH = 5000


def delete_old_events(before_ms: int, batch: int = RETENTION_BATCH) -> int:
    """Delete about ``batch`` events older than ``before_ms`` of one website, oldest first, in
    one short transaction; return how many went (0: nothing is left to delete)."""
    website_ids: list[str] = [w.id for w in Website.select(Website.id)]
    for website_id in website_ids:
        older = (Event.select(Event.ts)
                 .where((Event.website == website_id) & (Event.ts < before_ms))
                 .order_by(Event.ts))
        oldest = older.limit(1).scalar()
        if oldest is None:
            continue
        following = older.offset(batch).limit(1).scalar()  # the (batch + 1)-th oldest
        cutoff = before_ms if following is None else max(following, oldest + 1)
        with database.atomic():
            return int(Event.delete().where((Event.website == website_id)
                                            & (Event.ts < cutoff)).execute())
    return 0
