"""A stalled live client among 100 is dropped at its backlog bound; the 99 others get every
event, and the server's memory stays bounded."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import BROWSER_UA
from tests.server_support import cli, free_port, rss_bytes, start_server

HEALTHY = 99
EVENTS = 400
BACKLOG = 65_536


def metric(text: str, name: str, labels: str = "") -> float:
    """One sample of the Prometheus text ``text`` (0 when absent)."""
    pattern = re.escape(name + (("{" + labels + "}") if labels else "")) + r" ([0-9.e+]+)"
    found = re.search(r"(?m)^" + pattern + "$", text)
    return float(found.group(1)) if found else 0.0


async def read_ids(session: aiohttp.ClientSession, url: str, token: str, ids: list[int],
                   connected: asyncio.Event) -> None:
    """Follow one stream, collecting the ids of its events, until it ends or is cancelled."""
    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200
        async for line in response.content:
            if line.startswith(b"id: "):
                ids.append(int(line[4:]))
            elif b'"type":"connected"' in line:
                connected.set()


@pytest.mark.slow
def test_a_stalled_subscriber_is_dropped_and_the_others_get_everything(tmp_path: Path) -> None:
    cli(tmp_path, "create-user", "admin@example.com", "--password-stdin",
        stdin="correct horse battery\n")
    website_id = cli(tmp_path, "create-website", "example.com")
    token = cli(tmp_path, "create-token", "admin@example.com")
    port = free_port()
    proc = start_server(tmp_path, port, PULSE_SSE_MAX_BACKLOG=str(BACKLOG),
                        PULSE_SSE_MAX_PER_USER="200", PULSE_SSE_HEARTBEAT="3600")
    url = f"http://127.0.0.1:{port}/admin/analytics/live?website_id={website_id}"
    base = f"http://127.0.0.1:{port}"
    acknowledged: list[int] = []
    rss: list[int] = []

    # The stalled client: a tiny receive buffer, and it never reads a byte.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", port))
    stalled.sendall(f"GET /admin/analytics/live?website_id={website_id} HTTP/1.1\r\n"
                    f"Host: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())

    async def scenario() -> list[list[int]]:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=timeout) as session:
            received: list[list[int]] = [[] for _ in range(HEALTHY)]
            ready = [asyncio.Event() for _ in range(HEALTHY)]
            readers = [asyncio.create_task(read_ids(session, url, token, ids, event))
                       for ids, event in zip(received, ready, strict=True)]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 60)
            rss.append(rss_bytes(proc.pid))

            async def sample() -> None:
                while True:
                    rss.append(rss_bytes(proc.pid))
                    await asyncio.sleep(0.5)

            sampler = asyncio.create_task(sample())
            # ~15 kB per frame: 400 events are ~6 MB per client, past what the kernel's socket
            # buffers absorb (about 3 MB on loopback) plus the backlog bound.
            body = {"website_id": website_id, "event_type": "pageview", "title": "t" * 500,
                    "props": {f"key{i:02}": "v" * 495 for i in range(29)}}
            assert 14_000 < len(json.dumps(body)) < 16_000
            counter = iter(range(EVENTS))

            async def poster() -> None:
                for n in counter:
                    async with session.post(f"{base}/web/analytics/track",
                                            json={**body, "pathname": f"/p/{n}"},
                                            headers={"User-Agent": BROWSER_UA}) as response:
                        assert response.status == 202
                        acknowledged.append((await response.json())["id"])

            await asyncio.gather(*(poster() for _ in range(16)))
            # Wait (bounded) until every healthy reader has every event, then hang up.
            for _ in range(1200):
                if all(len(ids) >= EVENTS for ids in received):
                    break
                await asyncio.sleep(0.1)
            sampler.cancel()
            rss.append(rss_bytes(proc.pid))
            async with session.get(f"{base}/metrics") as response:
                metrics_text = await response.text()
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            assert metric(metrics_text, "pulse_sse_disconnects_total",
                          'reason="backlog"') == 1.0
            assert metric(metrics_text, "pulse_live_connections",
                          f'website_id="{website_id}"') == HEALTHY
            return received

    try:
        received = asyncio.run(scenario())
        # The stalled client's stream was ended by the server: what was already in the socket
        # buffers, then the end of the chunked response (or the connection closed).
        stalled.settimeout(30)
        drained = b""
        while not drained.endswith(b"\r\n0\r\n\r\n"):
            chunk = stalled.recv(1 << 20)
            if not chunk:
                break
            drained += chunk
        assert drained.count(b"\nid: ") < EVENTS  # it got only what the buffers held
    finally:
        stalled.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert len(acknowledged) == EVENTS
    for ids in received:
        assert sorted(ids) == sorted(acknowledged)  # every event, once, to each of the 99
    # Memory stays bounded: what the stalled client could not take was dropped with it. The
    # growth is the live window and the replay buffer holding 400 large events, and the write
    # buffers of 99 sockets; a backlog kept forever would add ~6 MB per stalled client.
    print(f"server RSS {rss[0] / 2**20:.1f} MiB before, {max(rss) / 2**20:.1f} MiB at most")
    assert max(rss) - rss[0] < 128 * 2**20
