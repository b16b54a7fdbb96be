"""GET /admin/analytics/live: auth, the connected frame, live events, stats, replay."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import tornado.httpserver
import tornado.testing

from backend.auth import create_user
from backend.server import build_services, make_app
from models.entities import ApiToken, now_ms
from models.websites import create_website
from tests.conftest import event_body, post_event
from tests.sse_client import SSEReader


def live_url(base_url: str, website_id: str) -> str:
    return f"{base_url}/admin/analytics/live?website_id={website_id}"


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


@pytest.mark.gen_test
async def test_an_event_reaches_a_subscriber_with_its_id(http_client: Any, base_url: str,
                                                         website: Any, token: str) -> None:
    await post_event(http_client, base_url, event_body(website.id, pathname="/before"))
    reader = SSEReader(live_url(base_url, website.id), bearer(token)).start()
    try:
        await reader.wait_for(lambda r: r.of_type("connected"))
        assert reader.status == 200
        assert reader.frames[0].retry == 3000
        connected = reader.of_type("connected")[0].data["data"]
        assert connected["currentVisitors"] == 1
        assert connected["uniqueVisitors"] == 1
        assert connected["activePages"] == [{"pathname": "/before", "visitors": 1}]
        assert [e["pathname"] for e in connected["recentEvents"]] == ["/before"]

        response = await post_event(http_client, base_url,
                                    event_body(website.id, pathname="/products", visitor_id="v2",
                                               session_id="s2"))
        event_id = json.loads(response.body)["id"]
        await reader.wait_for(lambda r: r.of_type("new_event"))
        frame = reader.of_type("new_event")[0]
        assert frame.id == event_id
        assert frame.data["data"]["id"] == event_id
        assert frame.data["data"]["pathname"] == "/products"
        assert frame.data["data"]["event_type"] == "pageview"
    finally:
        reader.close()


@pytest.mark.gen_test
async def test_stats_frame_follows_a_change(http_client: Any, base_url: str, website: Any,
                                            token: str, services: Any) -> None:
    reader = SSEReader(live_url(base_url, website.id), bearer(token)).start()
    try:
        await reader.wait_for(lambda r: r.of_type("connected"))
        await post_event(http_client, base_url, event_body(website.id, pathname="/a"))
        await reader.wait_for(lambda r: r.of_type("new_event"))
        services.hub.tick()
        await reader.wait_for(lambda r: r.of_type("stats"))
        stats = reader.of_type("stats")[-1].data["data"]
        assert stats["currentVisitors"] == 1
        assert stats["activePages"] == [{"pathname": "/a", "visitors": 1}]
        # The visitor leaves the window: a stats frame says so without any new event.
        services.hub.tick(now=now_ms() + services.hub.window_ms + 1_000)
        await reader.wait_for(lambda r: r.of_type("stats")[-1].data["data"]["currentVisitors"]
                              == 0)
    finally:
        reader.close()


@pytest.mark.gen_test
async def test_heartbeat_comments(http_client: Any, base_url: str, website: Any, token: str,
                                  services: Any) -> None:
    services.streams.heartbeat = 0.0
    reader = SSEReader(live_url(base_url, website.id), bearer(token)).start()
    try:
        await reader.wait_for(lambda r: r.of_type("connected"))
        services.streams.beat()
        await reader.wait_for(lambda r: any("heartbeat" in f.comments for f in r.frames))
    finally:
        reader.close()


@pytest.mark.gen_test
async def test_access_control(http_client: Any, base_url: str, website: Any,
                              token: str) -> None:
    async def status(headers: dict[str, str], website_id: str = website.id) -> tuple[int, str]:
        response = await http_client.fetch(live_url(base_url, website_id), headers=headers,
                                           raise_error=False)
        return response.code, json.loads(response.body)["error"]

    assert (await status({}))[0] == 401
    assert (await status(bearer("pulse_not-a-real-token")))[0] == 401
    assert (await status({"Authorization": "Basic abc"}))[0] == 401
    stranger = create_user("stranger@example.com", "another password")
    _, stranger_token = ApiToken.issue(stranger)
    code, error = await status(bearer(stranger_token))
    assert code == 403 and "not a member" in error
    assert (await status(bearer(token), "no-such-website"))[0] == 404
    assert (await status(bearer(token), ""))[0] == 400
    record, revoked = ApiToken.issue(stranger)
    record.revoke()
    assert (await status(bearer(revoked)))[0] == 401
    code, error = await status(bearer(token, **{"Last-Event-ID": "abc"}))
    assert code == 400 and "Last-Event-ID" in error


async def post_many(http_client: Any, base_url: str, website_id: str, n: int) -> list[int]:
    ids = []
    for i in range(n):
        response = await post_event(http_client, base_url,
                                    event_body(website_id, pathname=f"/page/{i + 1}"))
        ids.append(json.loads(response.body)["id"])
    return ids


async def until_marker(reader: SSEReader, http_client: Any, base_url: str,
                       website_id: str) -> list[int]:
    """Post a marker event and wait for it: whatever came before it (a duplicate, another
    website's event) has arrived by then. Return the ids of the new_event frames before it."""
    response = await post_event(http_client, base_url,
                                event_body(website_id, pathname="/marker"))
    marker = json.loads(response.body)["id"]
    await reader.wait_for(lambda r: any(f.id == marker for f in r.of_type("new_event")))
    ids = [f.id for f in reader.of_type("new_event")]
    assert ids[-1] == marker, ids
    return ids[:-1]


async def replayed_ids(http_client: Any, base_url: str, website_id: str, token: str,
                       last_id: int, expected: int) -> list[int]:
    reader = SSEReader(live_url(base_url, website_id),
                       bearer(token, **{"Last-Event-ID": str(last_id)})).start()
    try:
        await reader.wait_for(lambda r: len(r.of_type("new_event")) >= expected)
        return await until_marker(reader, http_client, base_url, website_id)
    finally:
        reader.close()


@pytest.mark.gen_test
async def test_last_event_id_replays_the_rest_exactly_once(http_client: Any, base_url: str,
                                                           website: Any, token: str) -> None:
    ids = await post_many(http_client, base_url, website.id, 20)
    got = await replayed_ids(http_client, base_url, website.id, token, ids[9], 10)
    assert got == ids[10:]


@pytest.mark.gen_test
async def test_replay_survives_a_server_restart(http_client: Any, base_url: str, website: Any,
                                                token: str, settings: Any, services: Any) -> None:
    ids = await post_many(http_client, base_url, website.id, 20)
    await services.writer.close()
    # A second server on the same database: its memory is empty, the replay comes from disk.
    restarted = build_services(settings)
    sock, port = tornado.testing.bind_unused_port()
    server = tornado.httpserver.HTTPServer(make_app(restarted))
    server.add_sockets([sock])
    try:
        got = await replayed_ids(http_client, f"http://127.0.0.1:{port}", website.id, token,
                                 ids[9], 10)
        assert got == ids[10:]
    finally:
        server.stop()
        await restarted.writer.close()


@pytest.mark.gen_test
async def test_replay_then_live_without_gap_or_duplicate(http_client: Any, base_url: str,
                                                         website: Any, token: str) -> None:
    ids = await post_many(http_client, base_url, website.id, 5)
    reader = SSEReader(live_url(base_url, website.id),
                       bearer(token, **{"Last-Event-ID": str(ids[1])})).start()
    try:
        await reader.wait_for(lambda r: len(r.of_type("new_event")) >= 3)
        more = await post_many(http_client, base_url, website.id, 3)
        await reader.wait_for(lambda r: len(r.of_type("new_event")) >= 6)
        assert await until_marker(reader, http_client, base_url, website.id) == ids[2:] + more
    finally:
        reader.close()


@pytest.mark.gen_test
async def test_other_websites_events_are_not_streamed(http_client: Any, base_url: str,
                                                      website: Any, token: str) -> None:
    other = create_website("other.example.org")
    reader = SSEReader(live_url(base_url, website.id), bearer(token)).start()
    try:
        await reader.wait_for(lambda r: r.of_type("connected"))
        await post_event(http_client, base_url, event_body(other.id, pathname="/elsewhere"))
        await post_event(http_client, base_url, event_body(website.id, pathname="/here"))
        await until_marker(reader, http_client, base_url, website.id)
        assert [f.data["data"]["pathname"] for f in reader.of_type("new_event")] == ["/here",
                                                                                    "/marker"]
    finally:
        reader.close()


@pytest.mark.gen_test
async def test_disconnect_cleans_up(http_client: Any, base_url: str, website: Any, token: str,
                                    services: Any) -> None:
    reader = SSEReader(live_url(base_url, website.id), bearer(token)).start()
    await reader.wait_for(lambda r: r.of_type("connected"))
    assert services.hub.listener_count(website.id) == 1
    assert len(services.streams) == 1
    reader.close()
    for _ in range(100):
        if services.hub.listener_count(website.id) == 0:
            break
        await asyncio.sleep(0.02)
    assert services.hub.listener_count(website.id) == 0
    assert len(services.streams) == 0


def panel_cookie(secret: str, browser_id: str) -> str:
    """The panel's session cookie as NiceGUI (Starlette) signs it."""
    import base64

    import itsdangerous
    data = base64.b64encode(json.dumps({"id": browser_id}).encode())
    return "session=" + itsdangerous.TimestampSigner(secret).sign(data).decode()


@pytest.mark.gen_test
async def test_the_panel_session_cookie_opens_the_stream(http_client: Any, base_url: str,
                                                         website: Any, admin: Any,
                                                         settings: Any) -> None:
    from models.entities import Session
    url = live_url(base_url, website.id)
    cookie = panel_cookie(settings.secret, "browser-1")
    response = await http_client.fetch(url, headers={"Cookie": cookie}, raise_error=False)
    assert response.code == 401  # a signed cookie, but nobody signed in on that browser
    Session.start(admin, "browser-1", 60)
    reader = SSEReader(url, {"Cookie": cookie}).start()
    try:
        await reader.wait_for(lambda r: r.of_type("connected"))
    finally:
        reader.close()
    forged = panel_cookie("another secret", "browser-1")
    response = await http_client.fetch(url, headers={"Cookie": forged}, raise_error=False)
    assert response.code == 401
    Session.start(admin, "browser-1", -1)  # expired
    response = await http_client.fetch(url, headers={"Cookie": cookie}, raise_error=False)
    assert response.code == 401


@pytest.mark.gen_test
async def test_a_replay_larger_than_the_backlog_bound_arrives_whole(
        http_client: Any, base_url: str, website: Any, token: str, services: Any) -> None:
    import dataclasses
    # The bound holds the connected frame (20 recent events) but not the replay of 100.
    services.settings = dataclasses.replace(services.settings, sse_max_backlog=32_768)
    ids = []
    for i in range(101):  # about 100 × 900 bytes of frames: several times the bound
        response = await post_event(http_client, base_url,
                                    event_body(website.id, pathname=f"/p/{i}", title="t" * 400))
        ids.append(json.loads(response.body)["id"])
    got = await replayed_ids(http_client, base_url, website.id, token, ids[0], 100)
    assert got == ids[1:]
    metrics = (await http_client.fetch(base_url + "/metrics")).body.decode()
    assert 'pulse_sse_disconnects_total{reason="backlog"}' not in metrics


@pytest.mark.gen_test
async def test_live_events_arriving_during_a_replay_come_once_and_in_order(
        http_client: Any, base_url: str, website: Any, token: str, services: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    hub = services.hub
    monkeypatch.setattr(hub, "_replay_bytes", 0)  # no replay buffer: the replay reads the store
    ids = await post_many(http_client, base_url, website.id, 10)
    loop = asyncio.get_running_loop()
    read_from_store = hub._load_after
    during: list[int] = []

    def replay_while_events_arrive(website_id: str, last_id: int, limit: int) -> Any:
        # Runs in a worker thread while the stream is already subscribed: two events commit
        # before the replay reads the store (it returns them too), two after (it does not).
        def post(n: int) -> list[int]:
            future = asyncio.run_coroutine_threadsafe(
                post_many(http_client, base_url, website.id, n), loop)
            return future.result(timeout=10)

        during.extend(post(2))
        rows = read_from_store(website_id, last_id, limit)
        during.extend(post(2))
        return rows

    monkeypatch.setattr(hub, "_load_after", replay_while_events_arrive)
    reader = SSEReader(live_url(base_url, website.id),
                       bearer(token, **{"Last-Event-ID": str(ids[3])})).start()
    try:
        await reader.wait_for(lambda r: len(r.of_type("new_event")) >= 10)
        monkeypatch.undo()
        assert len(during) == 4
        assert await until_marker(reader, http_client, base_url, website.id) == ids[4:] + during
    finally:
        reader.close()
