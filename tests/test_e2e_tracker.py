"""The trackers in a real browser: a cross-origin SPA page with our one-tag snippet, or with
Plausible's or Umami's official tracker, a real Pulse server, and an SSE subscriber that must
see every pageview and event.

The official trackers, as published on the npm registry, are fetched once with ``npm pack``
into ``~/.cache/pulse-tests/npm`` (never committed); without npm (or the registry) their tests
skip, unless ``PULSE_REQUIRE_BROWSER=1``."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backend.tracker_script import tracker_script
from tests.e2e_support import (
    BROWSER_UA,
    PulseProcess,
    StaticSite,
    chromium,
    pulse_cli,
    require_browser,
)
from tests.sse_client import SSEReader

pytestmark = [pytest.mark.e2e]

PAGES = Path(__file__).resolve().parent / "pages"


@dataclass
class Setup:
    """A running Pulse server, a static site on another origin, the website and a token."""

    pulse: PulseProcess
    site: StaticSite
    website_id: str
    token: str
    root: Path

    def render(self, template: str, target: str, **values: str) -> None:
        """Write ``tests/pages/<template>`` into the site as ``target``, placeholders filled."""
        text = (PAGES / template).read_text()
        values = {"pulse": self.pulse.base_url, "website_id": self.website_id, "attrs": "",
                  "script": "/js/pulse.js", **values}
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        path = self.root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def sse(self) -> SSEReader:
        """A subscriber to the website's live stream."""
        url = f"{self.pulse.base_url}/admin/analytics/live?website_id={self.website_id}"
        return SSEReader(url, {"Authorization": f"Bearer {self.token}"}).start()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """Pulse on one loopback port, the test site on another (so the tracker posts cross-origin)."""
    require_browser()
    data_dir, root = tmp_path / "data", tmp_path / "site"
    root.mkdir()
    with StaticSite(root) as site:
        pulse_cli(data_dir, "create-user", "e2e@example.com", "--password-stdin",
                  stdin="e2e password\n")
        website_id = pulse_cli(data_dir, "create-website", "shop.example", "--origin",
                               site.origin)
        token = pulse_cli(data_dir, "create-token", "e2e@example.com")
        with PulseProcess(data_dir) as pulse:
            yield Setup(pulse, site, website_id, token, root)


def new_events(reader: SSEReader) -> list[dict[str, Any]]:
    """The events the subscriber received, oldest first."""
    return [frame.data["data"] for frame in reader.of_type("new_event")]


async def wait_events(reader: SSEReader, count: int) -> list[dict[str, Any]]:
    """Wait until the subscriber has ``count`` events; return them."""
    await reader.wait_for(lambda r: len(r.of_type("new_event")) >= count, timeout=30)
    return new_events(reader)


@pytest.mark.asyncio
async def test_spa_pageviews_custom_and_outbound_events_reach_the_live_stream(
        setup: Setup) -> None:
    setup.render("shop.html", "shop.html", outbound=f"{setup.pulse.base_url}/healthz")
    reader = setup.sse()
    await reader.wait_for(lambda r: bool(r.of_type("connected")), timeout=30)
    console: list[str] = []
    try:
        async with chromium() as browser:
            page = await browser.new_page(user_agent=BROWSER_UA)
            page.on("console", lambda message: console.append(message.text))
            await page.goto(f"{setup.site.origin}/shop.html?utm_source=e2e")
            # The pageview on load, then the call queued before the script loaded.
            events = await wait_events(reader, 2)
            await page.click("#to-products")
            events = await wait_events(reader, 3)
            await page.click("#to-about")
            events = await wait_events(reader, 4)
            await page.go_back()  # popstate
            events = await wait_events(reader, 5)
            await page.click("#same-url")  # replaceState to the same URL: no new pageview
            await page.click("#signup")
            events = await wait_events(reader, 6)
            await page.click("#outbound")
            events = await wait_events(reader, 7)
    finally:
        reader.close()

    assert [(e["event_type"], e["pathname"]) for e in events] == [
        ("pageview", "/shop.html"),
        ("early", "/shop.html"),
        ("pageview", "/products"),
        ("pageview", "/about"),
        ("pageview", "/products"),
        ("signup", "/products"),
        ("outbound", "/products"),
    ]
    assert events[1]["props"] == {"queued": True}
    assert events[5]["props"] == {"plan": "pro"}
    assert events[6]["props"] == {"url": f"{setup.pulse.base_url}/healthz"}
    assert events[0]["source"] == "e2e"  # utm_source from the landing URL
    assert events[2]["title"] == "Products — Pulse test shop"
    assert len({e["visitor_id"] for e in events}) == 1
    assert len({e["session_id"] for e in events}) == 1
    assert events[0]["visitor_id"] != events[0]["session_id"]
    assert events[0]["hostname"] == "127.0.0.1"
    assert events[0]["browser"] == "Chrome" and events[0]["device"] == "desktop"
    assert any(line.startswith("[Pulse] initialized") for line in console), console


