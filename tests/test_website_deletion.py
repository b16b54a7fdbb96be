"""Deleting a website from a running server: its events go in batches (each its own short
transaction), its open live streams end, and nothing of it stays in the hub."""

from __future__ import annotations

from typing import Any

import pytest

from backend.website_deletion import delete_website
from models import websites
from models.entities import Event, Membership, Website
from models.websites import create_website
from tests.conftest import event_body, post_event
from tests.sse_client import SSEReader


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

    removed = await delete_website(services, website.id)

    assert removed == 3
    await reader.wait_ended()
    assert len(services.streams) == 0
    assert not services.hub.has_stats(website.id)
    assert services.hub.replay_from_buffer(website.id, 0, 10) in (None, [])
    assert Website.get_or_none(Website.id == website.id) is None
    assert Membership.select().where(Membership.website == website.id).count() == 0
    assert [e.pathname for e in Event.select()] == ["/kept"]
    response = await post_event(http_client, base_url, event_body(website.id))
    assert response.code == 404


def test_events_are_deleted_in_batches_of_short_transactions(website: Any,
                                                             monkeypatch: Any) -> None:
    Event.insert_many([{"website": website.id, "ts": i, "event_type": "pageview",
                        "pathname": f"/{i}", "visitor_id": "v", "session_id": "s"}
                       for i in range(25)]).execute()
    transactions = []
    proxy = type(websites.database)
    atomic = proxy.atomic

    def counted_atomic(self: Any, *args: Any, **kwargs: Any) -> Any:
        transactions.append(Event.select().where(Event.website == website.id).count())
        return atomic(self, *args, **kwargs)

    monkeypatch.setattr(proxy, "atomic", counted_atomic)
    assert websites.delete_website(website.id, batch=10, pause=0) == 25
    # Events left when each transaction began: 25, 15, 5, then the website with what is left.
    assert transactions == [25, 15, 5, 0]


def test_batched_deletion_on_postgresql(postgres_url: str) -> None:
    from models import setup_database

    setup_database(postgres_url)
    try:
        doomed = create_website("doomed.example")
        kept = create_website("kept.example")
        rows = [{"website": site.id, "ts": i, "event_type": "pageview", "pathname": f"/{i}",
                 "visitor_id": "v", "session_id": "s"} for site in (doomed, kept)
                for i in range(25)]
        Event.insert_many(rows).execute()
        assert websites.delete_website(doomed.id, batch=10, pause=0) == 25
        assert Website.get_or_none(Website.id == doomed.id) is None
        assert Event.select().where(Event.website == kept.id).count() == 25
        assert Event.select().count() == 25
    finally:
        websites.database.obj.close()
