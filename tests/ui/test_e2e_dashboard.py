"""The dashboard in a real browser: tracked visits show up in the reports, and clicking a
source row filters every report (the URL keeps the filter)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_support import BROWSER_UA, PulseProcess, chromium, pulse_cli, require_browser

PATIENCE_MS = 60_000  # how long the browser may take on a busy machine (a bound, not a speed)
EMAIL = "owner@example.com"
PASSWORD = "dashboard e2e password"


def track(base_url: str, website_id: str, visitor: str, pathname: str,
          referrer: str = "") -> None:
    """POST one pageview as the website's tracker would."""
    body = json.dumps({"website_id": website_id, "event_type": "pageview",
                       "pathname": pathname, "visitor_id": visitor, "referrer": referrer,
                       "hostname": "shop.example"}).encode()
    request = urllib.request.Request(base_url + "/web/analytics/track", data=body, headers={
        "Content-Type": "text/plain", "Origin": "https://shop.example",
        "User-Agent": BROWSER_UA})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_clicking_a_source_filters_every_report(tmp_path: Path) -> None:
    require_browser()
    from playwright.async_api import expect

    expect.set_options(timeout=PATIENCE_MS)
    data_dir = tmp_path / "data"
    pulse_cli(data_dir, "create-user", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    website_id = pulse_cli(data_dir, "create-website", "shop.example", "--name",
                           "Shop").splitlines()[-1].strip()
    with PulseProcess(data_dir) as pulse:
        base_url = pulse.base_url
        track(base_url, website_id, "a", "/?utm_source=newsletter&utm_medium=email")
        track(base_url, website_id, "a", "/pricing")
        track(base_url, website_id, "b", "/blog", referrer="https://twitter.com/someone")
        track(base_url, website_id, "c", "/docs", referrer="https://www.google.com/")
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            await page.goto(base_url + "/login")
            await page.get_by_label("Email").fill(EMAIL)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(base_url + "/", timeout=PATIENCE_MS)
            await page.get_by_role("link", name="Shop").click()
            await page.wait_for_url(f"{base_url}/websites/{website_id}/dashboard",
                                    timeout=PATIENCE_MS)

            sources = page.locator(".report-sources-card")
            pages = page.locator(".report-pages-card")
            visitors = page.locator(".stat-visitors-figure")
            await expect(visitors).to_have_text("3")
            await expect(pages.get_by_role("link", name="/pricing")).to_be_visible()
            await expect(pages.get_by_role("link", name="/blog")).to_be_visible()

            await sources.get_by_role("link", name="Organic Social").click()
            await expect(page.get_by_text("Channel is Organic Social")).to_be_visible()
            await expect(visitors).to_have_text("1")
            await expect(pages.get_by_role("link", name="/blog")).to_be_visible()
            await expect(pages.get_by_role("link", name="/pricing")).to_have_count(0)
            await expect(page.locator(".report-devices-card .pulse-row-value")).to_have_text(
                ["1 · 100%"])
            assert "f=is%7Cvisit%3Achannel%7COrganic+Social" in page.url

            await page.reload()  # the filter lives in the URL
            await expect(page.get_by_text("Channel is Organic Social")).to_be_visible()
            await expect(visitors).to_have_text("1")
            await page.keyboard.press("w")  # Plausible's shortcut: last 7 days
            await page.wait_for_url("**period=7d**", timeout=PATIENCE_MS)
            await expect(page.get_by_text("Channel is Organic Social")).to_be_visible()
            await expect(visitors).to_have_text("1")
            await page.keyboard.press("ArrowLeft")  # the 7 days before: nothing
            await page.wait_for_url("**period=custom**", timeout=PATIENCE_MS)
            await expect(visitors).to_have_text("0")
            shot: Any = tmp_path / "dashboard.png"
            await page.screenshot(path=str(shot), full_page=True)
