"""The live page: it follows the hub without a reload, shows event text as text, highlights new
rows, and shows nothing of a website to someone who is not a member of it."""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from nicegui import ui

from backend.auth import create_user
from backend.live.stats import RECENT_EVENTS
from models.entities import Session, now_ms
from models.records import EventRecord, NewEvent
from tests.sse_client import SSEReader
from tests.test_live_stream import live_url, panel_cookie
from tests.ui.conftest import eventually
from ui.components.live_state import LiveState

WAIT = 50  # should_see retries 0.1 s apart: patience on a busy machine, not a speed limit


def new_event(website_id: str, pathname: str, visitor: str = "v1", *, ts: int | None = None,
              event_type: str = "pageview", **fields: Any) -> NewEvent:
    """An enriched event as the tracking endpoint would hand it to the writer."""
    values: dict[str, Any] = {"source": "google", "device": "mobile", "country": "DE",
                              "browser": "Chrome", "os": "Android", **fields}
    return NewEvent(website_id, now_ms() if ts is None else ts, event_type, pathname, visitor,
                    "s-" + visitor, **values)


_next_id = iter(range(10_000_000, 20_000_000))


def record(website_id: str, pathname: str, visitor: str = "v1", **fields: Any) -> EventRecord:
    """A committed event (for publishing straight to the hub)."""
    return new_event(website_id, pathname, visitor, **fields).stored(next(_next_id))


@pytest.mark.asyncio
async def test_the_live_button_of_a_website_opens_its_live_page(user: Any, signed_in: Any,
                                                                 website: Any) -> None:
    await user.open(f"/websites/{website.id}")
    user.find("Live").click()
    await user.should_see("Example · live", retries=WAIT)
    await user.should_see(marker="live-current")


def row_text(user: Any, marker: str, index: int) -> str:
    """The texts of row ``index`` of the rows marked ``marker``, joined by " | "."""
    (rows,) = user.find(marker=marker).elements
    return " | ".join(rows.texts(index))


def feed_text(user: Any, index: int) -> str:
    """The texts of the feed's row ``index``."""
    return row_text(user, "live-feed", index)


def feed_fresh(user: Any, index: int) -> bool:
    """Whether the feed's row ``index`` is highlighted."""
    (feed,) = user.find(marker="live-feed").elements
    return bool(feed.rows[index]["fresh"])


def text_of(user: Any, marker: str) -> str:
    """The visible texts inside the one element marked ``marker``, joined by " | "."""
    (element,) = user.find(marker=marker).elements
    return " | ".join(e.text for e in element.descendants(include_self=True)
                      if getattr(e, "text", "") and all(a.visible for a in (e, *e.ancestors())))


@pytest.mark.asyncio
async def test_the_page_follows_new_events_without_a_reload(user: Any, signed_in: Any,
                                                             website: Any, services: Any) -> None:
    await user.open(f"/websites/{website.id}/live")
    await user.should_see("Waiting for the first event…")
    assert text_of(user, "live-current") == "0"
    assert services.hub.listener_count(website.id) == 1

    await services.writer.write(new_event(website.id, "/pricing", "v1", title="Pricing"))
    await user.should_see("/pricing", retries=WAIT)
    await user.should_see(marker="live-current", content="1", retries=WAIT)
    await user.should_see("1 viewing")
    await user.should_see("Pricing")
    await user.should_see("google")
    await user.should_not_see("Waiting for the first event…")

    await services.writer.write(new_event(website.id, "/pricing", "v2", source="twitter",
                                          device="desktop", country="FR"))
    await services.writer.write(new_event(website.id, "/blog", "v3", event_type="signup",
                                          props={"plan": "pro"}))
    await user.should_see("2 viewing", retries=WAIT)
    # The two events may be drawn in two redraws: wait for the later one's mark.
    await user.should_see(marker="live-current", content="3", retries=WAIT)
    assert text_of(user, "live-current") == "3"
    assert text_of(user, "live-unique") == "3"
    assert row_text(user, "active-pages", 0) == "/pricing | 2 viewing"
    assert row_text(user, "active-pages", 1) == "/blog | 1 viewing"
    # The feed is newest first: the custom event with its props, then the pageviews.
    assert "signup" in feed_text(user, 0) and "plan=pro" in feed_text(user, 0)
    assert "twitter" in feed_text(user, 1)
    assert "/pricing" in feed_text(user, 2)
    assert row_text(user, "top-sources", 0) == "google | 2"
    assert row_text(user, "top-countrys", 0) == "DE | 2"
    assert row_text(user, "top-devices", 0) == "mobile | 2"
    assert text_of(user, "live-pageviews") == "2"


