"""Nothing on the event loop touches the database: while a website with 1 million events is
deleted and 100 SSE clients connect at once, no SQL statement runs on the server's loop thread,
a probe on the loop never sees it busy for more than 50 ms at a stretch, and the writer keeps
storing other websites' events.

The probe measures the loop thread's own CPU time between two of its 5 ms callbacks: on this
shared 2-core machine the wall-clock delay also counts the time other processes had the CPU
(it is printed, and bench/RESULTS.md keeps a figure), which no program can keep under 50 ms.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest

from backend.auth import create_user
from backend.ingest.websites import WebsiteCache
from backend.live.hub import EventStore, Hub
from backend.settings import Settings
from backend.website_deletion import delete_website
from models.db import database
from models.entities import ApiToken, Event, EventCounter, Website
from models.records import EventRecord
from models.websites import create_website
from tests.conftest import BROWSER_UA
from tests.server_support import RawHTTP, ThreadedServer

BIG = 1_000_000
CLIENTS = 100
MAX_LAG = 0.050


def bulk_insert_events(website_id: str, count: int) -> None:
    """``count`` events for one website in one INSERT … SELECT (seconds, not minutes): every
    column gets the value of a template event, the time and the visitor vary, and the events
    take the website's sequence numbers 1…``count`` as the writer would (its counter too)."""
    template = Event(website=website_id, ts=0, event_type="pageview", pathname="/p",
                     visitor_id="v", session_id="s")
    columns, values, params = [], [], []
    for field in Event._meta.sorted_fields:
        if isinstance(field, peewee.AutoField):
            continue
        columns.append(f'"{field.column_name}"')
        if field.name == "ts":
            values.append("? + i")
            params.append(int(time.time() * 1000) - count)
        elif field.name in ("visitor_id", "session_id"):
            values.append("? || (i % 5000)")
            params.append(getattr(template, field.name))
        elif field.name == "seq":
            values.append("i")
        else:
            value = getattr(template, field.name)
            values.append("?")
            params.append(field.db_value(value.id if isinstance(value, Website) else value))
    sql = (f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) "
           f'INSERT INTO "{Event._meta.table_name}" ({", ".join(columns)}) '
           f"SELECT {', '.join(values)} FROM n")
    with database.atomic():
        database.execute_sql(sql, params)
        EventCounter.create(website=website_id, last_seq=count)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadedServer]:
    settings = Settings(data_dir=tmp_path, host="127.0.0.1", port=0, secret="lag-" + "s" * 30,
                        rate_per_ip=0, rate_per_website=0, sse_max_per_user=CLIENTS + 10)
    running = ThreadedServer(settings)
    yield running
    if running._thread.ident is not None:  # the test starts it after its setup, which may fail
        running.stop()


