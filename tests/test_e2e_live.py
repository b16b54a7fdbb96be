"""The live page in a real browser against a real server: it follows posted events without a
reload, shows hostile event text as text, and its connection dot goes red when the server stops
and green again when it comes back on the same port and data directory."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_support import BROWSER_UA, PulseProcess, chromium, pulse_cli, require_browser

EMAIL = "owner@example.com"
PASSWORD = "live page password"
PATIENCE_MS = 60_000  # how long the browser may take on a busy machine (a bound, not a speed)
XSS_TITLE = "<img src=x onerror=window.__xss=1>"
XSS_PATH = "/<img src=x onerror=window.__xss=2>"
XSS_PROP = "<script>window.__xss=3</script>"


@dataclass
class Site:
    """A data directory with an owner and a website, and the server serving it."""

    data_dir: Path
    website_id: str
    pulse: PulseProcess

    def track(self, pathname: str, visitor: str, **fields: Any) -> dict[str, Any]:
        """POST one event as a browser's tracker would; return the JSON answer."""
        body = {"website_id": self.website_id, "event_type": "pageview", "pathname": pathname,
                "visitor_id": visitor, "session_id": "s-" + visitor, **fields}
        request = urllib.request.Request(
            self.pulse.base_url + "/web/analytics/track", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "User-Agent": BROWSER_UA},
            method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202
            answer: dict[str, Any] = json.loads(response.read())
        assert "dropped" not in answer, answer
        return answer


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """An owner, a website in Europe/Berlin, and ``pulse serve`` on a free loopback port."""
    require_browser()
    data_dir = tmp_path / "data"
    pulse_cli(data_dir, "create-user", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    website_id = pulse_cli(data_dir, "create-website", "shop.example", "--name", "Shop",
                           "--timezone", "Europe/Berlin").splitlines()[-1].strip()
    started = Site(data_dir, website_id, PulseProcess(data_dir).start())
    try:
        yield started
    finally:
        started.pulse.stop()  # the one running now (the test restarts the server)


def same_port(data_dir: Path, port: int) -> PulseProcess:
    """A server on the data directory and port of one that stopped."""
    restarted = PulseProcess(data_dir)
    restarted.command = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    return restarted


async def sign_in(page: Any, base_url: str) -> None:
    """Sign in through the panel's sign-in page."""
    await page.goto(base_url + "/login")
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(base_url + "/", timeout=PATIENCE_MS)


async def link_state(page: Any, state: str) -> None:
    """Wait until the connection dot says ``state`` (live, lost)."""
    await page.wait_for_function(f"document.documentElement.dataset.pulseLink === '{state}'",
                                 timeout=PATIENCE_MS)


def dot_colour(page: Any) -> Any:
    """The connection dot's computed background colour."""
    return page.evaluate(
        "getComputedStyle(document.querySelector('.pulse-dot')).backgroundColor")


@pytest.mark.asyncio
async def test_the_panel_websocket_survives_a_browsers_extension_offer(tmp_path: Path) -> None:
    """Browsers offer permessage-deflate; the forwarding route must not pass that offer on."""
    import tornado.httpclient
    import tornado.websocket

    with PulseProcess(tmp_path / "data") as pulse:
        url = (pulse.base_url.replace("http", "ws")
               + "/_nicegui_ws/socket.io/?EIO=4&transport=websocket")
        request = tornado.httpclient.HTTPRequest(url, headers={
            "Origin": pulse.base_url,
            "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"})
        connection = await tornado.websocket.websocket_connect(request)
        try:
            opening = await asyncio.wait_for(connection.read_message(), 30)
        finally:
            connection.close()
    assert isinstance(opening, str) and opening.startswith("0{"), opening  # engine.io "open"


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_the_live_page_in_a_browser(site: Site) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=PATIENCE_MS)
    base_url = site.pulse.base_url

    def marked(page: Any, name: str) -> Any:
        return page.locator(f'[data-pulse="{name}"]')

    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        await sign_in(page, base_url)
        await page.goto(f"{base_url}/websites/{site.website_id}/live")
        await link_state(page, "live")
        assert await dot_colour(page) == "rgb(34, 197, 94)"  # green
        await expect(marked(page, "live-current")).to_have_text("0")
        await expect(page.get_by_text("Waiting for the first event…")).to_be_visible()
        await page.evaluate("""() => {
            window.__sameDocument = true;
            window.__highlighted = new Set();  // what highlighted rows were seen showing
            new MutationObserver(() => document.querySelectorAll(".pulse-fresh").forEach(
                (row) => window.__highlighted.add(row.textContent)
            )).observe(document.body, {subtree: true, attributes: true, childList: true,
                                       characterData: true});
        }""")

        # Events arrive without a reload: counter, feed and active pages follow.
        await asyncio.to_thread(site.track, "/pricing", "v1", title="Pricing")
        await expect(marked(page, "live-current")).to_have_text("1")
        await expect(marked(page, "feed-row-0")).to_contain_text("/pricing")
        await expect(marked(page, "active-page-0")).to_contain_text("1 viewing")
        await asyncio.to_thread(site.track, "/pricing", "v2", referrer="https://www.google.com/")
        await asyncio.to_thread(site.track, "/blog", "v3")
        await expect(marked(page, "live-current")).to_have_text("3")
        await expect(marked(page, "active-page-0")).to_contain_text("/pricing")
        await expect(marked(page, "active-page-0")).to_contain_text("2 viewing")
        await expect(marked(page, "active-page-1")).to_contain_text("/blog")
        await expect(marked(page, "feed-row-0")).to_contain_text("/blog")
        await expect(marked(page, "feed-row-1")).to_contain_text("google")
        assert await page.evaluate("window.__sameDocument") is True
        highlighted = await page.evaluate("[...window.__highlighted]")
        assert any("/blog" in text for text in highlighted), highlighted
        await expect(page.locator(".pulse-fresh")).to_have_count(0)  # only for a moment

        # Hostile text from the open internet is shown as text and never runs.
        await asyncio.to_thread(site.track, XSS_PATH, "v4", title=XSS_TITLE,
                                props={"note": XSS_PROP})
        await expect(marked(page, "feed-row-0")).to_contain_text(XSS_PATH)
        await expect(marked(page, "feed-row-0")).to_contain_text(XSS_TITLE)
        await expect(marked(page, "feed-row-0")).to_contain_text("note=" + XSS_PROP)
        await expect(marked(page, "active-page-0")).to_contain_text("/pricing")
        await expect(page.get_by_text(XSS_PATH, exact=True).first).to_be_visible()
        assert await page.evaluate("typeof window.__xss") == "undefined"
        assert await page.locator('img[src="x"]').count() == 0

        # The server stops: the dot turns red. It comes back on the same port: green again,
        # after NiceGUI reloads the page, which needs the session to have survived.
        port = site.pulse.port
        assert await asyncio.to_thread(site.pulse.stop) == 0
        await link_state(page, "lost")
        assert await dot_colour(page) == "rgb(239, 68, 68)"  # red
        site.pulse = await asyncio.to_thread(same_port(site.data_dir, port).start)
        await link_state(page, "live")
        assert page.url == f"{base_url}/websites/{site.website_id}/live"
        assert await dot_colour(page) == "rgb(34, 197, 94)"
        await expect(marked(page, "feed-row-0")).to_contain_text(XSS_PATH)  # from the database
        await asyncio.to_thread(site.track, "/after-restart", "v5")
        await expect(marked(page, "feed-row-0")).to_contain_text("/after-restart")
        await expect(marked(page, "live-current")).to_have_text("5")
        assert await page.evaluate("typeof window.__xss") == "undefined"
