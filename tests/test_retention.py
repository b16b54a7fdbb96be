"""PULSE_RETENTION_DAYS: old raw events go in small batches off the loop; visits stay."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from backend.ingest.writer import store_batch
from models.entities import Event, Visit, Website, now_ms
from models.records import NewEvent
from models.retention import delete_old_events
from models.websites import create_website
from tests.server_support import ThreadedServer

DAY = 86_400_000


def pageview(website_id: str, ts: int, visitor: str) -> NewEvent:
    return NewEvent(website_id=website_id, ts=ts, event_type="pageview", pathname="/",
                    visitor_id=visitor, session_id=visitor)


def test_old_events_go_in_batches_oldest_first(services: Any, website: Website) -> None:
    other = create_website("other.example")
    now = now_ms()
    store_batch([pageview(website.id, now - 10 * DAY + n, f"old{n}") for n in range(5)]
                + [pageview(website.id, now - 10 * DAY + 3, "tie"),
                   pageview(website.id, now, "new"), pageview(other.id, now - 9 * DAY, "x")])
    before = now - 5 * DAY
    first = delete_old_events(before, batch=2)  # one website's oldest: websites in any order
    left = {e.visitor_id for e in Event.select()}
    assert (first, left) in ((2, {"old2", "old3", "old4", "tie", "new", "x"}),
                             (1, {"old0", "old1", "old2", "old3", "old4", "tie", "new"}))
    removed = first
    while (count := delete_old_events(before, batch=2)) > 0:
        assert count <= 3  # a batch, or one millisecond holding more than a batch
        removed += count
    assert removed == 7
    assert [e.visitor_id for e in Event.select()] == ["new"]
    assert Visit.select().count() == 8  # the reports of those days keep their visits


def test_the_server_deletes_old_events_by_itself(settings: Any) -> None:
    server = ThreadedServer(dataclasses.replace(settings, retention_days=3, port=0,
                                                host="127.0.0.1"))
    website = create_website("kept.example")
    now = now_ms()
    store_batch([pageview(website.id, now - 4 * DAY, "old"), pageview(website.id, now, "new")])
    server.start()
    try:
        for _ in range(600):
            if server.call(lambda: Event.select().count()) == 1:
                break
            time.sleep(0.05)
        assert server.call(lambda: [e.visitor_id for e in Event.select()]) == ["new"]
    finally:
        server.stop()
