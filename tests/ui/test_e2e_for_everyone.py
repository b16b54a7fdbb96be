"""Every panel page on a 390 × 844 phone, in light and dark mode, in a real browser: nothing
scrolls sideways and axe-core finds no serious or critical violation; the panel works by
keyboard alone; dark mode follows the system and a toggle that is remembered."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_support import BROWSER_UA, PulseProcess, chromium, pulse_cli, require_browser
from tests.page_checks import (
    PHONE,
    PageReport,
    assert_page_for_everyone,
    axe_source,
    reports_in_both_schemes,
)

PATIENCE_MS = 60_000  # how long the browser may take on a busy machine (a bound, not a speed)
EMAIL = "owner@example.com"
PASSWORD = "for everyone password"


def track(base_url: str, website_id: str, pathname: str, visitor: str,
          **fields: Any) -> None:
    """POST one event as a browser's tracker would."""
    body = {"website_id": website_id, "event_type": "pageview", "pathname": pathname,
            "visitor_id": visitor, "session_id": "s-" + visitor, **fields}
    request = urllib.request.Request(
        base_url + "/web/analytics/track", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": BROWSER_UA}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202


def marked(page: Any, name: str) -> Any:
    """The element a live widget tagged with ``data-pulse=name``."""
    return page.locator(f'[data-pulse="{name}"]')


async def settled(page: Any) -> None:
    """Wait until NiceGUI mounted the page and its socket is connected."""
    await page.wait_for_load_state("load")
    await page.wait_for_function("window.socket && window.socket.connected", timeout=PATIENCE_MS)
    await page.locator("h1").first.wait_for(timeout=PATIENCE_MS)


async def both_schemes(page: Any, reports: list[tuple[str, PageReport]]) -> None:
    """Collect the page's reports in light and dark mode (all pages fail together)."""
    reports.extend(await reports_in_both_schemes(page))


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_every_page_fits_a_phone_and_passes_axe(tmp_path: Path) -> None:
    require_browser()
    axe_source()  # install before the server starts, so a missing npm fails fast
    from playwright.async_api import expect

    expect.set_options(timeout=PATIENCE_MS)
    reports: list[tuple[str, PageReport]] = []
    with PulseProcess(tmp_path / "data") as pulse:
        base_url = pulse.base_url
        async with chromium() as browser:
            page = await browser.new_page(viewport=PHONE, user_agent=BROWSER_UA)

            await page.goto(base_url + "/setup")
            await settled(page)
            await both_schemes(page, reports)
            await page.get_by_label("Email").fill(EMAIL)
            await page.get_by_label("Password", exact=True).fill(PASSWORD)
            await page.get_by_label("Password (again)").fill(PASSWORD)
            await page.get_by_role("button", name="Create admin account").click()
            await page.wait_for_url(base_url + "/", timeout=PATIENCE_MS)
            await settled(page)
            await both_schemes(page, reports)

            await page.get_by_role("button", name="Add website").click()
            await expect(page.get_by_label("Domain")).to_be_visible()
            await both_schemes(page, reports)  # the dialog open
            await page.get_by_label("Name").fill("Nimbus shop with a rather long name")
            await page.get_by_label("Domain").fill("shop.example.com")
            await page.get_by_role("button", name="Create website").click()
            await page.wait_for_url(base_url + "/websites/*", timeout=PATIENCE_MS)
            website_id = page.url.rsplit("/", 1)[1]
            await settled(page)
            await both_schemes(page, reports)

            await page.goto(base_url + "/")
            await settled(page)
            await both_schemes(page, reports)

            await page.goto(f"{base_url}/websites/{website_id}/live")
            await settled(page)
            await both_schemes(page, reports)  # waiting for the first event
            for n, path in enumerate(["/", "/pricing", "/blog/a-very-long-article-slug-that-"
                                      "goes-on-and-on-and-on", "/checkout"]):
                await asyncio.to_thread(
                    track, base_url, website_id, path, f"v{n}", title=f"Page {n}",
                    referrer="https://www.google.com/", screen_width=390,
                    props={"plan": "pro"} if n == 3 else None)
            await expect(marked(page, "feed-row-3")).to_be_visible()
            await both_schemes(page, reports)

            await page.goto(f"{base_url}/websites/{website_id}/dashboard")
            await settled(page)
            await expect(page.locator(".stat-visitors-figure")).to_have_text("4")
            await expect(page.locator(".report-pages-card").get_by_role(
                "link", name="/pricing")).to_be_visible()
            await both_schemes(page, reports)

            await page.goto(f"{base_url}/websites/{website_id}/alerts")
            await settled(page)
            await both_schemes(page, reports)

            await page.goto(f"{base_url}/websites/{website_id}/shares")
            await settled(page)
            await page.get_by_label("Label").fill("Office TV")
            await page.get_by_label("Password (optional, 8+ characters)").fill(PASSWORD)
            await page.get_by_role("button", name="Create link").click()
            await expect(page.get_by_text("Office TV")).to_be_visible()
            await both_schemes(page, reports)
            slug = re.search(r"/share/([A-Za-z0-9_-]+)", await page.content())
            assert slug, "no share link on the page"
            shared = await browser.new_page(viewport=PHONE, user_agent=BROWSER_UA)
            await shared.goto(f"{base_url}/share/{slug.group(1)}")  # no account: the password
            await both_schemes(shared, reports)
            await shared.get_by_label("Password").fill(PASSWORD)
            await shared.get_by_role("button").click()
            await shared.wait_for_url(f"{base_url}/share/{slug.group(1)}/live",
                                      timeout=PATIENCE_MS)
            await settled(shared)
            await expect(marked(shared, "feed-row-3")).to_be_visible()
            await both_schemes(shared, reports)
            await shared.goto(f"{base_url}/share/no-such-link")
            await both_schemes(shared, reports)
            await shared.close()

            await page.goto(base_url + "/tokens")
            await settled(page)
            await page.get_by_label("Token name").fill("phone script")
            await page.get_by_role("button", name="Create token").click()
            await expect(page.get_by_text("phone script")).to_be_visible()
            await both_schemes(page, reports)
            await page.get_by_role("button", name="Revoke").click()
            await expect(page.get_by_role("dialog", name="Revoke")).to_be_visible()
            await both_schemes(page, reports)  # a question before something final
            await page.get_by_role("button", name="Cancel").click()
            await expect(page.get_by_role("dialog")).to_have_count(0)

            await page.goto(base_url + "/users")
            await settled(page)
            await both_schemes(page, reports)

            await page.goto(base_url + "/websites/no-such-website")
            await settled(page)
            await both_schemes(page, reports)

            await page.goto(base_url + "/setup")  # "already set up"
            await settled(page)
            await both_schemes(page, reports)

            await page.get_by_role("button", name="Menu").click()
            await page.get_by_role("menuitem", name="Sign out").click()
            await page.wait_for_url(base_url + "/login", timeout=PATIENCE_MS)
            await settled(page)
            await both_schemes(page, reports)
            await page.get_by_label("Email").fill(EMAIL)
            await page.get_by_label("Password").fill("not the password")
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("alert").filter(
                has_text="Wrong email or password.")).to_be_visible()
            await both_schemes(page, reports)  # the error line and its notification

    for scheme, report in reports:  # the table of issue 14, with `pytest -s`
        print(f"[{scheme}] {report.summary()}")
    failing = [(scheme, r) for scheme, r in reports if not r.ok]
    assert not failing, "\n".join(f"[{scheme}] {r.summary()}\n{r.details()}"
                                  for scheme, r in failing)


