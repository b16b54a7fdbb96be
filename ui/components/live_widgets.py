"""The live page's widgets. Each is built once and later only told new values, so a redraw
never creates server-side elements: the counters change a text, the feed and the ranked lists
send one list of row values each (drawn in the browser by ``live_feed.js`` and
``live_ranks.js``), and nothing is sent when nothing changed.

Everything that comes from an event (paths, titles, props, sources) goes into element *text*
(``{{ }}`` in the components), which the browser shows as text: events come from the open
internet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from nicegui import ui

from models.records import EventRecord

FEED_SIZE = 20
ANNOUNCE_SECONDS = 30.0  # screen readers hear the counters at most this often
DETAIL_CHARS = 160

LIVE_CSS = """
.pulse-dot { width: 10px; height: 10px; border-radius: 9999px; background: #9ca3af;
  display: inline-block; position: relative; flex: none; }
html[data-pulse-link="live"] .pulse-dot { background: #22c55e; }
html[data-pulse-link="live"] .pulse-dot::after { content: ""; position: absolute; inset: 0;
  border-radius: 9999px; background: #22c55e; animation: pulse-ring 1.6s ease-out infinite; }
html[data-pulse-link="lost"] .pulse-dot { background: #ef4444; }
@keyframes pulse-ring { from { transform: scale(1); opacity: .7; }
  to { transform: scale(2.8); opacity: 0; } }
.pulse-link-text::after { content: "Connecting…"; }
html[data-pulse-link="live"] .pulse-link-text::after { content: "Live"; }
html[data-pulse-link="lost"] .pulse-link-text::after { content: "Connection lost, reconnecting…"; }
html[data-pulse-link="lost"] .pulse-link-text { color: #b91c1c; }
body.body--dark .pulse-link-text { color: #cbd5e1; }
html[data-pulse-link="lost"] body.body--dark .pulse-link-text { color: #fca5a5; }
.pulse-stats { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 16px; }
.pulse-live-grid { display: grid; gap: 16px; align-items: start;
  grid-template-columns: minmax(0, 2fr) minmax(0, 1fr);
  grid-template-areas: "feed pages" "feed sources" "feed more"; grid-template-rows: auto auto 1fr; }
.pulse-area-feed { grid-area: feed; }
.pulse-area-pages { grid-area: pages; }
.pulse-area-sources { grid-area: sources; }
.pulse-area-more { grid-area: more; }
.pulse-feed-row { display: grid; align-items: center; column-gap: 12px; padding: 4px 16px;
  width: 100%; box-sizing: border-box; min-height: 31px;
  grid-template-columns: 4.2rem 6.2rem minmax(0, 1fr) 6.6rem 5.8rem 3.6rem;
  border-bottom: 1px solid var(--pulse-line); transition: background-color 1s ease-out; }
.pulse-feed-row.pulse-fresh { background-color: var(--pulse-fresh); transition: none; }
.pulse-feed-head { font-size: 11px; text-transform: uppercase; letter-spacing: .04em;
  color: var(--pulse-muted); border-bottom: 1px solid var(--pulse-line); }
.pulse-chip { font-size: 11px; line-height: 18px; padding: 0 7px; border-radius: 9999px;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 100%;
  justify-self: start; }
.pulse-chip-pageview { background: #e0e7ff; color: #3730a3; }
.pulse-chip-custom { background: #fae8ff; color: #86198f; }
body.body--dark .pulse-chip-pageview { background: #312e81; color: #e0e7ff; }
body.body--dark .pulse-chip-custom { background: #701a75; color: #fae8ff; }
.pulse-cell { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; min-width: 0; }
.pulse-page { display: flex; align-items: baseline; gap: 8px; min-width: 0; }
.pulse-page > .pulse-cell:first-child { flex: 0 1 auto; }
.pulse-page > .pulse-cell + .pulse-cell { flex: 1 1 0; }
.pulse-rank { position: relative; border-radius: 6px; overflow: hidden; }
.pulse-rank-bar { position: absolute; top: 0; bottom: 0; left: 0; background: var(--pulse-bar);
  transition: width .4s ease-out; }
@media (max-width: 767.98px) {
  /* One column, in the order a glance needs: active pages, the feed, then the rest. */
  .pulse-live-grid { grid-template-columns: minmax(0, 1fr);
    grid-template-areas: "pages" "feed" "sources" "more"; grid-template-rows: none; }
  .pulse-stats { gap: 8px; }
  .pulse-stat { padding: 10px 12px !important; }
  .pulse-stat-value { font-size: 1.6rem !important; line-height: 2rem !important; }
  /* Feed rows: time, event and page on the first line; source, device, country below. */
  .pulse-feed-row { grid-template-columns: 4rem 5.4rem minmax(0, 1fr) auto; row-gap: 2px;
    padding: 6px 12px; }
  .pulse-col-page { grid-column: 3 / 5; }
  .pulse-col-source { grid-column: 2; grid-row: 2; }
  .pulse-col-device { grid-column: 3; grid-row: 2; }
  .pulse-col-country { grid-column: 4; grid-row: 2; }
  .pulse-feed-head > .pulse-col-source, .pulse-feed-head > .pulse-col-device,
  .pulse-feed-head > .pulse-col-country { display: none; }
}
@media (prefers-reduced-motion: reduce) {
  html[data-pulse-link="live"] .pulse-dot::after { animation: none; display: none; }
  .pulse-feed-row, .pulse-rank-bar { transition: none; }
}
"""

# Listens to NiceGUI's socket.io connection (window.socket, created when the page mounts) and
# marks <html data-pulse-link="live|lost">; the dot's colour and text follow from LIVE_CSS.
# A change is also written into the status region, so screen readers announce it.
# After a server restart NiceGUI reloads the page, which then connects and turns green again.
CONNECTION_JS = """
<script>
(function () {
  var said = {connecting: "Connecting…", live: "Live: connected",
              lost: "Connection lost, reconnecting…"};
  function mark(state) {
    if (document.documentElement.dataset.pulseLink === state) return;
    document.documentElement.dataset.pulseLink = state;
    document.querySelectorAll(".pulse-link-status").forEach(function (el) {
      el.textContent = said[state];
    });
  }
  mark("connecting");
  var waiting = setInterval(function () {
    var socket = window.socket;
    if (!socket) return;
    clearInterval(waiting);
    socket.on("connect", function () { mark("live"); });
    socket.on("disconnect", function () { mark("lost"); });
    socket.io.on("reconnect_failed", function () { mark("lost"); });
    mark(socket.connected ? "live" : "connecting");
  }, 50);
})();
</script>
"""

E = TypeVar("E", bound=ui.element)

DEVICE_ICONS = {"desktop": "computer", "mobile": "smartphone", "tablet": "tablet_mac"}


def tag(element: E, marker: str) -> E:
    """Mark ``element`` for user tests and, as ``data-pulse``, for browser tests."""
    return element.mark(marker).props(f"data-pulse={marker}")


def add_live_assets() -> None:
    """Add the live page's CSS and its connection listener to the current page."""
    ui.add_css(LIVE_CSS)
    ui.add_head_html(CONNECTION_JS)


def connection_status() -> None:
    """The connection dot: green and pulsing while live, red while the server is unreachable."""
    with ui.row().classes("items-center gap-2 no-wrap").mark("connection-status"):
        ui.element("span").classes("pulse-dot").props('aria-hidden="true"')
        ui.element("span").classes("pulse-link-text text-sm text-slate-600") \
            .props('aria-hidden="true"')
        ui.element("span").classes("pulse-link-status pulse-sr-only") \
            .props('role="status" aria-live="polite"')


def local_time(ts: int, zone: ZoneInfo, fmt: str = "%H:%M:%S") -> str:
    """An event time (ms since the epoch) in the website's time zone."""
    return datetime.fromtimestamp(ts / 1000, zone).strftime(fmt)


def event_detail(event: EventRecord) -> str:
    """A pageview's title and a custom event's props, as one line of plain text."""
    parts = []
    if event.title:
        parts.append(event.title)
    if event.props:
        parts.append(", ".join(f"{key}={value}" for key, value in event.props.items()))
    detail = " · ".join(parts)
    return detail if len(detail) <= DETAIL_CHARS else detail[:DETAIL_CHARS - 1] + "…"


class StatCard:
    """A headline number with its caption."""

    def __init__(self, caption: str, marker: str, hint: str = "") -> None:
        with ui.card().classes("pulse-stat min-w-0 gap-1 px-5 py-4").props("flat bordered"):
            ui.label(caption).classes("text-xs uppercase tracking-wide text-slate-500")
            self.value = ui.label("0").classes(
                "pulse-stat-value text-4xl font-semibold text-slate-900 tabular-nums")
            tag(self.value, marker)
            if hint:
                ui.label(hint).classes("text-xs text-slate-500")

    def show(self, number: int) -> None:
        """Show ``number``."""
        self.value.set_text(f"{number:,}")


class Announcer:
    """A polite live region screen readers read out, changed at most every ``every`` seconds
    (the counters change up to four times a second: that would drown everything else)."""

    def __init__(self, every: float = ANNOUNCE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self._said = ""
        self._when = float("-inf")
        self.region = ui.label().classes("pulse-sr-only") \
            .props('aria-live="polite" aria-atomic="true"')
        tag(self.region, "live-announcement")

    def say(self, text: str) -> None:
        """Announce ``text`` if it is new and the last announcement is old enough."""
        now = self.clock()
        if text == self._said or now - self._when < self.every:
            return
        self._said = text
        self._when = now
        self.region.set_text(text)


class ValueRows(ui.element):
    """Rows drawn in the browser from one list of values (a component of its own): a redraw
    that changes every row is one element update, not one per cell."""

    TEXTS: tuple[str, ...] = ()  # the keys of a row that it shows as text, in order

    def __init__(self) -> None:
        super().__init__()
        self._props["rows"] = []

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows shown."""
        return self._props["rows"]

    def show(self, rows: list[dict[str, Any]]) -> None:
        """Show ``rows`` (sent only when they changed)."""
        if rows != self._props["rows"]:
            self._props["rows"] = rows
            self.update()

    def texts(self, index: int) -> list[str]:
        """The texts row ``index`` shows, in order."""
        row = self.rows[index]
        return [str(row[key]) for key in self.TEXTS if row[key]]

    def _displayed_contents(self, *, only_visible: bool) -> list[Any]:
        """What ``user.should_see`` finds here: every row's texts."""
        return [text for index in range(len(self.rows)) for text in self.texts(index)]


class FeedRows(ValueRows, component="live_feed.js"):
    """The activity feed's rows (``live_feed.js``): each event's id, time, kind, page, detail,
    source, device, country and whether it is highlighted. Under load a redraw replaces all
    20 rows: one element update instead of 180."""

    TEXTS = ("time", "kind", "path", "detail", "source", "device", "country")


class RankRows(ValueRows, component="live_ranks.js"):
    """A ranked list's rows (``live_ranks.js``): each name, its count as shown and the width of
    its bar in percent of the first."""

    TEXTS = ("name", "count")

    def __init__(self, marker: str, mono: bool) -> None:
        super().__init__()
        self._props["marker"] = marker
        self._props["mono"] = mono


def feed_row(event: EventRecord, fresh: bool, zone: ZoneInfo) -> dict[str, Any]:
    """What the feed shows of ``event``."""
    return {"id": event.id, "time": local_time(event.ts, zone), "kind": event.event_type,
            "custom": event.event_type != "pageview", "path": event.pathname,
            "detail": event_detail(event), "source": event.source or "direct",
            "icon": DEVICE_ICONS.get(event.device, "devices_other"),
            "device": event.device or "unknown", "country": event.country or "—",
            "fresh": fresh}


class ActivityFeed:
    """The last 20 events, newest first; new ones highlighted for a moment."""

    def __init__(self) -> None:
        with ui.element("div").classes("pulse-feed-row pulse-feed-head") \
                .props('aria-hidden="true"'):
            for caption in ("Time", "Event", "Page", "Source", "Device", "Country"):
                ui.label(caption).classes(f"pulse-col-{caption.lower()}")
        self.empty = ui.label("Waiting for the first event…").classes(
            "text-sm text-slate-500 px-3 py-6")
        self.rows = tag(FeedRows(), "live-feed")

    def show(self, events: Sequence[EventRecord], fresh: set[int], zone: ZoneInfo) -> None:
        """Show ``events`` (newest first), highlighting the ids in ``fresh``."""
        self.empty.set_visibility(not events)
        self.rows.show([feed_row(event, event.id in fresh, zone)
                        for event in events[:FEED_SIZE]])


class RankedList:
    """A titled list of names by number of current visitors (active pages, sources, …)."""

    def __init__(self, title: str, marker: str, size: int, *, empty: str = "Nobody here yet",
                 suffix: str = "", mono: bool = False) -> None:
        self.size = size
        self.suffix = suffix
        with ui.card().classes("w-full gap-1 px-4 py-3").props("flat bordered") as self.card:
            heading(title).classes("mb-1")
            self.empty = ui.label(empty).classes("text-sm text-slate-500 py-2")
            self.rows = tag(RankRows(marker, mono), f"{marker}s")

    def show(self, items: Sequence[tuple[str, int]]) -> None:
        """Show ``items`` (name, visitors), largest first."""
        self.empty.set_visibility(not items)
        top = items[0][1] if items else 0
        self.rows.show([{"name": name, "count": f"{count:,}{self.suffix}",
                         "width": round(100 * count / top) if top else 0}
                        for name, count in items[:self.size]])


class MinuteChart:
    """Pageviews and visitors per minute over the last 30 minutes, as bars."""

    def __init__(self) -> None:
        self._shown: Any = None
        self.chart = ui.echart({
            # Keys starting with ":" are evaluated in the browser (ui/layout.py's PANEL_JS):
            # the colours follow the light or dark theme, motion the user's preference.
            ":animation": "!pulseReducedMotion()",
            "animationDurationUpdate": 300,
            "aria": {"enabled": True},
            "grid": {"left": 40, "right": 16, "top": 36, "bottom": 28},
            "legend": {"data": ["Pageviews", "Visitors"], "right": 8, "top": 4,
                       "itemWidth": 12, "itemHeight": 12,
                       "textStyle": {":color": "pulseChartColors().text"}},
            "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
            "xAxis": {"type": "category", "data": [], "axisTick": {"alignWithLabel": True},
                      "axisLabel": {":color": "pulseChartColors().text"},
                      "axisLine": {"lineStyle": {":color": "pulseChartColors().axis"}}},
            "yAxis": {"type": "value", "minInterval": 1,
                      "axisLabel": {":color": "pulseChartColors().text"},
                      "splitLine": {"lineStyle": {":color": "pulseChartColors().line"}}},
            "series": [
                {"name": "Pageviews", "type": "bar", "data": [], "barGap": "10%",
                 "itemStyle": {"color": "#6366f1", "borderRadius": [3, 3, 0, 0]}},
                {"name": "Visitors", "type": "bar", "data": [],
                 "itemStyle": {"color": "#a5b4fc", "borderRadius": [3, 3, 0, 0]}},
            ],
        }).classes("pulse-chart w-full h-56").mark("minute-chart")

    def show(self, minutes: Sequence[dict[str, int]], zone: ZoneInfo) -> None:
        """Show per-minute rows (``minute`` in ms, ``pageviews``, ``visitors``), oldest first."""
        labels = [local_time(row["minute"], zone, "%H:%M") for row in minutes]
        pageviews = [row["pageviews"] for row in minutes]
        visitors = [row["visitors"] for row in minutes]
        shown = (labels, pageviews, visitors)
        if shown == self._shown:
            return
        self._shown = shown
        options = self.chart.options
        options["xAxis"]["data"] = labels
        options["series"][0]["data"] = pageviews
        options["series"][1]["data"] = visitors
        self.chart.update()


def heading(text: str) -> ui.label:
    """A card's title, as the page's second heading level."""
    label = ui.label(text).classes("text-sm font-semibold text-slate-700")
    label.tag = "h2"
    return label