@pytest.mark.asyncio
async def test_closing_the_page_unsubscribes_it(user: Any, signed_in: Any, website: Any,
                                                services: Any) -> None:
    await user.open(f"/websites/{website.id}/live")
    await user.should_see(marker="live-current")
    assert services.hub.listener_count(website.id) == 1
    user.client.delete()  # what NiceGUI does once a closed tab's reconnect time has passed
    assert services.hub.listener_count(website.id) == 0
    # A later event reaches the listeners there are, and the closed page is not among them.
    received: list[Any] = []
    services.hub.subscribe(website.id, received.append)
    services.hub.publish([record(website.id, "/nobody-watching")])

    def delivered() -> bool:  # its id is past a gap: the hub reads the store first
        return [m.events[0].pathname for m in received] == ["/nobody-watching"]

    await eventually(delivered)
    assert services.hub.listener_count(website.id) == 1


@pytest.mark.asyncio
async def test_the_feed_keeps_the_last_twenty_events(user: Any, signed_in: Any,
                                                     website: Any, services: Any) -> None:
    await user.open(f"/websites/{website.id}/live")
    services.hub.publish([record(website.id, f"/p{i:02d}/", f"v{i}") for i in range(30)])
    await user.should_see("/p29/", retries=WAIT)
    assert "/p29/" in feed_text(user, 0)
    assert "/p10/" in feed_text(user, RECENT_EVENTS - 1)
    await user.should_not_see("/p09/")
    assert text_of(user, "live-current") == "30"


@pytest.mark.asyncio
async def test_times_are_shown_in_the_websites_time_zone(user: Any, signed_in: Any,
                                                         website: Any, services: Any) -> None:
    website.timezone = "Asia/Kathmandu"  # UTC+05:45: no chance of matching UTC by accident
    website.save()
    ts = now_ms()
    await services.writer.write(new_event(website.id, "/clock", ts=ts))
    await user.open(f"/websites/{website.id}/live")
    local = datetime.fromtimestamp(ts / 1000, ZoneInfo("Asia/Kathmandu")).strftime("%H:%M:%S")
    utc = datetime.fromtimestamp(ts / 1000, ZoneInfo("UTC")).strftime("%H:%M:%S")
    await user.should_see("times in Asia/Kathmandu")
    assert feed_text(user, 0).startswith(local)
    assert utc not in feed_text(user, 0)


@pytest.mark.asyncio
async def test_new_rows_are_highlighted_for_two_seconds(user: Any, signed_in: Any,
                                                        website: Any, services: Any,
                                                        monkeypatch: Any) -> None:
    clock = [1000.0]
    monkeypatch.setattr("ui.pages.live.LiveState", functools.partial(LiveState, lambda: clock[0]))
    await services.writer.write(new_event(website.id, "/old"))
    await user.open(f"/websites/{website.id}/live")
    await user.should_see("/old")

    assert not feed_fresh(user, 0)  # there before the page opened
    services.hub.publish([record(website.id, "/new", "v2")])
    await user.should_see("/new", retries=WAIT)
    assert feed_fresh(user, 0)
    assert not feed_fresh(user, 1)
    clock[0] += 2.5
    for _ in range(WAIT):
        if not feed_fresh(user, 0):
            break
        await asyncio.sleep(0.1)  # the page's timer runs meanwhile
    assert not feed_fresh(user, 0)