FOCUS_VISIBLE = """() => {
    const el = document.activeElement;
    const style = getComputedStyle(el);
    return el !== document.body && style.outlineStyle !== "none"
        && parseFloat(style.outlineWidth) >= 2;
}"""


async def tab_to(page: Any, check: str, presses: int = 40) -> None:
    """Press Tab until ``check`` (a JS expression on ``el``, the focused element) holds; the
    focus must be visible on the element it lands on."""
    for _ in range(presses):
        await page.keyboard.press("Tab")
        if await page.evaluate(f"(() => {{ const el = document.activeElement; "
                               f"return !!({check}); }})()"):
            assert await page.evaluate(FOCUS_VISIBLE), \
                await page.evaluate("document.activeElement.outerHTML.slice(0, 200)")
            return
    raise AssertionError(f"Tab never reached {check}")


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_keyboard_only_sign_in_and_the_live_view(tmp_path: Path) -> None:
    require_browser()
    data_dir = tmp_path / "data"
    pulse_cli(data_dir, "create-user", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    website_id = pulse_cli(data_dir, "create-website", "shop.example", "--name", "Shop") \
        .splitlines()[-1].strip()
    with PulseProcess(data_dir) as pulse:
        base_url = pulse.base_url
        async with chromium() as browser:
            page = await browser.new_page(viewport=PHONE)
            await page.goto(base_url + "/login")
            await settled(page)
            await tab_to(page, "el.textContent === 'Skip to content'", presses=1)
            await page.keyboard.press("Enter")
            await page.wait_for_function("document.activeElement.id === 'main'",
                                         timeout=PATIENCE_MS)
            await tab_to(page, "el.tagName === 'INPUT' && el.type === 'email'")
            await page.keyboard.type(EMAIL)
            await tab_to(page, "el.tagName === 'INPUT' && el.type === 'password'")
            await page.keyboard.type(PASSWORD)
            await tab_to(page, "el.tagName === 'BUTTON' && el.textContent.includes('Sign in')")
            await page.keyboard.press("Enter")
            await page.wait_for_url(base_url + "/", timeout=PATIENCE_MS)
            await settled(page)

            # The header's menu opens and closes by keyboard on a phone.
            await tab_to(page, "el.getAttribute('aria-label') === 'Menu'")
            await page.keyboard.press("Enter")
            menu = page.get_by_role("menu")
            await menu.get_by_role("menuitem", name="API tokens").wait_for(timeout=PATIENCE_MS)
            await page.keyboard.press("Escape")
            await menu.wait_for(state="hidden", timeout=PATIENCE_MS)

            await tab_to(page, "el.tagName === 'BUTTON' && el.textContent.includes('Live')")
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base_url}/websites/{website_id}/live",
                                    timeout=PATIENCE_MS)
            await settled(page)
            await page.wait_for_function("document.documentElement.dataset.pulseLink === 'live'",
                                         timeout=PATIENCE_MS)
            status = page.locator(".pulse-link-status")
            assert await status.get_attribute("role") == "status"
            await page.wait_for_function(
                "document.querySelector('.pulse-link-status').textContent === 'Live: connected'",
                timeout=PATIENCE_MS)
            await tab_to(page, "el.tagName === 'A' && el.textContent === 'Website settings'")
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base_url}/websites/{website_id}", timeout=PATIENCE_MS)
            await settled(page)
            await assert_page_for_everyone(page)  # the one line a new page's test needs


