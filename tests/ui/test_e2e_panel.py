"""The panel in a real browser against a real server, through Tornado's forwarding route (HTTP
and WebSocket): first run, the websites list with its live count, the snippet, sign-out."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from backend.tracker_script import tracker_script
from tests.e2e_support import BROWSER_UA, PulseProcess, chromium, require_browser

PATIENCE_MS = 60_000  # how long the browser may take on a busy machine (a bound, not a speed)
EMAIL = "owner@example.com"
PASSWORD = "panel e2e password"


def track(base_url: str, website_id: str, visitor: str) -> dict[str, Any]:
    """POST one pageview as the website's tracker would."""
    body = json.dumps({"website_id": website_id, "event_type": "pageview", "pathname": "/",
                       "visitor_id": visitor, "session_id": "s-" + visitor}).encode()
    request = urllib.request.Request(base_url + "/web/analytics/track", data=body, headers={
        "Content-Type": "text/plain", "Origin": "https://shop.example.com",
        "User-Agent": BROWSER_UA})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_first_run_to_a_live_count_in_a_browser(tmp_path: Path) -> None:
    require_browser()
    from playwright.async_api import expect

    expect.set_options(timeout=PATIENCE_MS)
    with PulseProcess(tmp_path / "data") as pulse:
        base_url = pulse.base_url
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))

            await page.goto(base_url + "/")
            await page.wait_for_url(base_url + "/setup", timeout=PATIENCE_MS)
            await page.get_by_label("Email").fill(EMAIL)
            await page.get_by_label("Password", exact=True).fill(PASSWORD)
            await page.get_by_label("Password (again)").fill(PASSWORD)
            await page.get_by_role("button", name="Create admin account").click()
            await page.wait_for_url(base_url + "/", timeout=PATIENCE_MS)
            await expect(page.get_by_text("No websites yet")).to_be_visible()

            cookie = next(c for c in await page.context.cookies() if c["name"] == "session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

            await page.get_by_role("button", name="Add website").click()
            await page.get_by_label("Name").fill("Shop")
            await page.get_by_label("Domain").fill("shop.example.com")
            await page.get_by_role("button", name="Create website").click()
            await page.wait_for_url(base_url + "/websites/*", timeout=PATIENCE_MS)
            website_id = page.url.rsplit("/", 1)[1]
            snippet = (f'<script defer data-website-id="{website_id}" '
                       f'src="{base_url}{tracker_script().path}"></script>')
            await expect(page.get_by_text(snippet)).to_be_visible()

            await page.goto(base_url + "/")
            # The row's count ("0 current visitors"), not the list's "Current visitors" sort label.
            count = page.get_by_text(re.compile(r"^\d+ current visitors?$"))
            await expect(count).to_have_text("0 current visitors")
            assert track(base_url, website_id, "v1")["ok"] is True
            await expect(count).to_have_text("1 current visitor")  # no reload: pushed over WS
            assert any("/_nicegui_ws/" in url and url.startswith(base_url.replace("http", "ws"))
                       for url in sockets)

            await page.get_by_role("button", name="Sign out").click()
            await page.wait_for_url(base_url + "/login", timeout=PATIENCE_MS)
            # Signed out, the live view (what `make demo` prints) asks for a sign-in, then
            # opens itself.
            live = f"{base_url}/websites/{website_id}/live"
            await page.goto(live)
            await page.wait_for_url(f"{base_url}/login?next=%2Fwebsites%2F{website_id}%2Flive",
                                    timeout=PATIENCE_MS)
            await page.get_by_label("Email").fill(EMAIL)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(live, timeout=PATIENCE_MS)
