"""Deleting a website from a running server: its events go in batches (each its own short
transaction), its open live streams end, and nothing of it stays in the hub."""

from __future__ import annotations

from typing import Any

import pytest

from backend.ingest.writer import store_batch
from backend.live.hub import record_size
from backend.website_deletion import delete_website
from models import websites
from models.entities import Event, EventCounter, Membership, Visit, Website
from models.records import NewEvent
from models.reports import events_after
from models.websites import create_website
from tests.conftest import event_body, post_event
from tests.sse_client import SSEReader


def store_pageviews(website_id: str, count: int) -> None:
    """``count`` pageviews of one website, stored as the writer stores them (with their
    sequence numbers)."""
    store_batch([NewEvent(website_id=website_id, ts=i, event_type="pageview", pathname=f"/{i}",
                          visitor_id="v", session_id="s") for i in range(count)])


@pytest.mark.gen_test
async def test_deleting_a_website_ends_its_streams_and_forgets_it(
        http_client: Any, base_url: str, website: Any, token: str, services: Any) -> None:
    other = create_website("other.example.org")
    for path in ("/a", "/b", "/c"):
        await post_event(http_client, base_url, event_body(website.id, pathname=path))
    await post_event(http_client, base_url, event_body(other.id, pathname="/kept"))
    reader = SSEReader(f"{base_url}/admin/analytics/live?website_id={website.id}",
                       {"Authorization": f"Bearer {token}"}).start()
    await reader.wait_for(lambda r: r.of_type("connected"))
    assert services.hub.has_stats(website.id)
    # The hub's replay buffer holds the events of both websites; only the other's stay.
    sizes = {site: sum(record_size(e) for e in events_after(site, 0, 10))
             for site in (website.id, other.id)}
    assert services.hub.buffered_bytes == sizes[website.id] + sizes[other.id]
    assert services.hub.last_delivered(website.id) == 3

    removed = await delete_website(services, website.id)

    assert removed == 3
    await reader.wait_ended()
    assert len(services.streams) == 0
    assert not services.hub.has_stats(website.id)
    assert services.hub.buffered_bytes == sizes[other.id]
    assert services.hub.last_delivered(website.id) == 0
    assert Website.get_or_none(Website.id == website.id) is None
    assert Membership.select().where(Membership.website == website.id).count() == 0
    assert [e.pathname for e in Event.select()] == ["/kept"]
    response = await post_event(http_client, base_url, event_body(website.id))
    assert response.code == 404


def test_events_are_deleted_in_batches_of_short_transactions(website: Any,
                                                             monkeypatch: Any) -> None:
    store_pageviews(website.id, 25)
    transactions = []
    proxy = type(websites.database)
    atomic = proxy.atomic

    def counted_atomic(self: Any, *args: Any, **kwargs: Any) -> Any:
        transactions.append(Event.select().where(Event.website == website.id).count())
        return atomic(self, *args, **kwargs)

    monkeypatch.setattr(proxy, "atomic", counted_atomic)
    assert websites.delete_website(website.id, batch=10, pause=0) == 25
    # Events left when each transaction began: 25, 15, 5, then its visits (a batch), its
    # per-page rollups (a batch), then the website with what is left.
    assert transactions == [25, 15, 5, 0, 0, 0]
    assert Visit.select().where(Visit.website == website.id).count() == 0


def test_batched_deletion_on_postgresql(postgres_url: str) -> None:
    from models import setup_database

    setup_database(postgres_url)
    try:
        doomed = create_website("doomed.example")
        kept = create_website("kept.example")
        for site in (doomed, kept):
            store_pageviews(site.id, 25)
        assert websites.delete_website(doomed.id, batch=10, pause=0) == 25
        assert Website.get_or_none(Website.id == doomed.id) is None
        assert EventCounter.get_or_none(EventCounter.website == doomed.id) is None
        assert Event.select().where(Event.website == kept.id).count() == 25
        assert Event.select().count() == 25
    finally:
        websites.database.obj.close()
