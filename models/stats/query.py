"""``Query``: a Stats API v2 request, parsed and validated before any SQL exists. Every error
names the field it is about, like Plausible's query parser."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from models.stats.periods import DateRange, days_range, midnight, named_range

METRICS = ("visitors", "visits", "pageviews", "views_per_visit", "bounce_rate",
           "visit_duration", "events", "percentage", "conversion_rate")
SESSION_METRICS = frozenset({"bounce_rate", "visit_duration", "views_per_visit"})

VISIT_DIMENSIONS = {
    "visit:source": "source", "visit:referrer": "referrer", "visit:channel": "channel",
    "visit:utm_source": "utm_source", "visit:utm_medium": "utm_medium",
    "visit:utm_campaign": "utm_campaign", "visit:utm_term": "utm_term",
    "visit:utm_content": "utm_content", "visit:entry_page": "entry_page",
    "visit:exit_page": "exit_page", "visit:country": "country", "visit:device": "device",
    "visit:browser": "browser", "visit:os": "os",
}
EVENT_DIMENSIONS = {"event:page": "pathname", "event:goal": "event_type",
                    "event:name": "event_type", "event:hostname": "hostname"}
PROPS_PREFIX = "event:props:"
TIME_DIMENSIONS = ("time", "time:hour", "time:day", "time:week", "time:month")
FILTER_OPERATORS = ("is", "is_not", "contains", "contains_not")
DATE_RANGES = ("day", "7d", "28d", "30d", "91d", "month", "6mo", "12mo", "year", "all")
COMPARISONS = ("previous_period", "year_over_year")
MAX_LIMIT = 10_000
MAX_FILTER_VALUES = 100
MAX_FILTER_DEPTH = 5
PROP_NAME = re.compile(r'[^\x00-\x1f\x7f"\\]{1,64}')
TOP_LEVEL = frozenset({"site_id", "metrics", "date_range", "dimensions", "filters",
                       "order_by", "pagination", "include"})


class QueryError(ValueError):
    """A query is invalid; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Filter:
    """``[operator, dimension, [values…]]``."""

    operator: str
    dimension: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Logical:
    """``["and"|"or", [filters…]]`` or ``["not", filter]``."""

    operator: str
    children: tuple[Filter | Logical, ...]


FilterTree = Filter | Logical


@dataclass(frozen=True)
class Query:
    """One validated question to the engine."""

    website_id: str
    timezone: str
    metrics: tuple[str, ...]
    period: DateRange
    dimensions: tuple[str, ...] = ()
    filters: tuple[FilterTree, ...] = ()
    order_by: tuple[tuple[str, str], ...] = ()
    limit: int = MAX_LIMIT
    offset: int = 0
    comparison: str = ""  # previous_period | year_over_year | ""
    time_labels: bool = False
    total_rows: bool = False
    echo: dict[str, Any] = field(default_factory=dict, compare=False)
    rollups: bool = field(default=True, compare=False)  # False: raw rows only (tests, B8)

    @property
    def zone(self) -> ZoneInfo:
        """The website's time zone."""
        return ZoneInfo(self.timezone)

    def dimension_kinds(self) -> set[str]:
        """``event``, ``visit`` and/or ``time``: what the dimensions are about."""
        return {kind_of(d) for d in self.dimensions}

    def filter_kinds(self) -> set[str]:
        """What the filters are about."""
        kinds: set[str] = set()
        for tree in self.filters:
            kinds |= {kind_of(f.dimension) for f in leaves(tree)}
        return kinds


def kind_of(dimension: str) -> str:
    """``event``, ``visit`` or ``time``."""
    if dimension in TIME_DIMENSIONS:
        return "time"
    if dimension in VISIT_DIMENSIONS:
        return "visit"
    return "event"


def leaves(tree: FilterTree) -> list[Filter]:
    """The plain filters of a tree."""
    if isinstance(tree, Filter):
        return [tree]
    return [leaf for child in tree.children for leaf in leaves(child)]


