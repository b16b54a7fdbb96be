"""The live page's world map in a real browser: the shipped shapes render, countries with
visitors are shaded, a click on a country filters the feed to it, the map follows dark mode, and
the page still fits a phone and passes axe-core with the map on it (light and dark)."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_support import (
    BROWSER_UA,
    ROOT,
    PulseProcess,
    chromium,
    pulse_cli,
    require_browser,
)
from tests.page_checks import assert_page_for_everyone, axe_source
from tests.test_e2e_live import EMAIL, PASSWORD, PATIENCE_MS, sign_in

SCREENSHOT = ROOT / "docs" / "live-world-map.png"
GERMANY, BRAZIL = "85.214.0.1", "200.147.1.1"  # iptocc: DE, BR


def track(base_url: str, website_id: str, pathname: str, visitor: str, ip: str) -> None:
    """POST one pageview from ``ip`` (the server trusts X-Forwarded-For in this test)."""
    body = {"website_id": website_id, "event_type": "pageview", "pathname": pathname,
            "visitor_id": visitor, "session_id": "s-" + visitor}
    request = urllib.request.Request(
        base_url + "/web/analytics/track", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": BROWSER_UA,
                 "X-Forwarded-For": ip}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202


async def click_country(page: Any, lon: float, lat: float) -> None:
    """Click the map where ECharts draws ``lon``/``lat``."""
    world_map = page.locator('[data-pulse="world-map"]')
    x, y = await world_map.evaluate(
        "(el, at) => getElement(el).chart.convertToPixel({geoIndex: 0}, at)", [lon, lat])
    box = await world_map.bounding_box()
    await page.mouse.click(box["x"] + x, box["y"] + y)


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_the_world_map_renders_and_a_click_filters_the_feed(tmp_path: Path) -> None:
    require_browser()
    axe_source()
    from playwright.async_api import expect

    expect.set_options(timeout=PATIENCE_MS)
    data_dir = tmp_path / "data"
    pulse_cli(data_dir, "create-user", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    website_id = pulse_cli(data_dir, "create-website", "shop.example", "--name",
                           "Shop").splitlines()[-1].strip()
    with PulseProcess(data_dir, env={"PULSE_TRUST_PROXY": "1"}) as pulse:
        base_url = pulse.base_url
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000},
                                          user_agent=BROWSER_UA)
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            await sign_in(page, base_url)
            await page.goto(f"{base_url}/websites/{website_id}/live")
            await page.wait_for_function("window.socket && window.socket.connected",
                                         timeout=PATIENCE_MS)
            for n, (path, ip) in enumerate([("/berlin", GERMANY), ("/hamburg", GERMANY),
                                            ("/rio", BRAZIL)]):
                await asyncio.to_thread(track, base_url, website_id, path, f"v{n}", ip)
            await expect(page.locator('[data-pulse="feed-row-2"]')).to_be_visible()
            world_map = page.locator('[data-pulse="world-map"]')
            await page.wait_for_function(
                """() => { const el = document.querySelector('[data-pulse="world-map"]');
                           const chart = el && getElement(el) && getElement(el).chart;
                           const geo = chart && chart.getOption().geo;
                           return geo && geo[0].regions.filter(r => r.tooltip).length === 2; }""",
                timeout=PATIENCE_MS)
            assert await world_map.locator("canvas").count() == 2  # the world; the pulses
            assert not [e for e in errors if "map" in e.lower()], errors
            if os.environ.get("PULSE_SCREENSHOTS") == "1":  # refresh the README's picture
                await page.wait_for_timeout(1500)  # the pulses at full size: for the picture only
                await page.locator(".pulse-world-map").screenshot(path=str(SCREENSHOT))

            await click_country(page, -51.0, -10.0)  # Brazil
            await expect(page.locator('[data-pulse="country-filter"]')).to_have_text(
                "Showing visitors from Brazil")
            await expect(page.locator('[data-pulse="feed-row-1"]')).to_be_hidden()
            await expect(page.locator('[data-pulse="active-page-1"]')).to_be_hidden()
            await expect(page.locator('[data-pulse="feed-row-0"]')).to_contain_text("/rio")
            await expect(page.locator('[data-pulse="active-page-0"]')).to_contain_text("/rio")
            await assert_page_for_everyone(page)  # with the filter on; it ends in dark mode
            await page.wait_for_function(  # the map's sea of countries follows the theme
                """() => getElement(document.querySelector('[data-pulse="world-map"]')).chart
                         .getOption().geo[0].itemStyle.areaColor === '#334155'""",
                timeout=PATIENCE_MS)

            await page.locator('[data-pulse="clear-country"]').click()
            await expect(page.locator('[data-pulse="feed-row-2"]')).to_be_visible()
            await expect(page.locator('[data-pulse="country-filter"]')).to_be_hidden()
