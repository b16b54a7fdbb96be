"""The dashboard's widgets: top stats, the chart, breakdown cards and their details dialog.
They show what the query engine answers; values from events go into element text only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from models.stats.query import PROP_NAME, PROPS_PREFIX
from ui.components.dashboard_state import CHART_METRICS, DashboardState

Ask = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

REPORT_CSS = """
.pulse-row { position: relative; display: flex; align-items: center; gap: 8px;
  min-height: 30px; padding: 0 8px; border-radius: 6px; overflow: hidden; }
.pulse-row-bar { position: absolute; top: 0; bottom: 0; left: 0; background: var(--pulse-bar); }
.pulse-row > :not(.pulse-row-bar) { position: relative; }
.pulse-row-name { flex: 1 1 auto; min-width: 0; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; color: var(--pulse-text); text-decoration: none; }
.pulse-row-name:hover, .pulse-row-name:focus { text-decoration: underline; }
.pulse-row-value { flex: none; font-variant-numeric: tabular-nums; color: var(--pulse-muted); }
.pulse-stat { text-decoration: none; color: inherit; display: block; border-radius: 8px;
  padding: 10px 12px; border: 1px solid var(--pulse-line); min-width: 0; }
.pulse-stat[aria-current="true"] { border-color: #6366f1; box-shadow: 0 0 0 1px #6366f1; }
.pulse-stat:focus-visible, .pulse-row-name:focus-visible { outline: 2px solid #4f46e5;
  outline-offset: 2px; }
"""


def add_report_assets() -> None:
    """The dashboard's CSS (once per page)."""
    ui.add_css(REPORT_CSS)


def format_metric(metric: str, value: Any) -> str:
    """A metric value as people read it."""
    if value is None:
        return "—"
    if metric == "bounce_rate":
        return f"{value:g}%"
    if metric in ("percentage", "conversion_rate"):
        return f"{value:g}%"
    if metric == "visit_duration":
        minutes, seconds = divmod(int(value), 60)
        return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"
    if metric == "views_per_visit":
        return f"{value:.2f}"
    if isinstance(value, int) and value >= 10_000:
        return f"{value / 1000:.1f}k" if value < 1_000_000 else f"{value / 1e6:.1f}M"
    return str(value)


def change_text(metric: str, change: Any) -> tuple[str, str]:
    """(text, tailwind colour class) of a change against the comparison period."""
    if change is None:
        return "new", "text-slate-500"
    if change == 0:
        return "±0" + ("" if metric == "bounce_rate" else "%"), "text-slate-500"
    better = change < 0 if metric == "bounce_rate" else change > 0
    arrow = "↑" if change > 0 else "↓"
    unit = " pts" if metric == "bounce_rate" else "%"
    return f"{arrow} {abs(change):g}{unit}", "text-green-700" if better else "text-red-700"


class TopStats:
    """Six figures with their change; each links to the chart of its metric."""

    def __init__(self, state: DashboardState, website_id: str) -> None:
        self.values: dict[str, ui.label] = {}
        self.changes: dict[str, ui.label] = {}
        with ui.element("div").classes(
                "w-full grid grid-cols-2 sm:grid-cols-3 lg:grid-cols-6 gap-2").mark("top-stats"):
            for metric, title in CHART_METRICS.items():
                current = "true" if metric == state.metric else "false"
                with ui.link(target=state.url(website_id, metric=metric)).classes(
                        "pulse-stat").props(f'aria-current="{current}"').mark(f"stat-{metric}"):
                    ui.label(title).classes("text-xs uppercase tracking-wide text-slate-600")
                    self.values[metric] = ui.label("…").classes(
                        f"text-xl font-semibold stat-{metric}-figure")
                    self.changes[metric] = ui.label("").classes("text-xs")

    def show(self, result: dict[str, Any], metrics: list[str]) -> None:
        """Fill the figures from an aggregate answer (with its comparison)."""
        [row] = result["results"]
        comparison = row.get("comparison")
        for i, metric in enumerate(metrics):
            self.values[metric].set_text(format_metric(metric, row["metrics"][i]))
            if comparison is None:
                self.changes[metric].set_text("")
                continue
            text, colour = change_text(metric, comparison["change"][i])
            self.changes[metric].set_text(text)
            self.changes[metric].classes(replace=f"text-xs {colour}")


class TrendChart:
    """The chosen metric over time, with the comparison period as a dashed second series."""

    def __init__(self) -> None:
        self.chart = ui.echart({
            "animation": False,
            "grid": {"left": 40, "right": 16, "top": 24, "bottom": 28},
            "tooltip": {"trigger": "axis"},
            "legend": {"show": False},
            "xAxis": {"type": "category", "data": [], "boundaryGap": False},
            "yAxis": {"type": "value", "minInterval": 1},
            "series": [],
        }).classes("w-full h-64").mark("trend-chart")

    def show(self, title: str, labels: list[str], values: list[Any],
             previous: list[Any] | None) -> None:
        """Draw ``values`` over ``labels`` (and ``previous``, aligned by position)."""
        series: list[dict[str, Any]] = [{"name": title, "type": "line", "data": values,
                                         "areaStyle": {"opacity": 0.08}, "showSymbol": False}]
        if previous is not None:
            series.append({"name": f"{title} (comparison)", "type": "line", "data": previous,
                           "showSymbol": False, "lineStyle": {"type": "dashed"},
                           "itemStyle": {"color": "#94a3b8"}})
        self.chart.options["xAxis"]["data"] = labels
        self.chart.options["series"] = series
        self.chart.update()


class BreakdownCard:
    """A report card: tabs of dimensions, the top 10 rows as filter links, and details."""

    def __init__(self, title: str, tabs: list[tuple[str, str]], ask: Ask,
                 body: Callable[[str, int, int, str], dict[str, Any]],
                 link: Callable[[str, str], str], metrics: Callable[[str], list[str]],
                 marker: str) -> None:
        self.ask = ask
        self.body = body
        self.link = link
        self.metrics = metrics
        self.tabs = dict((label, dimension) for label, dimension in tabs)
        self.dimension = tabs[0][1]
        self.marker = marker
        with ui.card().classes(f"w-full gap-1 min-w-0 {marker}-card").props(
                "flat bordered").mark(marker) as self.card:
            with ui.row().classes("w-full items-center justify-between gap-2"):
                ui.label(title).classes("text-base font-semibold text-slate-800").props(
                    'role="heading" aria-level="2"')
                if len(tabs) > 1:
                    ui.select({d: label for label, d in tabs}, value=self.dimension,
                              label=f"{title} report",
                              on_change=lambda e: self.switch(e.value)).props(
                        "dense outlined options-dense").classes("min-w-[9rem]")
            self.header = ui.row().classes(
                "w-full justify-between text-xs uppercase tracking-wide text-slate-600 px-2")
            self.rows = ui.column().classes("w-full gap-0.5")
            ui.button("Details", icon="open_in_full", on_click=self.details).props(
                "flat dense no-caps").classes("self-end").mark(f"{marker}-details")

    async def switch(self, dimension: str) -> None:
        """Show another dimension of the card."""
        self.dimension = dimension
        await self.load()

    def add_property_picker(self) -> None:
        """A field to break the card down by a custom property (goals' properties)."""
        with self.card:
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                name = ui.input("Property", placeholder="e.g. plan").props(
                    "dense outlined").classes("grow").mark(f"{self.marker}-property")

                async def show() -> None:
                    text = (name.value or "").strip()
                    if not text or not PROP_NAME.fullmatch(text):
                        ui.notify("Enter a property name", type="warning")
                        return
                    dimension = PROPS_PREFIX + text
                    self.tabs[f"Property {text}"] = dimension
                    await self.switch(dimension)

                name.on("keydown.enter", show)
                ui.button("Show", on_click=show).props("flat dense no-caps").mark(
                    f"{self.marker}-property-show")

    async def load(self) -> None:
        """Ask the engine for the top 10 and show them (a spinner meanwhile)."""
        self.rows.clear()
        with self.rows:
            ui.spinner(size="md").classes("self-center m-4")
        try:
            result = await self.ask(self.body(self.dimension, 10, 0, ""))
        except Exception as exc:  # a failing report must not break the page
            self.rows.clear()
            with self.rows:
                ui.label(f"This report failed: {exc}").classes("text-red-700 text-sm")
            return
        self.show(result)

    def show(self, result: dict[str, Any]) -> None:
        """Render the rows of an answer."""
        metrics = self.metrics(self.dimension)
        self.header.clear()
        with self.header:
            ui.label(next(k for k, v in self.tabs.items() if v == self.dimension))
            ui.label(" · ".join(m.replace("_", " ") for m in metrics[:2]))
        self.rows.clear()
        with self.rows:
            if not result["results"]:
                ui.label("No data for this period.").classes("text-sm text-slate-500 p-2")
            top = max((r["metrics"][0] for r in result["results"]), default=0) or 1
            for row in result["results"]:
                self.row(row, top, metrics)

    def row(self, row: dict[str, Any], top: int, metrics: list[str]) -> None:
        """One row: a bar, the value as a filter link, and its figures."""
        value = str(row["dimensions"][0])
        width = round(100 * row["metrics"][0] / top)
        with ui.element("div").classes("pulse-row w-full"):
            ui.element("div").classes("pulse-row-bar").style(f"width: {width}%")
            ui.link(value or "(none)", self.link(self.dimension, value)).classes(
                "pulse-row-name").mark("report-row")
            ui.label(" · ".join(format_metric(m, v) for m, v
                                in zip(metrics[:2], row["metrics"][:2], strict=False))
                     ).classes("pulse-row-value text-sm")

    async def details(self) -> None:
        """Every row of the report, searchable and paged."""
        page_size = 50
        state: dict[str, Any] = {"offset": 0, "search": ""}
        with ui.dialog() as dialog, ui.card().classes("w-full max-w-2xl gap-2"):
            title = next(k for k, v in self.tabs.items() if v == self.dimension)
            ui.label(title).classes("text-lg font-semibold").props(
                'role="heading" aria-level="2"')
            search = ui.input("Search").props("clearable dense outlined").classes("w-full")
            rows = ui.column().classes("w-full gap-0.5 max-h-[60vh] overflow-auto")
            with ui.row().classes("w-full items-center justify-between"):
                count = ui.label("").classes("text-sm text-slate-600")
                with ui.row().classes("gap-1"):
                    previous = ui.button("Previous", on_click=lambda: turn(-1)).props("flat")
                    following = ui.button("Next", on_click=lambda: turn(1)).props("flat")
                ui.button("Close", on_click=dialog.close).props("flat")

        async def fill() -> None:
            rows.clear()
            with rows:
                ui.spinner(size="md").classes("self-center m-4")
            result = await self.ask(self.body(self.dimension, page_size, state["offset"],
                                              state["search"]))
            metrics = self.metrics(self.dimension)
            total = result["meta"].get("total_rows", 0)
            rows.clear()
            with rows:
                top = max((r["metrics"][0] for r in result["results"]), default=0) or 1
                for row in result["results"]:
                    self.row(row, top, metrics)
            shown = len(result["results"])
            count.set_text(f"{state['offset'] + 1 if shown else 0}–{state['offset'] + shown} "
                           f"of {total}")
            previous.set_enabled(state["offset"] > 0)
            following.set_enabled(state["offset"] + shown < total)

        async def turn(direction: int) -> None:
            state["offset"] = max(0, state["offset"] + direction * page_size)
            await fill()

        async def searched() -> None:
            state["search"] = (search.value or "").strip()
            state["offset"] = 0
            await fill()

        search.on("keydown.enter", searched)
        search.on("clear", searched)
        search.on("blur", searched)
        dialog.open()
        await fill()

