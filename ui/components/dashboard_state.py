"""The dashboard's state as it lives in the URL (period, comparison, chart metric, filters),
and the Stats API bodies it asks the query engine — the dashboard writes no SQL."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from models.stats.query import (
    EARLIEST,
    EVENT_DIMENSIONS,
    LATEST,
    PROP_NAME,
    PROPS_PREFIX,
    VISIT_DIMENSIONS,
)

PERIODS = {
    "day": "Today", "yesterday": "Yesterday", "24h": "Last 24 hours", "7d": "Last 7 days",
    "28d": "Last 28 days", "30d": "Last 30 days", "91d": "Last 91 days",
    "month": "Month to date", "last_month": "Last month", "year": "Year to date",
    "12mo": "Last 12 months", "all": "All time", "custom": "Custom range",
}
DEFAULT_PERIOD = "30d"
COMPARISONS = {"previous_period": "Previous period", "year_over_year": "Year over year",
               "off": "No comparison"}
CHART_METRICS = {"visitors": "Unique visitors", "visits": "Visits", "pageviews": "Pageviews",
                 "views_per_visit": "Views per visit", "bounce_rate": "Bounce rate",
                 "visit_duration": "Visit duration"}
OPERATORS = {"is": "is", "is_not": "is not", "contains": "contains"}
INTERVALS = {"": "Automatic", "hour": "By hour", "day": "By day", "week": "By week",
             "month": "By month"}
FILTER_LABELS = {
    "visit:channel": "Channel", "visit:source": "Source", "visit:utm_medium": "UTM medium",
    "visit:utm_source": "UTM source", "visit:utm_campaign": "UTM campaign",
    "visit:utm_term": "UTM term", "visit:utm_content": "UTM content",
    "event:page": "Page", "visit:entry_page": "Entry page", "visit:exit_page": "Exit page",
    "visit:country": "Country", "visit:device": "Device", "visit:browser": "Browser",
    "visit:os": "Operating system", "event:goal": "Goal", "visit:referrer": "Referrer",
    "event:hostname": "Host name",
}
MAX_FILTERS = 10
REPORTS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("Sources", "report-sources", [
        ("Channels", "visit:channel"), ("Sources", "visit:source"),
        ("UTM medium", "visit:utm_medium"), ("UTM source", "visit:utm_source"),
        ("UTM campaign", "visit:utm_campaign")]),
    ("Pages", "report-pages", [
        ("Top pages", "event:page"), ("Entry pages", "visit:entry_page"),
        ("Exit pages", "visit:exit_page")]),
    ("Locations", "report-locations", [("Countries", "visit:country")]),
    ("Devices", "report-devices", [
        ("Devices", "visit:device"), ("Browsers", "visit:browser"),
        ("Operating systems", "visit:os")]),
    ("Goals", "report-goals", [("Goals", "event:goal")]),
]
TOP_METRICS = list(CHART_METRICS)


def report_metrics(dimension: str) -> list[str]:
    """What a breakdown row shows."""
    if dimension == "event:goal":
        return ["visitors", "conversion_rate", "events"]
    if dimension == "event:page":
        return ["visitors", "pageviews", "percentage"]
    if dimension in ("visit:entry_page", "visit:exit_page"):
        return ["visits", "visitors"]
    if dimension.startswith(PROPS_PREFIX):
        return ["visitors", "events"]
    return ["visitors", "percentage"]




@dataclass(frozen=True)
class DashboardState:
    """What a dashboard URL asks for."""

    period: str = DEFAULT_PERIOD
    first: date | None = None  # custom range
    last: date | None = None
    compare: str = "previous_period"
    metric: str = "visitors"
    interval: str = ""  # the chart's hour | day | week | month ("": chosen by the period)
    filters: tuple[tuple[str, str, str], ...] = ()  # (operator, dimension, value)

    @classmethod
    def from_params(cls, params: dict[str, list[str]]) -> DashboardState:
        """Read the URL's query parameters; anything unusable falls back to the default."""
        def one(name: str, default: str) -> str:
            values = params.get(name) or [default]
            return values[0]

        period = one("period", DEFAULT_PERIOD)
        first = _day(one("from", "")) if period == "custom" else None
        last = _day(one("to", "")) if period == "custom" else None
        if period not in PERIODS or (period == "custom" and (
                not first or not last or last < first or first < EARLIEST
                or last >= LATEST)):
            period, first, last = DEFAULT_PERIOD, None, None
        compare = one("compare", "previous_period")
        metric = one("metric", "visitors")
        interval = one("interval", "")
        filters = []
        for raw in (params.get("f") or [])[:MAX_FILTERS]:
            operator, _, rest = raw.partition("|")
            dimension, _, value = rest.partition("|")
            if operator in OPERATORS and filterable(dimension) and value:
                filters.append((operator, dimension, value[:500]))
        return cls(period=period, first=first, last=last,
                   compare=compare if compare in COMPARISONS else "previous_period",
                   metric=metric if metric in CHART_METRICS else "visitors",
                   interval=interval if interval in INTERVALS else "",
                   filters=tuple(filters))

    def url(self, website_id: str, **changes: Any) -> str:
        """The dashboard URL of this state with ``changes`` applied."""
        state = dataclasses.replace(self, **changes)
        params: list[tuple[str, str]] = [("period", state.period)]
        if state.period == "custom" and state.first and state.last:
            params += [("from", state.first.isoformat()), ("to", state.last.isoformat())]
        if state.compare != "previous_period":
            params.append(("compare", state.compare))
        if state.metric != "visitors":
            params.append(("metric", state.metric))
        if state.interval:
            params.append(("interval", state.interval))
        params += [("f", f"{op}|{dim}|{value}") for op, dim, value in state.filters]
        return f"/websites/{website_id}/dashboard?{urlencode(params)}"

    @property
    def time_dimension(self) -> str:
        """The chart's time dimension."""
        return f"time:{self.interval}" if self.interval else "time"

    def with_filter(self, operator: str, dimension: str, value: str) -> DashboardState:
        """This state with one more filter (replacing an equal one)."""
        kept = tuple(f for f in self.filters if f[:2] != (operator, dimension))
        return dataclasses.replace(self, filters=(*kept, (operator, dimension, value)))

    def without_filter(self, index: int) -> DashboardState:
        """This state without its ``index``-th filter."""
        return dataclasses.replace(
            self, filters=tuple(f for i, f in enumerate(self.filters) if i != index))

    def date_range(self, zone: ZoneInfo, now: datetime) -> Any:
        """The Stats API ``date_range`` of the period."""
        today = now.astimezone(zone).date()
        if self.period == "yesterday":
            day = (today - timedelta(days=1)).isoformat()
            return [day, day]
        if self.period == "24h":
            moment = now.astimezone(zone).replace(microsecond=0)
            return [(moment - timedelta(hours=24)).isoformat(), moment.isoformat()]
        if self.period == "last_month":
            last = today.replace(day=1) - timedelta(days=1)
            return [last.replace(day=1).isoformat(), last.isoformat()]
        if self.period == "custom" and self.first and self.last:
            return [self.first.isoformat(), self.last.isoformat()]
        return self.period

    def body(self, zone: ZoneInfo, now: datetime, **fields: Any) -> dict[str, Any]:
        """A Stats API body for this state's period and filters, plus ``fields``."""
        body: dict[str, Any] = {"date_range": self.date_range(zone, now)}
        if self.filters:
            body["filters"] = [[op, dim, [value]] for op, dim, value in self.filters]
        body.update(fields)
        return body


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def shifted(state: DashboardState, first: date, last: date, direction: int) -> DashboardState:
    """The state showing the period of the same length before (-1) or after (+1)."""
    days = (last - first).days + 1
    if state.period in ("month", "last_month") or (
            first.day == 1 and (last + timedelta(days=1)).day == 1):
        start = _add_months(first, direction)
        end = _add_months(start, 1) - timedelta(days=1)
    else:
        start = first + timedelta(days=days * direction)
        end = last + timedelta(days=days * direction)
    return dataclasses.replace(state, period="custom", first=start, last=end)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def filterable(dimension: str) -> bool:
    """Whether the dashboard filters by ``dimension`` (the listed ones and goal properties)."""
    if dimension in FILTER_LABELS:
        return True
    name = dimension.removeprefix(PROPS_PREFIX)
    return dimension.startswith(PROPS_PREFIX) and bool(PROP_NAME.fullmatch(name))


