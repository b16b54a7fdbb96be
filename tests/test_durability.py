"""Durability against a real ``pulse serve``: SIGKILL mid-stream loses no acknowledged event and
stores none twice; SIGTERM drains, tells live clients to reconnect, and exits."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import BROWSER_UA
from tests.server_support import cli, free_port, start_server, wait_pending


def stored_events(data_dir: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(data_dir / "pulse.db") as db:
        return list(db.execute("SELECT seq, pathname FROM event ORDER BY seq"))


@dataclass
class Load:
    """Tracking requests and what the server answered them."""

    port: int
    website_id: str
    acknowledged: dict[int, str] = field(default_factory=dict)  # event id → pathname
    failed: int = 0
    sent: int = 0

    async def one(self, session: aiohttp.ClientSession, n: int) -> None:
        pathname = f"/load/{n}"
        body = {"website_id": self.website_id, "event_type": "pageview", "pathname": pathname,
                "visitor_id": f"v{n % 97}", "session_id": f"s{n % 89}"}
        self.sent += 1
        try:
            async with session.post(f"http://127.0.0.1:{self.port}/web/analytics/track",
                                    json=body, headers={"User-Agent": BROWSER_UA}) as response:
                if response.status == 202:
                    self.acknowledged[(await response.json())["id"]] = pathname
                else:
                    self.failed += 1
        except (TimeoutError, aiohttp.ClientError):
            self.failed += 1

    async def run(self, session: aiohttp.ClientSession, total: int, workers: int) -> None:
        counter = iter(range(total))

        async def worker() -> None:
            for n in counter:
                await self.one(session, n)

        await asyncio.gather(*(worker() for _ in range(workers)))


@pytest.mark.slow
def test_sigkill_mid_stream_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """Full-speed ingest, SIGKILL after 1,000 acknowledgements, restart: every 202 is stored."""
    website_id = cli(tmp_path, "create-website", "example.com")
    port = free_port()
    proc = start_server(tmp_path, port)
    load = Load(port, website_id)

    async def drive() -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=timeout) as session:
            task = asyncio.create_task(load.run(session, total=20_000, workers=64))
            while len(load.acknowledged) < 1000 and not task.done():
                await asyncio.sleep(0.005)
            proc.send_signal(signal.SIGKILL)  # mid-stream: dozens of requests in flight
            await task

    try:
        asyncio.run(drive())
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(load.acknowledged) >= 1000
    assert load.failed > 0  # the kill really cut requests off
    assert len(load.acknowledged) + load.failed == load.sent

    restarted = start_server(tmp_path, port)  # recovery of the WAL happens on open
    try:
        stored = stored_events(tmp_path)
        by_id = dict(stored)
        missing = [i for i in load.acknowledged if by_id.get(i) != load.acknowledged[i]]
        assert missing == []  # every event answered 202 is stored, as acknowledged
        pathnames = [p for _, p in stored]
        assert len(pathnames) == len(set(pathnames))  # none stored twice
        # Stored but unacknowledged events can only be those in flight at the kill.
        assert len(stored) - len(load.acknowledged) <= load.failed

        async def after() -> None:
            async with aiohttp.ClientSession() as session:
                await Load(port, website_id).one(session, 10**6)

        asyncio.run(after())
        newest = stored_events(tmp_path)[-1]
        assert newest[1] == f"/load/{10**6}" and newest[0] > max(by_id)  # ids never reused
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)


async def follow(port: int, website_id: str, token: str, frames: list[dict[str, Any]],
                 last_event_id: int | None = None) -> None:
    """Read a live stream until it ends; each frame as {"id", "retry", "data"}."""
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    timeout = aiohttp.ClientTimeout(total=60, sock_read=30)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
            f"http://127.0.0.1:{port}/admin/analytics/live?website_id={website_id}",
            headers=headers) as response:
        assert response.status == 200
        frame: dict[str, Any] = {}
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if not line:
                if frame:
                    frames.append(frame)
                frame = {}
            elif line.startswith("id:"):
                frame["id"] = int(line[3:])
            elif line.startswith("retry:"):
                frame["retry"] = int(line[6:])
            elif line.startswith("data:"):
                frame["data"] = json.loads(line[5:])


@pytest.mark.slow
def test_sigterm_tells_live_clients_to_reconnect_and_they_miss_nothing(tmp_path: Path) -> None:
    """SIGTERM with streams open and events waiting: the streams get ``retry:`` and end, the
    process exits, every accepted event is stored, and a reconnect after the restart replays
    exactly what a stream had not seen."""
    cli(tmp_path, "create-user", "admin@example.com", "--password-stdin",
        stdin="correct horse battery\n")
    website_id = cli(tmp_path, "create-website", "example.com")
    token = cli(tmp_path, "create-token", "admin@example.com")
    port = free_port()
    # A long batch delay keeps accepted events waiting in the writer when the signal lands
    # (10 s: on a busy machine 100 posts can take longer than 2 s to all be waiting).
    proc = start_server(tmp_path, port, PULSE_BATCH_DELAY_MS="10000", PULSE_BATCH_SIZE="100000")
    streams: list[list[dict[str, Any]]] = [[] for _ in range(3)]
    load = Load(port, website_id)

    async def scenario() -> None:
        readers = [asyncio.create_task(follow(port, website_id, token, frames))
                   for frames in streams]
        while not all(any(f.get("data", {}).get("type") == "connected" for f in frames)
                      for frames in streams):
            await asyncio.sleep(0.01)
        async with aiohttp.ClientSession() as session:
            await load.one(session, 0)  # committed and streamed before the signal
            posts = [asyncio.create_task(load.one(session, n)) for n in range(1, 101)]
            # Its own session: the posts hold all 100 connections of theirs until committed.
            async with aiohttp.ClientSession() as probe:
                await wait_pending(probe, port, 100, tries=1000)
            proc.send_signal(signal.SIGTERM)
            await asyncio.gather(*posts)
        await asyncio.gather(*readers)  # every stream ends by itself

    try:
        asyncio.run(scenario())
        assert proc.wait(timeout=15) == 0  # "gone within a few seconds": bounded, not timed
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert "shutting down" in output
    assert len(load.acknowledged) == 101
    assert sorted(i for i, _ in stored_events(tmp_path)) == sorted(load.acknowledged)
    for frames in streams:
        assert frames[0].get("retry") == 3000
        assert frames[-1] == {"retry": 2000}  # the last word: reconnect in 2 s
        seen = [f["id"] for f in frames if f.get("data", {}).get("type") == "new_event"]
        assert seen and seen[0] == min(load.acknowledged)

    # The clients reconnect (to the restarted server) with their Last-Event-ID.
    restarted = start_server(tmp_path, port)
    try:
        seen_before = [f["id"] for f in streams[0] if "id" in f]
        replay: list[dict[str, Any]] = []

        async def reconnect() -> None:
            task = asyncio.create_task(
                follow(port, website_id, token, replay, seen_before[-1]))
            missed = len(load.acknowledged) - len(seen_before)  # 0 if the signal came late
            while sum(1 for f in replay if "id" in f) < missed or not any(
                    f.get("data", {}).get("type") == "connected" for f in replay):
                if task.done():
                    break
                await asyncio.sleep(0.02)
            restarted.send_signal(signal.SIGTERM)
            await task

        asyncio.run(reconnect())
        replayed = [f["id"] for f in replay if "id" in f]
        assert sorted(seen_before + replayed) == sorted(load.acknowledged)  # each exactly once
    finally:
        if restarted.poll() is None:
            restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