@pytest.mark.asyncio
@pytest.mark.parametrize("persist", [False, True], ids=["default", "data-persist=local"])
async def test_hash_routes_count_as_pages_and_tabs_share_a_visit_unless_ids_persist(
        setup: Setup, persist: bool) -> None:
    setup.render("hash/index.html", "hash/index.html",
                 attrs='data-persist="local"' if persist else "")
    reader = setup.sse()
    await reader.wait_for(lambda r: bool(r.of_type("connected")), timeout=30)
    try:
        async with chromium() as browser:
            context = await browser.new_context(user_agent=BROWSER_UA)
            first = await context.new_page()
            await first.goto(f"{setup.site.origin}/hash/#/start")
            await wait_events(reader, 1)
            await first.click("#to-settings")
            await wait_events(reader, 2)
            second = await context.new_page()  # another tab of the same visitor
            await second.goto(f"{setup.site.origin}/hash/")
            events = await wait_events(reader, 3)
            stored = await first.evaluate("[localStorage.length, sessionStorage.length]")
    finally:
        reader.close()

    assert [e["pathname"] for e in events] == ["/hash/start", "/hash/settings", "/hash/"]
    assert len({e["visitor_id"] for e in events}) == 1
    if persist:  # a random id in localStorage, a visit per tab in sessionStorage
        assert stored == [1, 1]
        assert events[0]["session_id"] == events[1]["session_id"] != events[2]["session_id"]
    else:  # the server's visit: 30 minutes idle per visitor
        assert stored == [0, 0]
        assert events[0]["session_id"] == events[1]["session_id"] == events[2]["session_id"]


@pytest.mark.asyncio
async def test_the_default_tag_stores_nothing_and_two_pageviews_are_one_visitor_and_visit(
        setup: Setup) -> None:
    setup.render("shop.html", "shop.html", outbound="https://example.org/",
                 script=tracker_script().path)  # the versioned URL the panel's snippet shows
    reader = setup.sse()
    await reader.wait_for(lambda r: bool(r.of_type("connected")), timeout=30)
    try:
        async with chromium() as browser:
            context = await browser.new_context(user_agent=BROWSER_UA)
            page = await context.new_page()
            await page.goto(f"{setup.site.origin}/shop.html")
            await wait_events(reader, 2)  # the pageview and the queued "early" call
            await page.goto(f"{setup.site.origin}/shop.html?again=1")  # a second page load
            events = await wait_events(reader, 4)
            storage = await page.evaluate(
                "[localStorage.length, sessionStorage.length, document.cookie]")
            cookies = await context.cookies()
    finally:
        reader.close()

    assert [(e["event_type"], e["pathname"]) for e in events] == [
        ("pageview", "/shop.html"), ("early", "/shop.html"),
        ("pageview", "/shop.html"), ("early", "/shop.html")]
    assert storage == [0, 0, ""]
    assert cookies == []
    assert len({e["visitor_id"] for e in events}) == 1
    assert len({e["session_id"] for e in events}) == 1
    stats = await reader_stats(setup)
    assert (stats["currentVisitors"], stats["uniqueVisitors"]) == (1, 1)