def dimension_label(dimension: str) -> str:
    """``Source``, ``Property plan``."""
    if dimension.startswith(PROPS_PREFIX):
        return f"Property {dimension.removeprefix(PROPS_PREFIX)}"
    return FILTER_LABELS.get(dimension, dimension)


def filter_label(operator: str, dimension: str, value: str) -> str:
    """``Source is google``."""
    return f"{dimension_label(dimension)} {OPERATORS[operator]} {value}"


KNOWN = set(VISIT_DIMENSIONS) | set(EVENT_DIMENSIONS)


def report_body(state: DashboardState, zone: ZoneInfo, now: datetime, dimension: str,
                limit: int, offset: int, search: str) -> dict[str, Any]:
    """The body of one breakdown page (empty UTM values are not a campaign)."""
    body = state.body(zone, now, metrics=report_metrics(dimension), dimensions=[dimension],
                      pagination={"limit": limit, "offset": offset},
                      include={"total_rows": True})
    extra = []
    if dimension.startswith("visit:utm_"):
        extra.append(["is_not", dimension, [""]])
    if dimension.startswith(PROPS_PREFIX):  # the events that carry the property
        extra.append(["is_not", dimension, ["(none)"]])
    if search:
        extra.append(["contains", dimension, [search]])
    if extra:
        body["filters"] = [*body.get("filters", []), *extra]
    return body


def view_bodies(state: DashboardState, zone: ZoneInfo, now: datetime,
                comparison_range: Any = None) -> list[dict[str, Any]]:
    """Every body the dashboard asks the engine on load, in order: top stats, the chart (and,
    given the comparison's date range from the top stats' answer, the comparison chart), then
    the first report of each card."""
    include: dict[str, Any] = {}
    if state.compare != "off":
        include["comparisons"] = {"mode": state.compare}
    bodies = [state.body(zone, now, metrics=TOP_METRICS, include=include),
              state.body(zone, now, metrics=[state.metric], dimensions=[state.time_dimension],
                         include={"time_labels": True})]
    if comparison_range is not None:
        bodies.append(state.body(zone, now, metrics=[state.metric],
                                 dimensions=[state.time_dimension],
                                 include={"time_labels": True}, date_range=comparison_range))
    bodies += [report_body(state, zone, now, tabs[0][1], 10, 0, "") for _, _, tabs in REPORTS]
    return bodies
