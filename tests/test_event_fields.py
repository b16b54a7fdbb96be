"""The event's fields are defined once (models.records.EventFields): the tracking endpoint, the
stored row, the committed record and its JSON all follow that one list."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from backend.ingest.validation import KNOWN_FIELDS
from backend.ingest.writer import EventWriter
from backend.metrics import Metrics
from models.entities import Event, now_ms
from models.records import EVENT_FIELDS, EventFields, EventRecord, NewEvent
from models.reports import events_after, events_since


def full_event(website_id: str) -> NewEvent:
    """An event with every field set to something other than its default."""
    return NewEvent(website_id, 1_700_000_000_123, "signup", "/join\\n", "v-1", "s-1",
                    "https://t.co/x?a=1\tb", "twitter", "example.com", "Join ü\t\\N \r\n 😀",
                    1280, "mobile", "Chrome", "Android", "DE",
                    {"plan": "pro\n\\", "n": 2, "ok": True, "x": None, "f": 1.5},
                    False, "15.99", "EUR")


def test_the_event_table_has_exactly_the_fields() -> None:
    columns = {f.column_name for f in Event._meta.sorted_fields}
    assert columns == {"id", "seq", *EVENT_FIELDS}
    assert EVENT_FIELDS == tuple(f.name for f in dataclasses.fields(EventFields))
    assert [f.name for f in dataclasses.fields(EventRecord)] == ["id", *EVENT_FIELDS]
    assert KNOWN_FIELDS == {"website_id", "event_type", "pathname", "visitor_id", "session_id",
                            "referrer", "hostname", "title", "screen_width", "props"}


@pytest.mark.gen_test
async def test_every_field_survives_the_store_and_reads_back(services: Any,
                                                             website: Any) -> None:
    event = dataclasses.replace(full_event(website.id), ts=now_ms())
    writer = EventWriter(lambda _: None, Metrics(), batch_delay=0.001)
    committed = await writer.write(event)
    await writer.close()
    assert committed == event.stored(1)
    assert await asyncio.to_thread(events_after, website.id, 0, 10) == [committed]
    assert events_since(website.id, event.ts, 10) == [committed]


def test_the_json_form_is_the_public_fields() -> None:
    record = full_event("w").stored(7)
    data = record.to_json()
    assert list(data) == ["id", "website_id", "timestamp", "event_type", "pathname",
                          "visitor_id", "session_id", "referrer", "source", "hostname", "title",
                          "device", "browser", "os", "country", "props", "interactive", "revenue"]
    assert data["interactive"] is False
    assert data["revenue"] == {"amount": "15.99", "currency": "EUR"}
    assert data["id"] == 7 and data["timestamp"] == "2023-11-14T22:13:20.123Z"
    assert data["props"] == {"plan": "pro\n\\", "n": 2, "ok": True, "x": None, "f": 1.5}
