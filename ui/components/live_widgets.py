"""The live page's widgets. Each is built once with a fixed number of slots and later only told
new values, so a redraw changes a few texts and classes and never creates elements.

Everything that comes from an event (paths, titles, props, sources) goes into element *text*,
which the browser shows as text: events come from the open internet.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from nicegui import ui

from models.records import EventRecord

FEED_SIZE = 20
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
html[data-pulse-link="lost"] .pulse-link-text { color: #dc2626; }
.pulse-feed-row { display: grid; align-items: center; column-gap: 12px; padding: 4px 16px;
  width: 100%; box-sizing: border-box; min-height: 31px;
  grid-template-columns: 4.2rem 6.2rem minmax(0, 1fr) 6.6rem 5.8rem 3.6rem;
  border-bottom: 1px solid #f1f5f9; transition: background-color 1s ease-out; }
.pulse-feed-row.pulse-fresh { background-color: #fef3c7; transition: none; }
.pulse-feed-head { font-size: 11px; text-transform: uppercase; letter-spacing: .04em;
  color: #64748b; border-bottom: 1px solid #e2e8f0; }
.pulse-chip { font-size: 11px; line-height: 18px; padding: 0 7px; border-radius: 9999px;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 100%;
  justify-self: start; }
.pulse-chip-pageview { background: #e0e7ff; color: #3730a3; }
.pulse-chip-custom { background: #fae8ff; color: #86198f; }
.pulse-cell { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; min-width: 0; }
.pulse-page { display: flex; align-items: baseline; gap: 8px; min-width: 0; }
.pulse-page > .pulse-cell:first-child { flex: 0 1 auto; }
.pulse-page > .pulse-cell + .pulse-cell { flex: 1 1 0; }
.pulse-rank { position: relative; border-radius: 6px; overflow: hidden; }
.pulse-rank-bar { position: absolute; top: 0; bottom: 0; left: 0; background: #eef2ff;
  transition: width .4s ease-out; }
"""