async def reader_stats(setup: Setup) -> dict[str, Any]:
    """The ``connected`` frame of a fresh subscriber: the live window's numbers now."""
    reader = setup.sse()
    try:
        await reader.wait_for(lambda r: bool(r.of_type("connected")), timeout=30)
        return reader.of_type("connected")[0].data["data"]
    finally:
        reader.close()


PRIVACY_CASES = {
    "localhost without data-allow-localhost": ("", "", "localhost"),
    "Global Privacy Control": (
        "data-allow-localhost data-respect-dnt",
        "Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})",
        "Do Not Track / Global Privacy Control"),
    "Do Not Track": (
        "data-allow-localhost data-respect-dnt",
        "Object.defineProperty(navigator, 'doNotTrack', {get: () => '1'})",
        "Do Not Track / Global Privacy Control"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(PRIVACY_CASES))
async def test_the_tracker_stays_silent_when_it_must(setup: Setup, case: str) -> None:
    attrs, init_script, reason = PRIVACY_CASES[case]
    setup.render("private.html", "private.html", attrs=attrs)
    setup.render("shop.html", "shop.html", outbound="https://example.org/")
    reader = setup.sse()
    await reader.wait_for(lambda r: bool(r.of_type("connected")), timeout=30)
    tracked: list[str] = []
    console: list[str] = []
    try:
        async with chromium() as browser:
            context = await browser.new_context(user_agent=BROWSER_UA)
            if init_script:
                await context.add_init_script(init_script)
            page = await context.new_page()
            page.on("console", lambda message: console.append(message.text))
            page.on("request", lambda request: tracked.append(request.url)
                    if "/web/analytics/track" in request.url else None)
            async with page.expect_console_message(
                    lambda m: m.text.startswith("[Pulse] ignored signup")):
                await page.goto(f"{setup.site.origin}/private.html")
                await page.click("#signup")
            await page.close()
            # A page that is tracked, in a fresh context: its events are the first to arrive.
            allowed = await browser.new_page(user_agent=BROWSER_UA)
            await allowed.goto(f"{setup.site.origin}/shop.html")
            events = await wait_events(reader, 2)
    finally:
        reader.close()

    assert tracked == []
    assert f"[Pulse] ignored pageview: {reason}" in console
    assert [e["pathname"] for e in events] == ["/shop.html", "/shop.html"]


# Plausible's and Umami's official trackers: pageview, SPA navigation, a custom event with
# properties and an outbound link arrive live over SSE, with one visitor id.

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pulse-tests" / "npm"
PLAUSIBLE = ("@plausible-analytics/tracker@0.4.6", "package/plausible.js")
# Umami publishes no separate tracker package: the `umami` package ships the tracker's source
# (src/tracker/index.js, which its build only minifies into public/script.js).
UMAMI = ("umami@2.10.0", "package/src/tracker/index.js")


def npm_file(spec: str, member: str) -> Path:
    """``member`` of the npm package ``spec``, downloaded once into the cache."""
    target = CACHE / spec.replace("/", "+") / member
    if target.exists():
        return target
    problem = ""
    npm = shutil.which("npm")
    if npm is None:
        problem = "npm is missing (apt-get install npm)"
    else:
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
            result = subprocess.run([npm, "pack", spec, "--pack-destination", scratch],
                                    capture_output=True, text=True, timeout=300)
            tarballs = list(Path(scratch).glob("*.tgz"))
            if result.returncode != 0 or not tarballs:
                problem = f"npm pack {spec} failed: {result.stderr.strip()[-300:]}"
            else:
                with tarfile.open(tarballs[0]) as archive:
                    archive.extract(member, Path(scratch) / "out", filter="data")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(Path(scratch) / "out" / member, target)
    if problem:
        if os.environ.get("PULSE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the official tracker tests are required here but {problem}")
        pytest.skip(problem)
    return target


def live_events(reader: SSEReader) -> list[dict[str, Any]]:
    """Events received over SSE, oldest first."""
    return [frame.data["data"] for frame in reader.of_type("new_event")]


def activity(reader: SSEReader) -> list[dict[str, Any]]:
    """What the live feed shows: every event but Plausible's engagement pings."""
    return [e for e in live_events(reader) if e["event_type"] != "engagement"]


async def wait_activity(reader: SSEReader, count: int) -> list[dict[str, Any]]:
    """Wait until ``count`` feed events arrived; return them."""
    await reader.wait_for(lambda r: len(activity(r)) >= count, timeout=30)
    return activity(reader)


async def drive_shop(setup: Setup, page_name: str) -> tuple[list[dict[str, Any]], SSEReader]:
    """Open the page, navigate (SPA), sign up and follow the outbound link; return the feed
    events and the reader (closed)."""
    reader = setup.sse()
    await reader.wait_for(lambda r: bool(r.of_type("connected")), timeout=30)
    try:
        async with chromium() as browser:
            page = await browser.new_page(user_agent=BROWSER_UA)
            await page.goto(f"{setup.site.origin}/{page_name}")
            await wait_activity(reader, 1)
            await page.click("#to-products")
            await wait_activity(reader, 2)
            await page.click("#signup")
            await wait_activity(reader, 3)
            await page.click("#outbound")
            events = await wait_activity(reader, 4)
            await page.wait_for_url(f"{setup.pulse.base_url}/healthz")
    finally:
        reader.close()
    return events, reader


@pytest.mark.asyncio
async def test_plausibles_official_tracker(setup: Setup) -> None:
    shutil.copy(npm_file(*PLAUSIBLE), setup.root / "plausible.js")
    outbound = f"{setup.pulse.base_url}/healthz"
    setup.render("official/plausible.html", "shop.html", outbound=outbound)
    events, reader = await drive_shop(setup, "shop.html")

    assert [(e["event_type"], e["pathname"]) for e in events] == [
        ("pageview", "/shop.html"),
        ("pageview", "/products"),
        ("signup", "/products"),
        ("Outbound Link: Click", "/products"),
    ]
    assert events[2]["props"] == {"plan": "pro"}
    assert events[3]["props"] == {"url": outbound}
    assert events[0]["browser"] == "Chrome" and events[0]["hostname"] == "127.0.0.1"
    everything = live_events(reader)
    assert len({e["visitor_id"] for e in everything}) == 1
    assert len({e["session_id"] for e in everything}) == 1
    # Leaving a page (SPA navigation, the tab hidden) sends an engagement ping: stored and
    # streamed, never part of the feed.
    engagement = [e for e in everything if e["event_type"] == "engagement"]
    assert engagement, "Plausible's tracker sent no engagement event"
    assert set(engagement[0]["props"]) == {"sd", "e"}
    assert engagement[0]["interactive"] is False


@pytest.mark.asyncio
async def test_umamis_official_tracker(setup: Setup) -> None:
    shutil.copy(npm_file(*UMAMI), setup.root / "umami.js")
    outbound = f"{setup.pulse.base_url}/healthz"
    setup.render("official/umami.html", "shop.html", outbound=outbound)
    events, reader = await drive_shop(setup, "shop.html")

    assert [(e["event_type"], e["pathname"]) for e in events] == [
        ("pageview", "/shop.html"),
        ("pageview", "/products"),
        ("signup", "/products"),
        ("outbound-link-click", "/products"),
    ]
    assert events[0]["title"] == "Home — Umami's tracker on Pulse"
    assert events[1]["title"] == "Products — Umami's tracker on Pulse"
    assert events[2]["props"] == {"plan": "pro"}
    assert events[3]["props"] == {"url": outbound}
    assert events[0]["browser"] == "Chrome" and events[0]["hostname"] == "127.0.0.1"
    assert len({e["visitor_id"] for e in events}) == 1
    assert len({e["session_id"] for e in events}) == 1
