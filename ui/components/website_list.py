"""The all-websites list: each website's current visitors and a 30-minute sparkline, pushed from
the hub; sortable, searchable and paged, so a thousand websites cost no more to show than twenty.

The page builds a fixed number of row slots once; a redraw (on a timer, never per event) only
changes the texts, links and sparklines of the rows on screen. Live windows not yet in memory are
read in worker threads (``Hub.window``), a few at a time, the visible rows first: the event
loop never waits for the database.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

from nicegui import background_tasks, ui

from backend.live.hub import Hub, HubMessage
from models.entities import Website, now_ms
from ui.components.visitor_count import visitors_text

PAGE_SIZE = 20
REFRESH_SECONDS = 1.0
SEED_AT_ONCE = 4  # windows read from the database at the same time
SPARK_WIDTH, SPARK_HEIGHT = 120, 28

SORTS = {"visitors": "Current visitors", "name": "Name"}

LIST_CSS = """
.pulse-site-row { display: grid; align-items: center; column-gap: 16px; row-gap: 4px;
  grid-template-columns: minmax(0, 1fr) 124px 9.5rem auto; padding: 6px 12px;
  border-bottom: 1px solid var(--pulse-line); }
.pulse-site-row:last-child { border-bottom: none; }
.pulse-site-name { min-width: 0; }
.pulse-spark { display: block; color: #6366f1; }
body.body--dark .pulse-spark { color: #a5b4fc; }
@media (max-width: 639.98px) {
  .pulse-site-row { grid-template-columns: minmax(0, 1fr) auto; padding: 8px 10px; }
  .pulse-site-spark { grid-row: 2; }
}
"""

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key in natural order: 'Site 2' before 'Site 10', case ignored."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in
                 _DIGITS.split(name.casefold()) if part)


def sparkline(values: Sequence[int]) -> str:
    """An inline SVG line of ``values`` (only numbers go into it, never event text)."""
    top = max(values, default=0) or 1
    step = SPARK_WIDTH / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{SPARK_HEIGHT - 2 - v / top * (SPARK_HEIGHT - 4):.1f}"
                      for i, v in enumerate(values))
    return (f'<svg class="pulse-spark" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" '
            f'viewBox="0 0 {SPARK_WIDTH} {SPARK_HEIGHT}" aria-hidden="true">'
            f'<polyline points="{points}" fill="none" stroke="currentColor" '
            'stroke-width="1.5" stroke-linejoin="round"/></svg>')


@dataclass(slots=True)
class Entry:
    """One website of the list (what sorting and searching need, nothing from the database)."""

    id: str
    name: str
    domain: str
    key: tuple[tuple[int, int | str], ...]
    text: str  # name and domain, case-folded, for the search box


def entries_of(websites: Sequence[Website]) -> list[Entry]:
    """The list's entries, in natural order of name."""
    found = [Entry(w.id, w.name, w.domain, natural_key(w.name), f"{w.name} {w.domain}".casefold())
             for w in websites]
    found.sort(key=lambda e: (e.key, e.domain))
    return found


class _SiteRow:
    """One slot of the list; shows whichever website is at its position."""

    def __init__(self) -> None:
        self.website_id: str | None = None
        self.spark = ""
        with ui.element("div").classes("pulse-site-row w-full") as self.row:
            with ui.column().classes("pulse-site-name gap-0"):
                self.name = ui.link("", "#").classes(
                    "pulse-cell font-medium no-underline text-slate-900")
                self.domain = ui.label().classes("pulse-cell text-xs text-slate-500")
            self.chart = ui.html("", sanitize=False).classes("pulse-site-spark") \
                .props('title="Pageviews per minute, last 30 minutes"')
            self.visitors = ui.label().classes(
                "text-sm text-emerald-700 font-medium tabular-nums whitespace-nowrap")
            with ui.row().classes("items-center gap-1 no-wrap"):
                self.live = ui.button("Live", icon="sensors").props("dense no-caps")
                self.settings = ui.button("Settings", icon="settings") \
                    .props("flat dense no-caps")
        self.live.on_click(lambda: self.website_id and ui.navigate.to(
            f"/websites/{self.website_id}/live"))
        self.settings.on_click(lambda: self.website_id and ui.navigate.to(
            f"/websites/{self.website_id}"))
        self.row.set_visibility(False)

    def show(self, entry: Entry | None, visitors: int | None, minutes: Sequence[int]) -> None:
        """Show ``entry`` (None hides the slot); ``visitors`` None: not known yet."""
        self.row.set_visibility(entry is not None)
        if entry is None:
            self.website_id = None
            return
        if entry.id != self.website_id:
            self.website_id = entry.id
            self.row.mark(f"website-{entry.id}")
            self.name.set_text(entry.name)
            self.name.props(f'href="/websites/{entry.id}/dashboard"')  # the website's main page
            self.name.mark(f"dashboard-{entry.id}")
            self.domain.set_text(entry.domain)
            self.visitors.mark(f"visitors-{entry.id}")
            self.live.mark(f"live-{entry.id}")
            self.settings.mark(f"settings-{entry.id}")
        text = "… current visitors" if visitors is None else visitors_text(visitors)
        if self.visitors.text != text:
            self.visitors.set_text(text)
        spark = sparkline(minutes)
        if spark != self.spark:
            self.spark = spark
            self.chart.set_content(spark)


class WebsiteList:
    """Search, sort, pager and the rows on screen; listens to the hub for every website listed."""

    def __init__(self, hub: Hub, websites: Sequence[Website]) -> None:
        self.hub = hub
        self.entries = entries_of(websites)
        self.query = ""
        self.sort = "visitors"
        self.page = 0
        self.dirty = True
        self.shown: list[Entry] = []
        ui.add_css(LIST_CSS)
        with ui.row().classes("w-full items-center gap-3"):
            self.search = ui.input(placeholder="Search websites") \
                .props('dense outlined clearable aria-label="Search websites" type="search"') \
                .classes("grow min-w-0").mark("website-search")
            self.search.on_value_change(lambda e: self._set_query(e.value or ""))
            self.sorter = ui.select(SORTS, value=self.sort, label="Sort by") \
                .props("dense outlined").classes("w-48").mark("website-sort")
            self.sorter.on_value_change(lambda e: self._set_sort(e.value))
        with ui.card().classes("w-full p-0 gap-0").props("flat bordered"):
            self.empty = ui.label("No website matches.").classes(
                "text-sm text-slate-500 px-3 py-4")
            self.rows: list[_SiteRow] = []
            self.card = ui.element("div").classes("w-full")
        with ui.row().classes("w-full items-center justify-end gap-2") as self.pager:
            self.position = ui.label().classes("text-sm text-slate-600").mark("website-page")
            self.previous = ui.button(icon="chevron_left", on_click=lambda: self._turn(-1)) \
                .props('flat round dense aria-label="Previous page"').mark("previous-page")
            self.next = ui.button(icon="chevron_right", on_click=lambda: self._turn(1)) \
                .props('flat round dense aria-label="Next page"').mark("next-page")

    @classmethod
    async def create(cls, hub: Hub, websites: Sequence[Website]) -> WebsiteList:
        """Build the list in the current container. Building a row costs about 1.5 ms of
        NiceGUI's time: the loop gets a turn between rows, so the page never holds it long."""
        built = cls(hub, websites)
        for _ in range(min(PAGE_SIZE, len(built.entries))):
            with built.card:
                built.rows.append(_SiteRow())
            await asyncio.sleep(0)
        for entry in built.entries:
            ui.context.client.on_delete(hub.subscribe(entry.id, built._on_message))
        built.redraw()
        ui.timer(REFRESH_SECONDS, built.tick)
        background_tasks.create(built._seed(), name="seed the websites list")
        return built

    def _on_message(self, message: HubMessage) -> None:
        self.dirty = True

    def _set_query(self, query: str) -> None:
        self.query = query.strip().casefold()
        self.page = 0
        self.redraw()

    def _set_sort(self, sort: str) -> None:
        self.sort = sort if sort in SORTS else "visitors"
        self.page = 0
        self.redraw()

    def _turn(self, by: int) -> None:
        self.page += by
        self.redraw()

    def visitors(self, website_id: str) -> int | None:
        """Current visitors of a website, None while its window is still being read."""
        hub = self.hub
        return hub.stats(website_id).current_visitors if hub.has_stats(website_id) else None

    def matching(self) -> list[Entry]:
        """The entries the search matches, in the chosen order (ties in natural order)."""
        query = self.query
        found = [e for e in self.entries if query in e.text] if query else list(self.entries)
        if self.sort == "visitors":
            counts = {e.id: self.visitors(e.id) or 0 for e in found}
            found.sort(key=lambda e: -counts[e.id])  # stable: natural order among equals
        return found

    def redraw(self) -> None:
        """Show the current page of the list as it is now."""
        self.dirty = False
        found = self.matching()
        pages = max(1, -(-len(found) // PAGE_SIZE))
        self.page = min(max(self.page, 0), pages - 1)
        start = self.page * PAGE_SIZE
        self.shown = found[start:start + PAGE_SIZE]
        now = now_ms()
        for i, row in enumerate(self.rows):
            entry = self.shown[i] if i < len(self.shown) else None
            minutes: list[int] = []
            if entry is not None and self.hub.has_stats(entry.id):
                minutes = [m["pageviews"] for m in self.hub.stats(entry.id).per_minute(now)]
            row.show(entry, None if entry is None else self.visitors(entry.id), minutes)
        self.empty.set_visibility(not found)
        self.pager.set_visibility(len(found) > PAGE_SIZE)
        self.position.set_text(f"{start + 1:,}–{start + len(self.shown):,} of {len(found):,}"
                               if found else "")
        self.previous.set_enabled(self.page > 0)
        self.next.set_enabled(self.page < pages - 1)

    def tick(self) -> None:
        """The timer: redraw when a website's numbers may have changed."""
        if self.dirty:
            self.redraw()

    async def _seed(self) -> None:
        """Read the windows not in memory yet, those on screen first, a few at a time."""
        shown = {e.id for e in self.shown}
        order = [e.id for e in self.shown] + [e.id for e in self.entries if e.id not in shown]
        missing = [website_id for website_id in order if not self.hub.has_stats(website_id)]
        for start in range(0, len(missing), SEED_AT_ONCE):
            chunk = missing[start:start + SEED_AT_ONCE]
            await asyncio.gather(*(self.hub.window(website_id) for website_id in chunk))
            on_screen = {e.id for e in self.shown}
            if any(website_id in on_screen for website_id in chunk):
                self.redraw()  # the rows on screen get their numbers at once
            else:
                self.dirty = True