CHART_TEXT = ("getElement(document.querySelector('.pulse-chart')).chart"
              ".getOption().xAxis[0].axisLabel.color")


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_dark_mode_follows_the_system_until_the_user_picks_one(tmp_path: Path) -> None:
    require_browser()
    data_dir = tmp_path / "data"
    pulse_cli(data_dir, "create-user", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    website_id = pulse_cli(data_dir, "create-website", "shop.example", "--name", "Shop") \
        .splitlines()[-1].strip()
    with PulseProcess(data_dir) as pulse:
        base_url = pulse.base_url
        async with chromium() as browser:
            context = await browser.new_context(viewport=PHONE, color_scheme="dark")
            page = await context.new_page()
            await page.goto(base_url + "/login")
            await settled(page)
            assert await page.evaluate("pulseDark()")  # the system says dark
            await page.get_by_label("Email").fill(EMAIL)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(base_url + "/", timeout=PATIENCE_MS)
            await settled(page)
            await page.emulate_media(color_scheme="light")
            await page.wait_for_function("!pulseDark()", timeout=PATIENCE_MS)

            toggle = page.locator('[aria-label^="Theme:"]')
            assert await toggle.get_attribute("aria-label") == "Theme: same as the system"
            await toggle.click()  # system → dark, although the system says light
            await page.wait_for_function("pulseDark()", timeout=PATIENCE_MS)
            assert await toggle.get_attribute("aria-label") == "Theme: dark"

            await page.goto(f"{base_url}/websites/{website_id}/live")  # remembered
            await settled(page)
            assert await page.evaluate("pulseDark()")
            await page.wait_for_function(f"{CHART_TEXT} === '#cbd5e1'", timeout=PATIENCE_MS)
            other = await browser.new_page(viewport=PHONE, color_scheme="light")
            await other.goto(base_url + "/login")  # signed out elsewhere: the system's
            await settled(other)
            assert not await other.evaluate("pulseDark()")

            await toggle.click()  # dark → light: the chart follows without a reload
            await page.wait_for_function("!pulseDark()", timeout=PATIENCE_MS)
            await page.wait_for_function(f"{CHART_TEXT} === '#475569'", timeout=PATIENCE_MS)
            await page.emulate_media(color_scheme="dark")
            await page.reload()
            await settled(page)
            assert not await page.evaluate("pulseDark()")  # light, whatever the system says


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_the_live_view_keeps_still_for_reduced_motion(tmp_path: Path) -> None:
    require_browser()
    data_dir = tmp_path / "data"
    pulse_cli(data_dir, "create-user", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    website_id = pulse_cli(data_dir, "create-website", "shop.example", "--name", "Shop") \
        .splitlines()[-1].strip()
    with PulseProcess(data_dir) as pulse:
        base_url = pulse.base_url
        async with chromium() as browser:
            page = await browser.new_page(viewport=PHONE, user_agent=BROWSER_UA)
            await page.goto(base_url + "/login")
            await page.get_by_label("Email").fill(EMAIL)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(base_url + "/", timeout=PATIENCE_MS)
            await page.goto(f"{base_url}/websites/{website_id}/live")
            await settled(page)
            await page.wait_for_function("document.documentElement.dataset.pulseLink === 'live'",
                                         timeout=PATIENCE_MS)
            await asyncio.to_thread(track, base_url, website_id, "/", "v1")
            await marked(page, "feed-row-0").wait_for(timeout=PATIENCE_MS)
            ring = "getComputedStyle(document.querySelector('.pulse-dot'), '::after')"
            row = "getComputedStyle(document.querySelector('.pulse-feed-row'))"
            chart = "getElement(document.querySelector('.pulse-chart')).chart.getOption()"
            assert await page.evaluate(f"{ring}.animationName") == "pulse-ring"
            assert await page.evaluate(f"{row}.transitionDuration") == "1s"

            await page.emulate_media(reduced_motion="reduce")
            await page.wait_for_function(f"{ring}.animationName === 'none'",
                                         timeout=PATIENCE_MS)
            assert await page.evaluate(f"{row}.transitionDuration") in ("0s", "1e-05s")
            await page.reload()  # the chart reads the preference when it is drawn
            await settled(page)
            await page.wait_for_function(f"{chart}.animation === false", timeout=PATIENCE_MS)
