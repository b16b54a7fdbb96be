"""The embeddable live counter in a real browser, on another origin: the <script> and the
<iframe> snippets show the count and follow it live."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from models import setup_database
from models.alerts import set_counter
from models.db import database
from models.entities import Website
from tests.e2e_support import (
    BROWSER_UA,
    PulseProcess,
    StaticSite,
    chromium,
    pulse_cli,
    require_browser,
)

pytestmark = [pytest.mark.e2e]


def turn_counter_on(data_dir: Path, website_id: str) -> None:
    """What the owner's switch does, on the server's database before it starts."""
    setup_database(f"sqlite:///{data_dir / 'pulse.db'}")
    try:
        set_counter(Website.get_by_id(website_id), True)
    finally:
        database.obj.close()


def track(base_url: str, website_id: str, visitor: str) -> None:
    body = json.dumps({"website_id": website_id, "event_type": "pageview", "pathname": "/",
                       "visitor_id": visitor, "session_id": visitor}).encode()
    request = urllib.request.Request(base_url + "/web/analytics/track", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": BROWSER_UA})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202


@pytest.mark.asyncio
async def test_the_counter_snippets_show_the_count_live_on_another_origin(
        tmp_path: Path) -> None:
    require_browser()
    data_dir, root = tmp_path / "data", tmp_path / "site"
    root.mkdir()
    with StaticSite(root) as site:
        pulse_cli(data_dir, "create-user", "e2e@example.com", "--password-stdin",
                  stdin="e2e password\n")
        website_id = pulse_cli(data_dir, "create-website", "shop.example")
        turn_counter_on(data_dir, website_id)
        with PulseProcess(data_dir) as pulse:
            embed = f"{pulse.base_url}/embed/{website_id}"
            (root / "page.html").write_text(
                '<!doctype html><html lang="en"><head><title>Embed</title></head><body>'
                f'<p>Now: <script async src="{embed}/counter.js" data-theme="dark"></script></p>'
                f'<iframe id="frame" src="{embed}?theme=dark" title="Live visitors" width="220" '
                'height="32"></iframe></body></html>')
            async with chromium() as browser:
                page = await browser.new_page(user_agent=BROWSER_UA)
                await page.goto(f"{site.origin}/page.html")
                counter = page.locator(".pulse-counter")
                frame = page.frame_locator("#frame").locator("#n")
                await counter.filter(has_text="0 people on this site now").wait_for(
                    timeout=30_000)
                await frame.filter(has_text="0 people on this site now").wait_for(
                    timeout=30_000)
                track(pulse.base_url, website_id, "v1")
                track(pulse.base_url, website_id, "v2")
                await counter.filter(has_text="2 people on this site now").wait_for(
                    timeout=30_000)
                await frame.filter(has_text="2 people on this site now").wait_for(
                    timeout=30_000)
