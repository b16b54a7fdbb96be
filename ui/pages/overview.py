"""/overview: every website of the user at a glance — current visitors and a 30-minute sparkline,
pushed; sortable by visitors or by name (natural order), searchable, compact, paged.

Built for an agency's account: the numbers come from two grouped queries run off the event loop
(never one live window per website), only one page of rows is drawn, as one HTML element, and the
hub only marks the view dirty, so a thousand websites neither delay the page nor stall tracking.
"""

from __future__ import annotations

import asyncio
import logging
from html import escape
from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from backend.services import Services
from models.entities import User
from models.overview import SPARK_MINUTES, SiteSummary, natural_key, websites_summary
from ui.layout import frame
from ui.session import current_user, signed_out_redirect

log = logging.getLogger("pulse.panel")

PAGE_SIZE = 50
REFRESH_SECONDS = 2.0  # re-read the numbers at most this often after a change
STALE_SECONDS = 15.0  # and at least this often (visitors leave the window with time alone)


def sparkline(minutes: list[int], width: int = 120, height: int = 24) -> str:
    """An inline SVG polyline of pageviews per minute (numbers only: nothing to escape)."""
    top = max(minutes) or 1
    step = width / max(1, len(minutes) - 1)
    points = " ".join(f"{i * step:.1f},{height - 1 - (n / top) * (height - 2):.1f}"
                      for i, n in enumerate(minutes))
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="pageviews, last {SPARK_MINUTES} minutes">'
            f'<polyline fill="none" stroke="#10b981" stroke-width="1.5" points="{points}"/>'
            "</svg>")


def rows_html(sites: list[SiteSummary]) -> str:
    """One page of rows as a single HTML block (one element, not five per row: drawing a page
    costs the loop next to nothing). Names and domains are escaped."""
    out = ['<ul class="w-full divide-y border rounded">']
    for site in sites:
        out.append(
            f'<li class="flex items-center gap-3 px-3 py-1" data-site="{escape(site.id)}">'
            '<div class="grow min-w-0">'
            f'<a class="font-medium no-underline truncate block" '
            f'href="/websites/{escape(site.id)}/live">{escape(site.name)}</a>'
            f'<div class="text-xs text-slate-500 truncate">{escape(site.domain)}</div></div>'
            f"{sparkline(site.minutes)}"
            f'<span class="w-12 text-right font-semibold text-emerald-700" '
            f'data-current="{site.current}">{site.current}</span></li>')
    out.append("</ul>")
    return "".join(out)


def register(services: Services) -> None:
    """Register the all-websites view."""

    @ui.page("/overview")
    async def overview_page() -> RedirectResponse | None:
        """All the user's websites, live."""
        user = current_user()
        if user is None:
            return signed_out_redirect()
        Overview(services, user)
        return None


class Overview:
    """The state and widgets of one open all-websites view."""

    def __init__(self, services: Services, user: User) -> None:
        self.services = services
        self.user = user
        self.sites: list[SiteSummary] = []
        self.page = 0
        self.dirty = False
        self.loading = False
        self.last_load = 0.0
        self.unsubscribes: list[Any] = []
        with frame("All websites", user):
            with ui.row().classes("w-full items-center gap-4"):
                self.search = ui.input("Search", placeholder="name or domain") \
                    .props("clearable dense").classes("w-64").mark("overview-search")
                self.search.on_value_change(lambda _: self.go_to(0))
                self.sort = ui.select({"visitors": "Current visitors", "name": "Name"},
                                      value="visitors", label="Sort by") \
                    .props("dense").classes("w-48").mark("overview-sort")
                self.sort.on_value_change(lambda _: self.go_to(0))
                self.summary = ui.label("Loading…").classes("text-sm text-slate-500") \
                    .mark("overview-summary")
            self.rows()
        ui.context.client.on_delete(self.close)
        ui.timer(0.0, self.load, once=True)
        ui.timer(REFRESH_SECONDS, self.tick)

    # -- data ---------------------------------------------------------------------------------
    async def load(self) -> None:
        """Read every website's numbers off the loop, then redraw the page of rows."""
        if self.loading:
            return
        self.loading = True
        self.dirty = False
        loop = asyncio.get_running_loop()
        self.last_load = loop.time()
        try:
            sites = await loop.run_in_executor(None, websites_summary, self.user,
                                               self.services.hub.window_ms)
        finally:
            self.loading = False
        known = {s.id for s in self.sites}
        self.sites = sites
        for site in sites:
            if site.id not in known:
                self.unsubscribes.append(self.services.hub.subscribe(site.id, self.on_message))
        self.rows.refresh()

    def on_message(self, _message: object) -> None:
        """The hub says a website changed: re-read on the next tick (never per event)."""
        self.dirty = True

    async def tick(self) -> None:
        """Re-read after a change, or when the numbers may have aged."""
        stale = asyncio.get_running_loop().time() - self.last_load >= STALE_SECONDS
        if self.dirty or stale:
            await self.load()

    def close(self) -> None:
        """Stop listening (the page was closed)."""
        for unsubscribe in self.unsubscribes:
            unsubscribe()
        self.unsubscribes.clear()

    # -- view ---------------------------------------------------------------------------------
    def visible(self) -> list[SiteSummary]:
        """The websites that match the search, in the chosen order."""
        words = (self.search.value or "").casefold().split()
        sites = [s for s in self.sites
                 if all(w in s.name.casefold() or w in s.domain for w in words)]
        if self.sort.value == "name":
            sites.sort(key=lambda s: natural_key(s.name))
        else:
            sites.sort(key=lambda s: (-s.current, natural_key(s.name)))
        return sites

    def go_to(self, page: int) -> None:
        """Show page ``page`` of the rows."""
        self.page = page
        self.rows.refresh()

    @ui.refreshable_method
    def rows(self) -> None:
        """One page of compact rows."""
        if self.last_load == 0.0:
            return
        sites = self.visible()
        pages = max(1, (len(sites) + PAGE_SIZE - 1) // PAGE_SIZE)
        self.page = min(self.page, pages - 1)
        first = self.page * PAGE_SIZE
        shown = sites[first:first + PAGE_SIZE]
        total = sum(s.current for s in self.sites)
        self.summary.text = (f"{len(self.sites)} websites · {total} current visitors"
                             + (f" · {len(sites)} match" if self.search.value else ""))
        if not shown:
            ui.label("No website matches." if self.sites else "No websites yet.") \
                .classes("text-slate-500")
            return
        ui.html(rows_html(shown), sanitize=False).classes("w-full").mark("overview-rows")
        if pages > 1:
            with ui.row().classes("items-center gap-2"):
                ui.button("Previous", on_click=lambda: self.go_to(self.page - 1)) \
                    .props("flat dense").set_enabled(self.page > 0)
                ui.label(f"Page {self.page + 1} of {pages}").classes("text-sm")
                ui.button("Next", on_click=lambda: self.go_to(self.page + 1)) \
                    .props("flat dense").mark("overview-next").set_enabled(
                        self.page < pages - 1)
