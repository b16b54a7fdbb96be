"""Last-Event-ID the server cannot honour: a ``reset`` frame with the current state, then live
events — never silence."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.conftest import event_body, post_event
from tests.sse_client import SSEReader
from tests.test_live_stream import bearer, live_url, post_many


@pytest.mark.gen_test
async def test_an_id_ahead_of_the_newest_event_gets_a_reset_then_live_events(
        http_client: Any, base_url: str, website: Any, token: str) -> None:
    await post_many(http_client, base_url, website.id, 3)
    reader = SSEReader(live_url(base_url, website.id),
                       bearer(token, **{"Last-Event-ID": "1000000"})).start()
    try:
        await reader.wait_for(lambda r: r.of_type("reset"))
        assert not reader.of_type("connected")
        state = reader.of_type("reset")[0].data["data"]
        assert state["currentVisitors"] == 1
        assert [e["pathname"] for e in state["recentEvents"]] == ["/page/3", "/page/2",
                                                                   "/page/1"]
        await post_event(http_client, base_url, event_body(website.id, pathname="/after"))
        await reader.wait_for(lambda r: r.of_type("new_event"))
        frame = reader.of_type("new_event")[0]
        assert frame.data["data"]["pathname"] == "/after" and frame.id == 4
    finally:
        reader.close()


@pytest.fixture
def settings(settings: Any) -> Any:
    return dataclasses.replace(settings, replay_limit=5)


@pytest.mark.gen_test
async def test_an_id_older_than_the_replay_limit_gets_a_reset_then_live_events(
        http_client: Any, base_url: str, website: Any, token: str) -> None:
    ids = await post_many(http_client, base_url, website.id, 12)
    reader = SSEReader(live_url(base_url, website.id),
                       bearer(token, **{"Last-Event-ID": str(ids[2])})).start()
    try:
        await reader.wait_for(lambda r: r.of_type("reset"))
        await post_event(http_client, base_url, event_body(website.id, pathname="/after"))
        await reader.wait_for(lambda r: r.of_type("new_event"))
        assert [f.data["data"]["pathname"] for f in reader.of_type("new_event")] == ["/after"]
        assert reader.of_type("reset")[0].data["data"]["recentEvents"][0]["pathname"] == \
            "/page/12"
    finally:
        reader.close()


@pytest.mark.gen_test
async def test_an_id_within_the_replay_limit_is_replayed_after_connected(
        http_client: Any, base_url: str, website: Any, token: str) -> None:
    ids = await post_many(http_client, base_url, website.id, 8)
    reader = SSEReader(live_url(base_url, website.id),
                       bearer(token, **{"Last-Event-ID": str(ids[2])})).start()
    try:
        await reader.wait_for(lambda r: len(r.of_type("new_event")) >= 5)
        assert reader.of_type("connected") and not reader.of_type("reset")
        assert [f.id for f in reader.of_type("new_event")] == ids[3:]
    finally:
        reader.close()