async def probe(stop: asyncio.Event, lags: list[tuple[float, float]],
                interval: float = 0.005) -> None:
    """Until ``stop``: (how late the loop ran a callback due in ``interval``, the CPU time the
    loop thread spent meanwhile) for each of a series of such callbacks."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + interval
        cpu = time.thread_time()
        await asyncio.sleep(interval)
        lags.append((loop.time() - due, time.thread_time() - cpu))


def open_stream(port: int, token: str, website_id: str) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn.sendall(f"GET /admin/analytics/live?website_id={website_id} HTTP/1.1\r\n"
                 f"Host: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    return conn


def track(client: RawHTTP, website_id: str) -> int:
    response = client.request("POST", "/web/analytics/track", [
        (b"Content-Type", b"application/json"), (b"User-Agent", BROWSER_UA.encode())],
        json.dumps({"website_id": website_id, "event_type": "pageview", "pathname": "/x",
                    "visitor_id": "v", "session_id": "s"}).encode())
    assert response is not None
    return response.status


def read_until_connected(conn: socket.socket) -> bytes:
    received = b""
    while b'"type":"connected"' not in received:
        chunk = conn.recv(65536)
        assert chunk, received[:300]
        received += chunk
    return received


@pytest.mark.slow
def test_the_loop_stays_responsive_while_a_big_website_is_deleted_and_clients_connect(
        server: ThreadedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = create_user("admin@example.com", "correct horse battery", is_admin=True)
    token = ApiToken.issue(admin, "lag")[1]
    big = create_website("big.example")
    small = create_website("small.example")
    bulk_insert_events(big.id, BIG)
    assert Event.select().where(Event.website == big.id).count() == BIG
    server.services.websites = WebsiteCache(ttl=3600)  # the tracking side's cache stays warm
    server.start()
    loop = server.loop
    assert loop is not None
    # Warm up what is loaded once: the small website's live window and its cache entry.
    read_until_connected(open_stream(server.port, token, small.id)).startswith(b"HTTP/1.1 200")
    client = RawHTTP(server.port)
    assert track(client, small.id) == 202

    loop_thread = server._thread.ident
    on_the_loop: list[str] = []
    execute_sql = peewee.Database.execute_sql

    def watched(db: peewee.Database, sql: str, params: Any = None) -> Any:
        if threading.get_ident() == loop_thread:
            on_the_loop.append(sql)
        return execute_sql(db, sql, params)

    monkeypatch.setattr(peewee.Database, "execute_sql", watched)
    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()
    probing = asyncio.run_coroutine_threadsafe(probe(stop, lags), loop)
    time.sleep(0.2)
    started = time.monotonic()
    deleting = asyncio.run_coroutine_threadsafe(delete_website(server.services, big.id), loop)
    streams = [open_stream(server.port, token, small.id) for _ in range(CLIENTS)]
    heads = [read_until_connected(conn) for conn in streams]
    # The writer keeps committing other websites' events meanwhile (no 503 from a lock held).
    statuses = []
    while not deleting.done():
        statuses.append(track(client, small.id))
        time.sleep(0.05)
    removed = deleting.result(timeout=300)
    seconds = time.monotonic() - started
    loop.call_soon_threadsafe(stop.set)
    probing.result(timeout=10)
    monkeypatch.undo()
    for conn in streams:
        conn.close()
    client.close()

    assert removed == BIG
    assert all(head.startswith(b"HTTP/1.1 200 ") for head in heads)
    assert statuses and set(statuses) == {202}, statuses
    assert Website.get_or_none(Website.id == big.id) is None
    assert Event.select().where(Event.website == big.id).count() == 0
    assert on_the_loop == []
    late = sorted(lag for lag, _ in lags)
    busiest = max(cpu for _, cpu in lags)
    print(f"\nwhile deleting {BIG} events ({seconds:.1f} s) and opening {CLIENTS} streams: "
          f"callback delay median {late[len(late) // 2] * 1000:.1f} ms, p99 "
          f"{late[len(late) * 99 // 100] * 1000:.1f} ms, max {late[-1] * 1000:.1f} ms; loop "
          f"busy at most {busiest * 1000:.1f} ms at a stretch; {len(lags)} probes, "
          f"{len(statuses)} events tracked meanwhile")
    assert busiest <= MAX_LAG, f"the loop was busy for {busiest * 1000:.0f} ms at a stretch"


@pytest.mark.asyncio
async def test_a_seed_read_off_the_loop_keeps_the_events_published_meanwhile() -> None:
    def record(seq: int, visitor: str) -> EventRecord:
        return EventRecord(id=seq, website_id="w", ts=int(time.time() * 1000),
                           event_type="pageview", pathname="/", visitor_id=visitor,
                           session_id=visitor, device="desktop", browser="Chrome", os="Linux",
                           country="DE")

    stored = [record(1, "a"), record(2, "b"), record(3, "c")]
    reading = asyncio.Event()
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def events_since(website_id: str, since: int, limit: int) -> list[EventRecord]:
        loop.call_soon_threadsafe(reading.set)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)
        return stored[:2]  # what the database held when read

    def events_after(website_id: str, after: int, limit: int) -> list[EventRecord]:
        return [e for e in stored if e.id > after][:limit]

    hub = Hub(store=EventStore(events_after, events_since, lambda website_id: len(stored)))
    hub.start_from({"w": 1})  # event 1 was committed before the hub started
    first = asyncio.ensure_future(hub.window("w"))
    second = asyncio.ensure_future(hub.window("w"))
    await reading.wait()
    hub.publish([record(2, "b"), record(3, "c")])  # committed while the seed was being read
    release.set()
    stats = await first
    assert await second is stats
    assert stats.unique_visitors == 3 and stats.last_id == 3
    assert [e.id for e in stats.recent_events()] == [3, 2, 1]
    assert hub.refills == 0  # kept as they were published, not read again from the store
