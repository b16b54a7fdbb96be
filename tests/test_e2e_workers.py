"""``pulse serve --workers 2`` on PostgreSQL + Redis in a real browser: sign in (the panel lives
in worker 0, the other forwards to it), watch the live page while events are posted over new
connections, which the kernel spreads over both workers."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cluster_support import Cluster
from tests.e2e_support import chromium, require_browser
from tests.real_services import RedisTarget
from tests.test_e2e_live import PATIENCE_MS

PASSWORD = "correct horse battery"


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.asyncio
async def test_the_live_page_follows_events_posted_to_both_workers(
        tmp_path: Path, postgres_url: str, redis_target: RedisTarget) -> None:
    require_browser()
    from playwright.async_api import expect

    expect.set_options(timeout=PATIENCE_MS)
    cluster = Cluster(tmp_path, postgres_url, redis_target).setup()
    try:
        node = cluster.start("--workers", "2")
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            await page.goto(node.url + "/login")
            await page.get_by_label("Email").fill("admin@example.com")
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(node.url + "/", timeout=PATIENCE_MS)
            await page.goto(f"{node.url}/websites/{cluster.website_id}/live")
            await page.wait_for_function(
                "document.documentElement.dataset.pulseLink === 'live'", timeout=PATIENCE_MS)

            def marked(name: str) -> Any:
                return page.locator(f'[data-pulse="{name}"]')

            await expect(marked("live-current")).to_have_text("0")
            for i in range(12):  # one connection each: both workers take some
                request = urllib.request.Request(
                    node.url + "/web/analytics/track", method="POST",
                    data=(f'{{"website_id":"{cluster.website_id}","event_type":"pageview",'
                          f'"pathname":"/both/{i}","visitor_id":"v{i}",'
                          f'"session_id":"s{i}"}}').encode(),
                    headers={"Content-Type": "application/json",
                             "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"
                                           " (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    assert response.status == 202
            await expect(marked("live-current")).to_have_text("12")
            await expect(marked("feed-row-0")).to_contain_text("/both/11")
    finally:
        cluster.stop()