# Listens to NiceGUI's socket.io connection (window.socket, created when the page mounts) and
# marks <html data-pulse-link="live|lost">; the dot's colour and text follow from LIVE_CSS.
# After a server restart NiceGUI reloads the page, which then connects and turns green again.
CONNECTION_JS = """
<script>
(function () {
  function mark(state) { document.documentElement.dataset.pulseLink = state; }
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
        ui.element("span").classes("pulse-dot")
        ui.element("span").classes("pulse-link-text text-sm text-slate-600")


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
        with ui.card().classes("flex-1 min-w-[12rem] gap-1 px-5 py-4").props("flat bordered"):
            ui.label(caption).classes("text-xs uppercase tracking-wide text-slate-500")
            self.value = ui.label("0").classes("text-4xl font-semibold text-slate-900")
            tag(self.value, marker)
            if hint:
                ui.label(hint).classes("text-xs text-slate-400")

    def show(self, number: int) -> None:
        """Show ``number``."""
        self.value.set_text(f"{number:,}")


class _FeedRow:
    """One slot of the activity feed (a slot shows whichever event is at its position)."""

    def __init__(self, index: int) -> None:
        self.event_id: int | None = None
        self.fresh = False
        self.custom: bool | None = None
        with tag(ui.element("div").classes("pulse-feed-row"), f"feed-row-{index}") as self.row:
            self.time = ui.label().classes("pulse-cell text-xs text-slate-500 tabular-nums")
            self.kind = ui.label().classes("pulse-chip")
            with ui.element("div").classes("pulse-page"):
                self.path = ui.label().classes("pulse-cell font-mono text-sm text-slate-900")
                self.detail = ui.label().classes("pulse-cell text-xs text-slate-500")
            self.source = ui.label().classes("pulse-cell text-sm text-slate-700")
            with ui.row().classes("items-center gap-1 no-wrap min-w-0"):
                self.device_icon = ui.icon("devices_other", size="16px").classes("text-slate-400")
                self.device = ui.label().classes("pulse-cell text-sm text-slate-700")
            self.country = ui.label().classes("pulse-cell text-xs font-mono text-slate-600")
        self.row.set_visibility(False)

    def show(self, event: EventRecord | None, fresh: bool, zone: ZoneInfo) -> None:
        """Show ``event`` (None hides the slot); ``fresh`` highlights it."""
        if event is None:
            self.row.set_visibility(False)
            self.event_id = None
            return
        self.row.set_visibility(True)
        if fresh != self.fresh:
            self.fresh = fresh
            if fresh:
                self.row.classes(add="pulse-fresh")
            else:
                self.row.classes(remove="pulse-fresh")
        if event.id == self.event_id:
            return
        self.event_id = event.id
        self.time.set_text(local_time(event.ts, zone))
        custom = event.event_type != "pageview"
        if custom != self.custom:
            self.custom = custom
            self.kind.classes(replace="pulse-chip " + ("pulse-chip-custom" if custom
                                                       else "pulse-chip-pageview"))
        self.kind.set_text(event.event_type)
        self.path.set_text(event.pathname)
        detail = event_detail(event)
        self.detail.set_text(detail)
        self.detail.set_visibility(bool(detail))
        self.source.set_text(event.source or "direct")
        self.device_icon.set_name(DEVICE_ICONS.get(event.device, "devices_other"))
        self.device.set_text(event.device or "unknown")
        self.country.set_text(event.country or "—")


class ActivityFeed:
    """The last 20 events, newest first; new ones highlighted for a moment."""

    def __init__(self) -> None:
        with ui.element("div").classes("pulse-feed-row pulse-feed-head"):
            for caption in ("Time", "Event", "Page", "Source", "Device", "Country"):
                ui.label(caption)
        self.empty = ui.label("Waiting for the first event…").classes(
            "text-sm text-slate-400 px-3 py-6")
        self.rows = [_FeedRow(i) for i in range(FEED_SIZE)]

    def show(self, events: Sequence[EventRecord], fresh: set[int], zone: ZoneInfo) -> None:
        """Show ``events`` (newest first), highlighting the ids in ``fresh``."""
        self.empty.set_visibility(not events)
        for i, row in enumerate(self.rows):
            event = events[i] if i < len(events) else None
            row.show(event, event is not None and event.id in fresh, zone)


class _RankRow:
    """One slot of a ranked list: a name, a number and a bar proportional to it."""

    def __init__(self, marker: str) -> None:
        self.width = -1
        with tag(ui.element("div").classes("pulse-rank w-full"), marker) as self.row:
            self.bar = ui.element("div").classes("pulse-rank-bar")
            with ui.row().classes("relative w-full items-center justify-between no-wrap "
                                  "px-2 py-1 gap-3"):
                self.name = ui.label().classes("pulse-cell text-sm text-slate-800")
                self.count = ui.label().classes("text-sm text-slate-600 tabular-nums "
                                                "whitespace-nowrap")
        self.row.set_visibility(False)

    def show(self, name: str | None, count: int, top: int, suffix: str) -> None:
        """Show ``name`` with ``count`` (None hides the slot)."""
        self.row.set_visibility(name is not None)
        if name is None:
            return
        self.name.set_text(name)
        self.count.set_text(f"{count:,}{suffix}")
        width = round(100 * count / top) if top else 0
        if width != self.width:
            self.width = width
            self.bar.style(f"width: {width}%")


class RankedList:
    """A titled list of names by number of current visitors (active pages, sources, …)."""

    def __init__(self, title: str, marker: str, size: int, *, empty: str = "Nobody here yet",
                 suffix: str = "", mono: bool = False) -> None:
        self.suffix = suffix
        with ui.card().classes("w-full gap-1 px-4 py-3").props("flat bordered"):
            ui.label(title).classes("text-sm font-semibold text-slate-700 mb-1")
            self.empty = ui.label(empty).classes("text-sm text-slate-400 py-2")
            self.rows = [_RankRow(f"{marker}-{i}") for i in range(size)]
        if mono:
            for row in self.rows:
                row.name.classes(add="font-mono")

    def show(self, items: Sequence[tuple[str, int]]) -> None:
        """Show ``items`` (name, visitors), largest first."""
        self.empty.set_visibility(not items)
        top = items[0][1] if items else 0
        for i, row in enumerate(self.rows):
            if i < len(items):
                row.show(items[i][0], items[i][1], top, self.suffix)
            else:
                row.show(None, 0, top, self.suffix)


class MinuteChart:
    """Pageviews and visitors per minute over the last 30 minutes, as bars."""

    def __init__(self) -> None:
        self._shown: Any = None
        self.chart = ui.echart({
            "animationDurationUpdate": 300,
            "grid": {"left": 40, "right": 16, "top": 36, "bottom": 28},
            "legend": {"data": ["Pageviews", "Visitors"], "right": 8, "top": 4,
                       "itemWidth": 12, "itemHeight": 12},
            "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
            "xAxis": {"type": "category", "data": [], "axisTick": {"alignWithLabel": True},
                      "axisLabel": {"color": "#64748b"}},
            "yAxis": {"type": "value", "minInterval": 1, "axisLabel": {"color": "#64748b"},
                      "splitLine": {"lineStyle": {"color": "#f1f5f9"}}},
            "series": [
                {"name": "Pageviews", "type": "bar", "data": [], "barGap": "10%",
                 "itemStyle": {"color": "#6366f1", "borderRadius": [3, 3, 0, 0]}},
                {"name": "Visitors", "type": "bar", "data": [],
                 "itemStyle": {"color": "#a5b4fc", "borderRadius": [3, 3, 0, 0]}},
            ],
        }).classes("w-full h-56").mark("minute-chart")

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
