"""``pulse serve --workers N``: refused where the processes could not share state; on
PostgreSQL + Redis, N processes on one port serving tracking, the live stream and the panel."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.cluster_support import ROOT, Cluster, Follower, post
from tests.real_services import RedisTarget

pytestmark = pytest.mark.slow


def test_several_workers_are_refused_on_sqlite(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("PULSE_DATABASE_URL", "PULSE_REDIS_URL")}
    result = subprocess.run([sys.executable, str(ROOT / "app.py"), "serve", "--workers", "2"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**environ, "PULSE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "pulse: --workers 2 needs" in result.stderr
    assert "PULSE_DATABASE_URL=postgresql://" in result.stderr
    assert "PULSE_REDIS_URL=redis://" in result.stderr


@pytest.mark.asyncio
async def test_two_workers_serve_tracking_the_live_stream_and_the_panel(
        tmp_path: Path, postgres_url: str, redis_target: RedisTarget) -> None:
    cluster = Cluster(tmp_path, postgres_url, redis_target).setup()
    try:
        node = cluster.start("--workers", "2")
        while node.output().count("Pulse listening on") < 2:  # worker 0 answered first
            assert node.proc.poll() is None, node.output()
            await asyncio.sleep(0.1)
        for _ in range(20):  # new connections: the kernel spreads them over both workers
            with urllib.request.urlopen(node.url + "/login", timeout=10) as response:
                assert response.status == 200
                assert b"<html" in response.read().lower()
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True)) as http:
            followers = [Follower(cluster.live_url(node), cluster.token).start(http)
                         for _ in range(4)]
            for follower in followers:
                await follower.wait_for(lambda f: "connected" in f.kinds)
            for i in range(40):
                assert await post(http, node, cluster.website_id, f"/w/{i}") == i + 1
            for follower in followers:
                await follower.wait_for(lambda f: len(f.ids) >= 40)
                assert follower.ids == list(range(1, 41))
                await follower.close()
        output = node.output()
        assert "2 workers on http://127.0.0.1:" in output
    finally:
        cluster.stop()
    assert node.proc.returncode == 0
    assert "stopped" in node.output()
