"""Memory bounded in bytes: 16 KB events to 200 websites keep the server's RSS under the bound
the README states (the replay buffers hold at most PULSE_REPLAY_MEMORY for all websites)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from models import setup_database
from models.db import database
from models.websites import create_website
from tests.cluster_support import Cluster
from tests.conftest import BROWSER_UA
from tests.server_support import rss_bytes

pytestmark = pytest.mark.slow

WEBSITES = 200
EVENTS_PER_WEBSITE = 30
RSS_BOUND = 250 * 2**20  # README, "Memory": a server holding this traffic stays under 250 MiB


@pytest.mark.asyncio
async def test_16_kb_events_to_200_websites_keep_rss_under_the_stated_bound(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pulse.db'}"
    setup_database(url)
    website_ids = [create_website(f"site{i}.example.com").id for i in range(WEBSITES)]
    database.obj.close()
    cluster = Cluster(tmp_path, url, None)
    node = cluster.start()
    try:
        before = rss_bytes(node.proc.pid)
        body = {"event_type": "pageview", "title": "t" * 500,
                "props": {f"key{i:02}": "v" * 495 for i in range(29)}}
        jobs = iter([(w, n) for n in range(EVENTS_PER_WEBSITE) for w in website_ids])
        peak = before

        async def poster(http: aiohttp.ClientSession) -> None:
            nonlocal peak
            for count, (website_id, n) in enumerate(jobs):
                payload = {**body, "website_id": website_id, "pathname": f"/p/{n}"}
                async with http.post(node.url + "/web/analytics/track", json=payload,
                                     headers={"User-Agent": BROWSER_UA}) as response:
                    assert response.status == 202
                if count % 50 == 0:
                    peak = max(peak, rss_bytes(node.proc.pid))

        async with aiohttp.ClientSession() as http:
            await asyncio.gather(*(poster(http) for _ in range(8)))
            async with http.get(node.url + "/metrics") as response:
                metrics = await response.text()
        after = rss_bytes(node.proc.pid)
        peak = max(peak, after)
        print(f"RSS {before / 2**20:.1f} MiB before, {after / 2**20:.1f} after, "
              f"{peak / 2**20:.1f} at most; {WEBSITES * EVENTS_PER_WEBSITE} events of ~15 KB")
        assert "pulse_events_accepted_total 6000.0" in metrics
        assert peak < RSS_BOUND
    finally:
        cluster.stop()