def test_live_state_folds_events_and_says_when_to_redraw() -> None:
    clock = [0.0]
    state = LiveState(lambda: clock[0])
    assert state.due()
    assert state.begin_draw() == set()
    assert not state.due()
    from backend.live.hub import HubMessage
    state.on_message(HubMessage("events", "w", b"", [record("w", "/a"), record("w", "/b")]))
    assert state.due()
    fresh = state.begin_draw()
    assert len(fresh) == 2 and not state.due()
    clock[0] = 1.0  # the window moves: redraw once a second even without events
    assert state.due()
    assert state.begin_draw() == fresh
    clock[0] = 2.0  # the highlight has run out
    assert state.due()
    assert state.begin_draw() == set()
    # A burst keeps only the ids that can be on screen.
    state.on_message(HubMessage("events", "w", b"", [record("w", "/x") for _ in range(500)]))
    assert len(state.begin_draw()) == RECENT_EVENTS
    assert state.received == 502
    state.on_message(HubMessage("stats", "w", b""))
    assert state.due()


@pytest.mark.asyncio
async def test_events_do_not_redraw_the_page_themselves(user: Any, signed_in: Any,
                                                        website: Any, services: Any,
                                                        monkeypatch: Any) -> None:
    from ui.pages.live import LiveView
    redraws = [0]
    original = LiveView.redraw

    def counting_redraw(self: Any) -> None:
        redraws[0] += 1
        original(self)

    monkeypatch.setattr(LiveView, "redraw", counting_redraw)
    await user.open(f"/websites/{website.id}/live")
    before = redraws[0]
    for i in range(200):  # 200 separate deliveries, no await in between
        services.hub.publish([record(website.id, f"/burst/{i}", f"v{i}")])
    assert redraws[0] == before  # the listener only marked the page dirty
    await user.should_see("/burst/199", retries=WAIT)
    assert redraws[0] > before


@pytest.mark.asyncio
async def test_event_text_is_shown_as_text(user: Any, signed_in: Any, website: Any,
                                           services: Any) -> None:
    payload = "<img src=x onerror=window.__xss=1>"
    await services.writer.write(new_event(website.id, "/<script>alert(1)</script>",
                                          title=payload, props={"note": "<b>bold</b>"},
                                          source="<i>src</i>"))
    await user.open(f"/websites/{website.id}/live")
    await user.should_see("/<script>alert(1)</script>")
    await user.should_see(payload)
    await user.should_see("<i>src</i>")
    assert "note=<b>bold</b>" in feed_text(user, 0)
    await user.should_not_see(kind=ui.html)


@pytest.mark.asyncio
async def test_a_stranger_sees_nothing_of_a_website(user: Any, sign_in_as: Any, website: Any,
                                                    services: Any) -> None:
    await services.writer.write(new_event(website.id, "/secret-page"))
    create_user("stranger@example.com", "another password")
    await sign_in_as("stranger@example.com", "another password")
    await user.open(f"/websites/{website.id}/live")
    await user.should_see("Website not found")
    await user.should_not_see("/secret-page")
    await user.should_not_see(marker="live-current")
    assert services.hub.listener_count(website.id) == 0
    await user.open("/websites/no-such-website/live")
    await user.should_see("Website not found")


@pytest.mark.asyncio
async def test_signed_out_browsers_are_sent_to_sign_in(user: Any, website: Any,
                                                       services: Any) -> None:
    await user.open(f"/websites/{website.id}/live")
    await user.should_see(marker="sign-in", retries=WAIT)
    await user.should_not_see(marker="live-current")
    assert services.hub.listener_count(website.id) == 0


@pytest.mark.gen_test
async def test_the_stream_refuses_a_strangers_session(http_client: Any, base_url: str,
                                                      website: Any, admin: Any,
                                                      settings: Any) -> None:
    stranger = create_user("stranger@example.com", "another password")
    Session.start(stranger, "stranger-browser", 600)
    cookie = panel_cookie(settings.secret, "stranger-browser")
    response = await http_client.fetch(live_url(base_url, website.id),
                                       headers={"Cookie": cookie}, raise_error=False)
    assert response.code == 403
    # The same cookie of a member opens the stream: the 403 is about membership.
    Session.start(admin, "admin-browser", 600)
    reader = SSEReader(live_url(base_url, website.id),
                       {"Cookie": panel_cookie(settings.secret, "admin-browser")}).start()
    try:
        await reader.wait_for(lambda r: r.of_type("connected"))
        assert reader.status == 200
    finally:
        reader.close()
