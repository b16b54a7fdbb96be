"""The live page of a website: current visitors, the activity feed, active pages, the last 30
minutes and where visitors come from, pushed by the hub in-process and redrawn on a timer."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi.responses import RedirectResponse
from nicegui import ui

from backend.live.hub import HubMessage
from backend.services import Services
from models.entities import User, Website, now_ms
from ui.components.alert_banner import AlertBanner
from ui.components.live_state import LiveState
from ui.components.live_widgets import (
    ActivityFeed,
    Announcer,
    MinuteChart,
    RankedList,
    StatCard,
    add_live_assets,
    connection_status,
    heading,
)
from ui.components.world_map import CountryFilter, WorldMapCard, add_map_assets, serve_map_assets
from ui.layout import frame
from ui.session import current_user, signed_out_redirect, website_for

log = logging.getLogger("pulse.panel.live")

REDRAW_SECONDS = 0.25  # at most four redraws a second, however many events arrive


def website_zone(website: Website) -> ZoneInfo:
    """The website's time zone (UTC if its name is not known here)."""
    try:
        return ZoneInfo(website.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def website_not_found(user: User) -> None:
    """The page for an unknown website or one the user is not a member of (they look alike)."""
    with frame("Website not found", user):
        ui.label("There is no such website, or you are not a member of it.").classes(
            "text-slate-600")
        ui.link("Back to your websites", "/")


class LiveView:
    """The widgets of one open live page and how they are redrawn from the website's window."""

    def __init__(self, services: Services, website: Website) -> None:
        self.services = services
        self.website_id = website.id
        self.zone = website_zone(website)
        self.state = LiveState()
        self.filter = CountryFilter()
        with ui.element("section").classes("pulse-stats w-full") \
                .props('aria-label="Visitors now"'):
            self.current = StatCard("Current visitors", "live-current",
                                    "sessions active in the last "
                                    f"{round(services.hub.window_ms / 60_000)} minutes")
            self.unique = StatCard("Unique visitors", "live-unique", "distinct visitors now")
            self.pageviews = StatCard("Pageviews", "live-pageviews", "in the last 30 minutes")
        self.announcer = Announcer()
        with ui.card().classes("w-full px-4 pt-3 pb-1 gap-0").props("flat bordered"):
            heading("Last 30 minutes")
            self.chart = MinuteChart()
        self.map = WorldMapCard(self.choose_country)
        with ui.element("div").classes("pulse-live-grid w-full"):
            with ui.card().classes("pulse-area-feed w-full gap-0 px-0 pt-3 pb-1") \
                    .props("flat bordered"):
                heading("Live activity").classes("px-4 pb-2")
                self.feed = ActivityFeed()
            self.pages = RankedList("Active pages", "active-page", 8, suffix=" viewing",
                                    mono=True)
            self.sources = RankedList("Top sources", "top-source", 5)
            with ui.element("div").classes("pulse-area-more w-full grid grid-cols-2 gap-4"):
                self.countries = RankedList("Countries", "top-country", 5, mono=True)
                self.devices = RankedList("Devices", "top-device", 3)
            self.pages.card.classes("pulse-area-pages")
            self.sources.card.classes("pulse-area-sources")

    def redraw(self) -> None:
        """Show the website's window as it is now (one pass over small, bounded lists)."""
        fresh = self.state.begin_draw()
        stats = self.services.hub.stats(self.website_id)
        minutes = stats.per_minute(now_ms())
        pageviews = sum(row["pageviews"] for row in minutes)
        self.current.show(stats.current_visitors)
        self.unique.show(stats.unique_visitors)
        self.pageviews.show(pageviews)
        self.announcer.say(f"{stats.current_visitors:,} current visitors, "
                           f"{stats.unique_visitors:,} unique, {pageviews:,} pageviews "
                           "in the last 30 minutes")
        self.chart.show(minutes, self.zone)
        recent = stats.recent_events()
        country = self.filter.country
        self.map.show([(t["name"], t["visitors"]) for t in stats.top("country", 300)],
                      (e.country for e in recent if e.id in fresh), country)
        self.feed.show(recent if country is None else list(self.filter.events), fresh, self.zone)
        pages = stats.active_pages(8) if country is None else stats.active_pages_in(country, 8)
        self.pages.show([(p["pathname"], p["visitors"]) for p in pages])
        for widget, dimension, n in ((self.sources, "source", 5), (self.countries, "country", 5),
                                     (self.devices, "device", 3)):
            widget.show([(t["name"], t["visitors"]) for t in stats.top(dimension, n)])

    def on_message(self, message: HubMessage) -> None:
        """The hub's listener: fold the message into the page's state (O(1) per event)."""
        self.state.on_message(message)
        self.filter.on_message(message)

    def choose_country(self, country: str | None) -> None:
        """Filter the feed and active pages to ``country`` (None: every country)."""
        if country == self.filter.country:
            return
        self.filter.choose(country, self.services.hub.stats(self.website_id).recent_events())
        self.redraw()

    def tick(self) -> None:
        """The page's timer: redraw when something arrived, a highlight ended or a second passed."""
        if self.state.due():
            self.redraw()


def register(services: Services) -> None:
    """Register the live page for ``services``."""
    serve_map_assets()

    @ui.page("/websites/{website_id}/live")
    def live_page(website_id: str) -> RedirectResponse | None:
        """The live view of one website."""
        user = current_user()
        if user is None:
            return signed_out_redirect()
        website = website_for(user, website_id)
        if website is None:
            website_not_found(user)
            return None
        add_live_assets()
        add_map_assets()
        with frame(f"{website.name} · live", user):
            with ui.row().classes("w-full items-center justify-between -mt-2"):
                with ui.row().classes("items-center gap-x-4 gap-y-1 min-w-0"):
                    connection_status()
                    ui.label(f"{website.domain} · times in {website.timezone}").classes(
                        "text-sm text-slate-500")
                ui.link("Website settings", f"/websites/{website.id}").classes("text-sm")
            AlertBanner(services.alerts, website.id)
            view = LiveView(services, website)
        view.redraw()
        unsubscribe = services.hub.subscribe(website.id, view.on_message)
        ui.context.client.on_delete(unsubscribe)
        ui.timer(REDRAW_SECONDS, view.tick)
        return None
