"""The all-websites view in a real browser: 25 websites on two pages, sorted by current visitors
(the one with visitors first) or by name in natural order, searchable, with sparklines; it fits a
phone and passes axe-core in light and dark mode."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from models.db import database, open_database
from models.entities import User
from models.websites import create_website
from tests.e2e_support import ROOT, PulseProcess, chromium, pulse_cli, require_browser
from tests.page_checks import assert_page_for_everyone, axe_source
from tests.test_e2e_live import EMAIL, PASSWORD, PATIENCE_MS, Site, sign_in

SCREENSHOT = ROOT / "docs" / "websites.png"


def add_websites(data_dir: Path, count: int) -> list[str]:
    """``count`` websites 'Site 1' … owned by EMAIL, written straight into the data directory's
    database (the CLI would start a process for each); their ids."""
    db = open_database(f"sqlite:///{data_dir / 'pulse.db'}")
    try:
        owner = User.get(User.email == EMAIL)
        with database.atomic():
            return [create_website(f"site{n}.example", name=f"Site {n}", owner=owner).id
                    for n in range(1, count + 1)]
    finally:
        db.close()


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_the_websites_view_in_a_browser(tmp_path: Path) -> None:
    require_browser()
    axe_source()
    from playwright.async_api import expect

    expect.set_options(timeout=PATIENCE_MS)
    data_dir = tmp_path / "data"
    pulse_cli(data_dir, "create-user", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    ids = add_websites(data_dir, 25)
    with PulseProcess(data_dir) as pulse:
        site = Site(data_dir, ids[11], pulse)  # Site 12 gets visitors
        for n, path in enumerate(["/", "/pricing", "/blog"]):
            await asyncio.to_thread(site.track, path, f"v{n}")
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1100, "height": 900})
            await sign_in(page, pulse.base_url)
            rows = page.locator(".pulse-site-row:visible")
            await expect(rows).to_have_count(20)
            await expect(page.get_by_text("1–20 of 25")).to_be_visible()
            await expect(rows.first).to_contain_text("Site 12")  # by current visitors
            await expect(rows.first).to_contain_text("3 current visitors")
            await expect(rows.nth(1)).to_contain_text("Site 1")
            assert await rows.first.locator("polyline").count() == 1
            if os.environ.get("PULSE_SCREENSHOTS") == "1":  # refresh the README's picture
                await page.screenshot(path=str(SCREENSHOT))

            await page.get_by_label("Next page").click()
            await expect(page.get_by_text("21–25 of 25")).to_be_visible()
            await expect(rows).to_have_count(5)

            await page.get_by_label("Search websites").fill("site 2")
            await expect(rows).to_have_count(7)  # Site 2 and Site 20 … 25
            await expect(rows.first).to_contain_text("Site 2")
            await assert_page_for_everyone(page)