def _dimension(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise QueryError(field, "must be a string")
    if value in VISIT_DIMENSIONS or value in EVENT_DIMENSIONS or value in TIME_DIMENSIONS:
        return value
    if value.startswith(PROPS_PREFIX) and PROP_NAME.fullmatch(value[len(PROPS_PREFIX):]):
        return value
    raise QueryError(field, f"invalid dimension {value!r}")


def _metrics(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise QueryError("metrics", "must be a non-empty list of metric names")
    for metric in value:
        if metric not in METRICS:
            raise QueryError("metrics", f"unknown metric {metric!r}; use one of "
                             + ", ".join(METRICS))
    if len(set(value)) != len(value):
        raise QueryError("metrics", "must not repeat a metric")
    return tuple(value)


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def _moment(text: str, zone: ZoneInfo) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
        if not EARLIEST.year <= moment.year < LATEST.year:
            raise ValueError(text)
    except ValueError:
        raise QueryError("date_range", f"{text!r} is not an ISO 8601 date or datetime") from None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment.astimezone(zone)


EARLIEST = date(1970, 1, 2)
LATEST = date(2200, 1, 1)
MAX_HOURS = 24 * 93  # hourly buckets for at most about three months


def parse_date_range(value: Any, zone: ZoneInfo, now: datetime,
                     first_visit: date | None) -> DateRange:
    """A named range, ``[from, to]`` dates (whole days, inclusive) or datetimes."""
    period = _date_range(value, zone, now, first_visit)
    first = period.first_day or period.start.date()
    last = period.last_day or period.end.date()
    if first < EARLIEST or last >= LATEST:
        raise QueryError("date_range", f"must lie between {EARLIEST} and {LATEST}")
    return period


def _date_range(value: Any, zone: ZoneInfo, now: datetime,
                first_visit: date | None) -> DateRange:
    if isinstance(value, str):
        try:
            return named_range(value, zone, now, first_visit)
        except KeyError:
            raise QueryError("date_range", f"unknown range {value!r}; use one of "
                             + ", ".join(DATE_RANGES) + " or [from, to]") from None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, str) for v in value)):
        raise QueryError("date_range", "must be a range name or a [from, to] pair of strings")
    first, last = _date(value[0]), _date(value[1])
    if first is not None and last is not None:
        if first < EARLIEST or last >= LATEST:
            raise QueryError("date_range", f"must lie between {EARLIEST} and {LATEST}")
        if last < first:
            raise QueryError("date_range", "ends before it starts")
        return days_range(first, last, zone)
    start, end = _moment(value[0], zone), _moment(value[1], zone)
    if end < start:
        raise QueryError("date_range", "ends before it starts")
    end = end + timedelta(seconds=1) if end.microsecond == 0 else end
    first_day, after = start.date(), end.astimezone(zone).date()
    if start == midnight(first_day, zone) and end == midnight(after, zone) and after > first_day:
        return days_range(first_day, after - timedelta(days=1), zone)  # whole days after all
    return DateRange(start, end)


def _filter(value: Any, field: str, depth: int = 0) -> FilterTree:
    if depth > MAX_FILTER_DEPTH:
        raise QueryError(field, f"nests more than {MAX_FILTER_DEPTH} levels")
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise QueryError(field, "must be [operator, dimension, [values]] or [and|or|not, …]")
    operator = value[0]
    if operator in ("and", "or"):
        if len(value) != 2 or not isinstance(value[1], list) or not value[1]:
            raise QueryError(field, f"{operator} takes a non-empty list of filters")
        return Logical(operator, tuple(_filter(child, f"{field}[{i}]", depth + 1)
                                       for i, child in enumerate(value[1])))
    if operator == "not":
        if len(value) != 2:
            raise QueryError(field, "not takes one filter")
        return Logical("not", (_filter(value[1], field, depth + 1),))
    if operator not in FILTER_OPERATORS:
        raise QueryError(field, f"unknown operator {operator!r}; use one of "
                         + ", ".join((*FILTER_OPERATORS, "and", "or", "not")))
    if len(value) not in (3, 4):
        raise QueryError(field, "must be [operator, dimension, [values]]")
    dimension = _dimension(value[1], field)
    if dimension in TIME_DIMENSIONS:
        raise QueryError(field, "cannot filter on time; use date_range")
    values = value[2]
    if (not isinstance(values, list) or not values or len(values) > MAX_FILTER_VALUES
            or not all(isinstance(v, str) for v in values)):
        raise QueryError(field, f"values must be a list of 1–{MAX_FILTER_VALUES} strings")
    return Filter(operator, dimension, tuple(values))


def _order_by(value: Any, metrics: tuple[str, ...],
              dimensions: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise QueryError("order_by", "must be a list of [metric or dimension, asc|desc]")
    order: list[tuple[str, str]] = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 2
                or item[1] not in ("asc", "desc")):
            raise QueryError("order_by", "each entry must be [metric or dimension, asc|desc]")
        if item[0] not in metrics and item[0] not in dimensions:
            raise QueryError("order_by", f"{item[0]!r} is neither a queried metric nor "
                             "a queried dimension")
        order.append((item[0], item[1]))
    return tuple(order)


