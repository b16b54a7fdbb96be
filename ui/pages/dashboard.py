"""/websites/{id}/dashboard: a website's history — period picker, top stats with their change,
a chart, breakdowns and filters, all kept in the URL. Every figure comes from the query engine
(models.stats), run off the event loop; the live view is the Realtime tab."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from nicegui import ui
from nicegui.events import KeyEventArguments

from backend.services import Services
from models.entities import Website
from models.stats import answer
from models.stats.export import csv_zip
from ui.components.dashboard_state import (
    CHART_METRICS,
    COMPARISONS,
    FILTER_LABELS,
    INTERVALS,
    OPERATORS,
    PERIODS,
    REPORTS,
    TOP_METRICS,
    DashboardState,
    filter_label,
    report_body,
    report_metrics,
    shifted,
)
from ui.components.report_widgets import BreakdownCard, TopStats, TrendChart, add_report_assets
from ui.layout import frame
from ui.pages.live import website_not_found, website_zone
from ui.session import require_user, website_for

log = logging.getLogger("pulse.panel.dashboard")

SHORTCUTS = {"d": "day", "e": "yesterday", "r": "realtime", "w": "7d", "f": "28d", "t": "30d",
             "n": "91d", "m": "month", "p": "last_month", "y": "year", "l": "12mo", "a": "all"}

class Dashboard:
    """One open dashboard: its state, its widgets, and the questions it asks the engine."""

    def __init__(self, website: Website, state: DashboardState) -> None:
        self.website = website
        self.state = state
        self.zone: ZoneInfo = website_zone(website)
        self.now = datetime.now(self.zone)
        add_report_assets()
        self.controls()
        self.filter_bar()
        self.stats = TopStats(state, website.id)
        with ui.card().classes("w-full px-3 pt-2 pb-1 gap-0").props("flat bordered"):
            with ui.row().classes("w-full items-center justify-between"):
                ui.label(CHART_METRICS[state.metric]).classes(
                    "text-sm font-semibold text-slate-700").props(
                    'role="heading" aria-level="2"')
                with ui.row().classes("items-center gap-2"):
                    self.chart_spinner = ui.spinner(size="sm")
                    ui.select(INTERVALS, value=state.interval, label="Interval",
                              on_change=lambda e: ui.navigate.to(
                                  state.url(website.id, interval=e.value))).props(
                        "dense outlined options-dense").classes("min-w-[8rem]").mark(
                        "interval")
            self.chart = TrendChart()
        self.cards: list[BreakdownCard] = []
        with ui.element("div").classes("w-full grid grid-cols-1 md:grid-cols-2 gap-4"):
            for title, marker, tabs in REPORTS:
                self.cards.append(BreakdownCard(title, tabs, self.ask, self.report_body,
                                                self.filter_link, report_metrics, marker))
        self.cards[-1].add_property_picker()  # goals and their properties

    def controls(self) -> None:
        """Period picker with previous/next, custom range, and the comparison."""
        state, website_id = self.state, self.website.id
        with ui.row().classes("w-full items-center gap-2").mark("period-bar"):
            picker = {"day": PERIODS["day"], "yesterday": PERIODS["yesterday"],
                      "realtime": "Realtime", **PERIODS}
            ui.select(picker, value=state.period, label="Period",
                      on_change=lambda e: self.choose_period(e.value)).props(
                "dense outlined").classes("min-w-[11rem]").mark("period")
            first, last = self.days()
            if first is not None and last is not None and state.period not in ("all", "24h"):
                ui.button(icon="chevron_left", on_click=lambda: ui.navigate.to(
                    shifted(state, first, last, -1).url(website_id))).props(
                    'flat round dense aria-label="Previous period"').mark("previous-period")
                ui.button(icon="chevron_right", on_click=lambda: ui.navigate.to(
                    shifted(state, first, last, 1).url(website_id))).props(
                    'flat round dense aria-label="Next period"').mark("next-period")
                ui.label(self.range_text(first, last)).classes("text-sm text-slate-600")
            ui.select(COMPARISONS, value=state.compare, label="Compare with",
                      on_change=lambda e: ui.navigate.to(
                          state.url(website_id, compare=e.value))).props(
                "dense outlined").classes("min-w-[11rem]").mark("compare")
        ui.keyboard(on_key=self.on_key, ignore=["input", "select", "button", "textarea"])
        self.custom = ui.row().classes("items-end gap-2")
        self.custom.set_visibility(state.period == "custom")
        with self.custom:
            start = ui.input("From", value=(state.first or self.now.date()).isoformat()).props(
                "type=date dense outlined").mark("custom-from")
            end = ui.input("To", value=(state.last or self.now.date()).isoformat()).props(
                "type=date dense outlined").mark("custom-to")

            def apply() -> None:
                try:
                    first_day = date.fromisoformat(start.value or "")
                    last_day = date.fromisoformat(end.value or "")
                except ValueError:
                    ui.notify("Enter both dates", type="warning")
                    return
                if last_day < first_day:
                    ui.notify("The range ends before it starts", type="warning")
                    return
                ui.navigate.to(dataclasses.replace(
                    state, period="custom", first=first_day, last=last_day).url(website_id))

            ui.button("Apply", on_click=apply).mark("custom-apply")

    def on_key(self, event: KeyEventArguments) -> None:
        """Plausible's shortcuts: ← → previous/next period, and a letter per period."""
        modifiers = event.modifiers
        if not event.action.keydown or modifiers.ctrl or modifiers.alt or modifiers.meta:
            return
        first, last = self.days()
        if (event.key.arrow_left or event.key.arrow_right) and first and last \
                and self.state.period not in ("all", "24h"):
            direction = -1 if event.key.arrow_left else 1
            ui.navigate.to(shifted(self.state, first, last, direction).url(self.website.id))
        elif str(event.key.name).lower() in SHORTCUTS and not modifiers.shift:
            self.choose_period(SHORTCUTS[str(event.key.name).lower()])

    def choose_period(self, period: str) -> None:
        """Go to ``period`` (a custom range first shows its date fields)."""
        if period == "custom":
            self.custom.set_visibility(True)
            return
        if period == "realtime":  # the live view is the dashboard's Realtime tab
            ui.navigate.to(f"/websites/{self.website.id}/live")
            return
        ui.navigate.to(self.state.url(self.website.id, period=period, first=None, last=None))

    def days(self) -> tuple[date | None, date | None]:
        """The first and last day of the period (None for ranges that are not whole days)."""
        date_range = self.state.date_range(self.zone, self.now)
        if isinstance(date_range, list):
            try:
                return date.fromisoformat(date_range[0]), date.fromisoformat(date_range[1])
            except ValueError:
                return None, None
        from models.stats.periods import named_range
        period = named_range(date_range, self.zone, self.now, None)
        return period.first_day, period.last_day

    @staticmethod
    def range_text(first: date, last: date) -> str:
        """``3 Jan – 9 Jan 2026``."""
        if first == last:
            return first.strftime("%-d %b %Y")
        return f"{first.strftime('%-d %b')} – {last.strftime('%-d %b %Y')}"

    def filter_bar(self) -> None:
        """The active filters, each removable, and a dialog to add one."""
        state, website_id = self.state, self.website.id
        with ui.row().classes("w-full items-center gap-2").mark("filter-bar"):
            for index, (operator, dimension, value) in enumerate(state.filters):
                text = filter_label(operator, dimension, value)
                with ui.element("div").classes(
                        "flex items-center gap-1 rounded-full bg-indigo-50 text-indigo-900 "
                        "pl-3 pr-1 py-0.5 text-sm max-w-full").mark("active-filter"):
                    ui.label(text).classes("truncate")
                    ui.link("✕", state.without_filter(index).url(website_id)).classes(
                        "no-underline text-indigo-900 px-1").props(
                        f'aria-label="Remove filter {text}"').mark("remove-filter")
            with ui.dialog() as dialog, ui.card().classes("w-full max-w-md gap-2"):
                ui.label("Add a filter").classes("text-lg font-semibold").props(
                    'role="heading" aria-level="2"')
                pick = ui.select(FILTER_LABELS, value="visit:source", label="Dimension") \
                    .classes("w-full").mark("filter-dimension")
                how = ui.select(OPERATORS, value="is", label="Operator") \
                    .classes("w-full").mark("filter-operator")
                entry = ui.input("Value").classes("w-full").mark("filter-value")

                def add() -> None:
                    text = (entry.value or "").strip()
                    if not text:
                        ui.notify("Enter a value", type="warning")
                        return
                    ui.navigate.to(state.with_filter(str(how.value), str(pick.value),
                                                     text).url(website_id))

                with ui.row().classes("w-full justify-end"):
                    ui.button("Cancel", on_click=dialog.close).props("flat")
                    ui.button("Apply filter", on_click=add).mark("filter-apply")
            ui.button("Add filter", icon="filter_list", on_click=dialog.open).props(
                "flat dense no-caps").mark("add-filter")
            if state.filters:
                ui.link("Clear filters", dataclasses.replace(state, filters=()).url(
                    website_id)).classes("text-sm")
            ui.space()
            self.export_button = ui.button("Export CSV", icon="download",
                                           on_click=self.export).props(
                "flat dense no-caps").mark("export")

    async def ask(self, body: dict[str, Any]) -> dict[str, Any]:
        """Ask the query engine, off the event loop."""
        website = self.website
        return await asyncio.to_thread(answer, body, website.id, website.timezone)

    def body(self, **fields: Any) -> dict[str, Any]:
        """A Stats API body of this dashboard's period and filters."""
        return self.state.body(self.zone, self.now, **fields)

    def report_body(self, dimension: str, limit: int, offset: int,
                    search: str) -> dict[str, Any]:
        """The body of one breakdown page."""
        return report_body(self.state, self.zone, self.now, dimension, limit, offset, search)

    def filter_link(self, dimension: str, value: str) -> str:
        """The URL of this dashboard filtered by ``dimension is value``."""
        return self.state.with_filter("is", dimension, value).url(self.website.id)

    async def export_reports(self) -> bytes:
        """The current view as a ZIP of CSV files: the totals, the time series, and every
        breakdown (up to 10,000 rows each)."""
        reports: list[tuple[str, list[str], dict[str, Any]]] = []
        totals = await self.ask(self.body(metrics=TOP_METRICS))
        reports.append(("totals", TOP_METRICS, totals))
        series = await self.ask(self.body(metrics=TOP_METRICS, dimensions=["time"]))
        reports.append(("time_series", ["time", *TOP_METRICS], series))
        for _, _, tabs in REPORTS:
            for label, dimension in tabs:
                body = self.report_body(dimension, 10_000, 0, "")
                result = await self.ask(body)
                reports.append((label, [label.lower(), *report_metrics(dimension)], result))
        return await asyncio.to_thread(csv_zip, reports)

    async def export(self) -> None:
        """Download the current view as CSV files in a ZIP."""
        self.export_button.props("loading")
        try:
            data = await self.export_reports()
        finally:
            self.export_button.props(remove="loading")
        first, last = self.days()
        span = f"{first}_{last}" if first and last else self.state.period
        ui.download.content(data, f"pulse-{self.website.domain}-{span}.zip",
                            "application/zip")

    async def load(self) -> None:
        """Fill every widget; the reports run concurrently in threads."""
        await asyncio.gather(self.load_top_safely(), *(card.load() for card in self.cards))

    async def load_top_safely(self) -> None:
        """Top stats and chart; a failure is shown, never a spinner that turns forever."""
        try:
            await self.load_top()
        except Exception as exc:
            log.exception("dashboard of %s failed", self.website.id)
            self.chart_spinner.set_visibility(False)
            ui.notify(f"The reports could not be loaded: {exc}", type="negative")

    async def load_top(self) -> None:
        """Top stats, then the chart (with its comparison period)."""
        compare = self.state.compare
        include: dict[str, Any] = {}
        if compare != "off":
            include["comparisons"] = {"mode": compare}
        top = await self.ask(self.body(metrics=TOP_METRICS, include=include))
        self.stats.show(top, TOP_METRICS)
        metric = self.state.metric
        series = await self.ask(self.body(metrics=[metric],
                                          dimensions=[self.state.time_dimension],
                                          include={"time_labels": True}))
        labels = series["meta"]["time_labels"]
        values = _aligned(series, labels)
        previous = None
        if "comparison_date_range" in top["meta"]:
            before = await self.ask(self.body(
                metrics=[metric], dimensions=[self.state.time_dimension],
                include={"time_labels": True},
                date_range=top["meta"]["comparison_date_range"]))
            if before["meta"]["time_labels"] and len(labels) > 0:
                previous = _aligned(before, before["meta"]["time_labels"])[:len(labels)]
        self.chart_spinner.set_visibility(False)
        self.chart.show(CHART_METRICS[metric], labels, values, previous)


def _aligned(result: dict[str, Any], labels: list[str]) -> list[Any]:
    by_label = {row["dimensions"][0]: row["metrics"][0] for row in result["results"]}
    return [by_label.get(label, 0) for label in labels]


def register(services: Services) -> None:
    """Register the dashboard page."""

    @ui.page("/websites/{website_id}/dashboard")
    async def dashboard_page(website_id: str, request: Request) -> None:
        """The history of one website."""
        user = require_user()
        if user is None:
            return
        website = website_for(user, website_id)
        if website is None:
            website_not_found(user)
            return
        params: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            params.setdefault(key, []).append(value)
        state = DashboardState.from_params(params)
        with frame(website.name, user):
            with ui.row().classes("w-full items-center gap-4 -mt-2").mark("website-tabs"):
                ui.label("Dashboard").classes("font-semibold border-b-2 border-indigo-600")
                ui.link("Realtime", f"/websites/{website.id}/live").mark("realtime-tab")
                ui.link("Settings", f"/websites/{website.id}").mark("settings-tab")
                ui.label(f"times in {website.timezone}").classes("text-sm text-slate-500")
            dashboard = Dashboard(website, state)
        ui.timer(0, dashboard.load, once=True)