def _pagination(value: Any) -> tuple[int, int]:
    if value is None:
        return MAX_LIMIT, 0
    if not isinstance(value, dict) or set(value) - {"limit", "offset"}:
        raise QueryError("pagination", "must be {\"limit\": n, \"offset\": n}")
    limit, offset = value.get("limit", MAX_LIMIT), value.get("offset", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise QueryError("pagination", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise QueryError("pagination", "offset must be a whole number ≥ 0")
    return limit, offset


def _include(value: Any) -> tuple[str, bool, bool]:
    if value is None:
        return "", False, False
    if not isinstance(value, dict) or set(value) - {"comparisons", "time_labels", "total_rows"}:
        raise QueryError("include", "may hold comparisons, time_labels and total_rows")
    comparison = ""
    if value.get("comparisons") is not None:
        mode = value["comparisons"].get("mode") if isinstance(value["comparisons"], dict) \
            else None
        if mode not in COMPARISONS:
            raise QueryError("include", "comparisons.mode must be previous_period or "
                             "year_over_year")
        comparison = mode
    for flag in ("time_labels", "total_rows"):
        if not isinstance(value.get(flag, False), bool):
            raise QueryError("include", f"{flag} must be true or false")
    return comparison, bool(value.get("time_labels")), bool(value.get("total_rows"))


def parse_query(body: Any, website_id: str, timezone: str, *, now: datetime,
                first_visit: date | None = None) -> Query:
    """The ``Query`` of a Stats API body for a website already resolved from ``site_id``."""
    if not isinstance(body, dict):
        raise QueryError("body", "must be a JSON object")
    unknown = sorted(set(body) - TOP_LEVEL)
    if unknown:
        raise QueryError(unknown[0], "is not a query field")
    metrics = _metrics(body.get("metrics"))
    if "date_range" not in body:
        raise QueryError("date_range", "is required")
    zone = ZoneInfo(timezone)
    period = parse_date_range(body["date_range"], zone, now, first_visit)
    raw_dimensions = body.get("dimensions", [])
    if not isinstance(raw_dimensions, list):
        raise QueryError("dimensions", "must be a list")
    dimensions = tuple(_dimension(d, "dimensions") for d in raw_dimensions)
    if len(set(dimensions)) != len(dimensions):
        raise QueryError("dimensions", "must not repeat a dimension")
    if sum(d in TIME_DIMENSIONS for d in dimensions) > 1:
        raise QueryError("dimensions", "may hold one time dimension")
    raw_filters = body.get("filters", [])
    if not isinstance(raw_filters, list):
        raise QueryError("filters", "must be a list")
    filters = tuple(_filter(f, f"filters[{i}]") for i, f in enumerate(raw_filters))
    order_by = _order_by(body.get("order_by"), metrics, dimensions)
    limit, offset = _pagination(body.get("pagination"))
    comparison, labels, total_rows = _include(body.get("include"))
    query = Query(website_id=website_id, timezone=timezone, metrics=metrics, period=period,
                  dimensions=dimensions, filters=filters, order_by=order_by, limit=limit,
                  offset=offset, comparison=comparison, time_labels=labels,
                  total_rows=total_rows)
    check_metrics(query)
    hours = (period.end - period.start).total_seconds() / 3600
    if "time:hour" in dimensions and hours > MAX_HOURS:
        raise QueryError("dimensions", "time:hour covers at most 93 days; use time:day")
    echo = {key: body[key] for key in TOP_LEVEL if key in body}
    echo["date_range"] = period.iso()
    return Query(**{**query.__dict__, "echo": echo})


def check_metrics(query: Query) -> None:
    """Refuse metric and dimension combinations the engine cannot answer truthfully."""
    event_dimensions = [d for d in query.dimensions if kind_of(d) == "event"]
    session = [m for m in query.metrics if m in SESSION_METRICS]
    if event_dimensions and session:
        raise QueryError("metrics", f"{', '.join(session)} cannot be broken down by event "
                         f"dimension {event_dimensions[0]} (it describes visits, not events)")
    if "conversion_rate" in query.metrics:
        goal_filter = any(f.dimension == "event:goal" for tree in query.filters
                          for f in leaves(tree))
        if "event:goal" not in query.dimensions and not goal_filter:
            raise QueryError("metrics", "conversion_rate needs an event:goal dimension or "
                             "filter")
    if "percentage" in query.metrics and not any(
            kind_of(d) != "time" for d in query.dimensions):
        raise QueryError("metrics", "percentage needs a non-time dimension")
