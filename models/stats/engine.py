"""The SQL builder and runner of ``Query``: aggregates in SQL (never raw rows in Python), the
same statements on SQLite and PostgreSQL. Synchronous: callers run it off the event loop.

Three shapes, chosen from what the query is about:
- visit dimensions and filters only: ``visit`` rows started in the range;
- plus event filters (event:page …): visits with a matching event in the range, joined to the
  per-visit count of the matching events (pageviews and events count those events only);
- event dimensions (event:page, event:goal, event:props:…): matching ``event`` rows joined to
  their visit; session metrics (bounce rate, duration, views per visit) are refused then.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import peewee

from models.db import database
from models.stats.periods import (
    bucket_label,
    bucket_sql,
    days_range,
    local_ms_sql,
    time_labels,
)
from models.stats.query import (
    EVENT_DIMENSIONS,
    MAX_LIMIT,
    PROPS_PREFIX,
    TIME_DIMENSIONS,
    VISIT_DIMENSIONS,
    Filter,
    FilterTree,
    Logical,
    Query,
    leaves,
    parse_query,
)
from models.stats.rollups import (
    PAGE_DIMENSIONS,
    ROLLUP_DIMENSIONS,
    TOTALS,
    built_until,
    day_number,
    day_of,
)

_NEEDS = {
    "visitors": ("visitors",), "visits": ("visits",), "pageviews": ("pageviews",),
    "events": ("events",), "views_per_visit": ("visit_pageviews", "visits"),
    "bounce_rate": ("bounces", "visits"), "visit_duration": ("duration", "visits"),
    "percentage": ("visitors",), "conversion_rate": ("visitors",),
}
_POINT_METRICS = frozenset({"bounce_rate", "conversion_rate", "percentage"})
_SESSION_METRICS = frozenset({"bounce_rate", "visit_duration", "views_per_visit"})
NONE = "(none)"


def _dialect() -> str:
    return "sqlite" if isinstance(database.obj, peewee.SqliteDatabase) else "postgres"


def _grain(query: Query, dimension: str) -> str:
    return dimension.split(":", 1)[1] if ":" in dimension else query.period.default_grain()


class _Statement:
    """One SELECT being built: its SQL pieces and its parameters, in order."""

    def __init__(self, query: Query, dialect: str) -> None:
        self.query = query
        self.dialect = dialect
        self.params: list[Any] = []
        self.marker = database.obj.param

    def param(self, value: Any) -> str:
        """A placeholder for ``value``."""
        self.params.append(value)
        return self.marker

    def props(self, alias: str, name: str) -> str:
        """A custom property of an event as text, '(none)' when absent."""
        if self.dialect == "postgres":
            return f"COALESCE(({alias}.props::jsonb ->> {self.param(name)}), '{NONE}')"
        path = self.param(f'$."{name}"')
        return f"COALESCE(CAST(json_extract({alias}.props, {path}) AS TEXT), '{NONE}')"

    value_column = ""  # set for rollups: every filtered dimension is that column

    def column(self, dimension: str, visit: str, event: str) -> str:
        """The SQL expression of a (non-time) dimension."""
        if self.value_column:
            return self.value_column
        if dimension in VISIT_DIMENSIONS:
            return f"{visit}.{VISIT_DIMENSIONS[dimension]}"
        if dimension in EVENT_DIMENSIONS:
            return f"{event}.{EVENT_DIMENSIONS[dimension]}"
        return self.props(event, dimension[len(PROPS_PREFIX):])

    def condition(self, tree: FilterTree, visit: str, event: str) -> str:
        """SQL for a filter tree."""
        if isinstance(tree, Logical):
            parts = [self.condition(child, visit, event) for child in tree.children]
            if tree.operator == "not":
                return f"NOT ({parts[0]})"
            return "(" + f" {tree.operator.upper()} ".join(parts) + ")"
        column = self.column(tree.dimension, visit, event)
        if tree.operator in ("is", "is_not"):
            marks = ", ".join(self.param(v) for v in tree.values)
            return f"({column} {'NOT ' if tree.operator == 'is_not' else ''}IN ({marks}))"
        likes = " OR ".join(
            f"LOWER({column}) LIKE {self.param('%' + _escape_like(v.lower()) + '%')} "
            "ESCAPE '\\'" for v in tree.values)
        return f"NOT ({likes})" if tree.operator == "contains_not" else f"({likes})"

    def time(self, dimension: str, column: str) -> str:
        """SQL for a time bucket of ``column`` (UTC ms) in the website's zone."""
        period = self.query.period
        local = local_ms_sql(column, self.query.zone, period.start_ms, period.end_ms)
        return bucket_sql(_grain(self.query, dimension), local, self.dialect)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _shape(query: Query) -> str:
    if "event" in query.dimension_kinds():
        return "events"
    if "event" in query.filter_kinds():
        return "visits_by_events"
    return "visits"


def _aggregates(shape: str) -> dict[str, str]:
    if shape == "events":
        return {
            "visitors": "COUNT(DISTINCT e.visitor_id)", "visits": "COUNT(DISTINCT e.visit_id)",
            "pageviews": "SUM(CASE WHEN e.event_type = 'pageview' THEN 1 ELSE 0 END)",
            "events": "COUNT(*)",
        }
    counted = "m" if shape == "visits_by_events" else "v"
    return {
        "visitors": "COUNT(DISTINCT v.visitor_id)", "visits": "COUNT(*)",
        "pageviews": f"SUM({counted}.pageviews)", "events": f"SUM({counted}.events)",
        "bounces": "SUM(v.bounce)", "duration": "SUM(v.duration)",
        "visit_pageviews": "SUM(v.pageviews)",
    }


def _pages_only(query: Query, wanted: list[str]) -> bool:
    """Whether every filter is on event:page and no metric counts the matching events."""
    return (all(leaf.dimension == "event:page" for tree in query.filters
                for leaf in leaves(tree))
            and not {"pageviews", "events"} & set(wanted))


def _order_sql(metric: str, aggregates: dict[str, str]) -> str:
    if metric == "bounce_rate":
        return f"(1.0 * {aggregates['bounces']} / {aggregates['visits']})"
    if metric == "visit_duration":
        return f"(1.0 * {aggregates['duration']} / {aggregates['visits']})"
    if metric == "views_per_visit":
        return f"(1.0 * {aggregates['visit_pageviews']} / {aggregates['visits']})"
    return aggregates[_NEEDS[metric][0]]


def _select(query: Query, *, count_rows: bool = False,
            with_total: bool = False) -> tuple[str, list[Any], list[str]]:
    """The grouped SELECT of ``query``: (sql, params, aggregate names in column order);
    ``with_total``: each row also carries the number of rows before the page was cut, last."""
    shape = _shape(query)
    st = _Statement(query, _dialect())
    aggregates = _aggregates(shape)
    wanted = list(dict.fromkeys(a for m in query.metrics for a in _NEEDS[m]))
    period = query.period
    visit_alias, ts_column = ("v", "e.ts") if shape == "events" else ("v", "v.start_ts")
    dimension_sql = [st.time(d, ts_column) if d in TIME_DIMENSIONS
                     else st.column(d, visit_alias, "e") for d in query.dimensions]
    columns = [f"{sql} AS d{i}" for i, sql in enumerate(dimension_sql)]
    columns += [f"{aggregates[name]} AS a_{name}" for name in wanted]
    if with_total:
        columns.append("COUNT(*) OVER () AS total_rows")
    where: list[str] = []
    if shape == "events":
        source = 'FROM "event" e LEFT JOIN "visit" v ON v.id = e.visit_id'
        where += [f"e.website_id = {st.param(query.website_id)}",
                  f"e.ts >= {st.param(period.start_ms)}", f"e.ts < {st.param(period.end_ms)}",
                  "e.event_type <> 'engagement'"]
        if "event:goal" in query.dimensions:
            where.append("e.event_type <> 'pageview'")
        where += [st.condition(tree, "v", "e") for tree in query.filters]
    elif shape == "visits_by_events" and _pages_only(query, wanted):
        # Visits with a view of the page(s): the page index alone holds what this needs (an
        # engagement event is sent from a page its visit viewed, so it changes no visit).
        matching = [f"e.website_id = {st.param(query.website_id)}",
                    f"e.ts >= {st.param(period.start_ms)}", f"e.ts < {st.param(period.end_ms)}"]
        matching += [st.condition(tree, "ev", "e") for tree in query.filters]
        source = ('FROM "visit" v WHERE v.id IN (SELECT e.visit_id FROM "event" e WHERE '
                  + " AND ".join(matching) + ")")
    elif shape == "visits_by_events":
        matching = [f"e.website_id = {st.param(query.website_id)}",
                    f"e.ts >= {st.param(period.start_ms)}", f"e.ts < {st.param(period.end_ms)}",
                    "e.event_type <> 'engagement'"]
        matching += [st.condition(tree, "ev", "e") for tree in query.filters]
        join = ('JOIN "visit" ev ON ev.id = e.visit_id ' if "visit" in query.filter_kinds()
                else "")
        source = (
            'FROM "visit" v JOIN (SELECT e.visit_id AS visit_id, COUNT(*) AS events, '
            "SUM(CASE WHEN e.event_type = 'pageview' THEN 1 ELSE 0 END) AS pageviews "
            f'FROM "event" e {join}WHERE '
            + " AND ".join(matching) + " GROUP BY e.visit_id) m ON m.visit_id = v.id")
    else:
        source = 'FROM "visit" v'
        where += [f"v.website_id = {st.param(query.website_id)}",
                  f"v.start_ts >= {st.param(period.start_ms)}",
                  f"v.start_ts < {st.param(period.end_ms)}"]
        where += [st.condition(tree, "v", "e") for tree in query.filters]
    sql = f"SELECT {', '.join(columns)} {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if query.dimensions:
        sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(query.dimensions)))
    if count_rows:
        return f"SELECT COUNT(*) FROM ({sql}) t", st.params, wanted
    order: list[str] = []
    for name, direction in query.order_by:
        if name in query.dimensions:
            order.append(f"{query.dimensions.index(name) + 1} {direction.upper()}")
        else:
            order.append(f"{_order_sql(name, aggregates)} {direction.upper()}")
    if not query.order_by:
        time_positions = [i for i, d in enumerate(query.dimensions) if d in TIME_DIMENSIONS]
        order += [f"{i + 1} ASC" for i in time_positions]
        order.append(f"{_order_sql(query.metrics[0], aggregates)} DESC")
    order += [f"{i + 1} ASC" for i in range(len(query.dimensions))]
    sql += " ORDER BY " + ", ".join(order)
    sql += f" LIMIT {st.param(query.limit)} OFFSET {st.param(query.offset)}"
    return sql, st.params, wanted


def _metric(name: str, agg: dict[str, Any], total: int | None, base: int | None) -> Any:
    visits = agg.get("visits") or 0
    if name == "views_per_visit":
        return round(agg["visit_pageviews"] / visits, 2) if visits else 0.0
    if name == "bounce_rate":
        return round(100 * agg["bounces"] / visits) if visits else 0
    if name == "visit_duration":
        return round(agg["duration"] / visits / 1000) if visits else 0
    if name == "percentage":
        return round(100 * agg["visitors"] / total, 1) if total else 0.0
    if name == "conversion_rate":
        return round(100 * agg["visitors"] / base, 2) if base else 0.0
    return agg[name]


def _visitors_total(query: Query) -> int:
    total = dataclasses.replace(query, metrics=("visitors",), dimensions=(), order_by=(),
                                limit=1, offset=0)
    rows = _fetch(total)
    return int(rows[0][1]["visitors"]) if rows else 0


def _without_goals(query: Query) -> Query:
    filters = tuple(tree for tree in query.filters
                    if not (isinstance(tree, Filter) and tree.dimension == "event:goal"))
    dimensions = tuple(d for d in query.dimensions if d != "event:goal")
    return dataclasses.replace(query, filters=filters, dimensions=dimensions)


Rows = list[tuple[list[Any], dict[str, Any]]]


def _fetch(query: Query, rows: Rows | None = None, totals: list[int] | None = None) -> Rows:
    """(dimension values, aggregates) per result row, ordered and paginated: from rollups
    (plus raw rows for the days not rolled up yet) where they can answer, else raw. ``rows``:
    the rollup rows of ``query`` when the caller already has them; ``totals``: where a raw
    query also gives the number of rows before the page was cut, it is appended there."""
    if rows is None:
        rows = _from_rollups(query)
    if rows is not None:
        return _order(query, rows)[query.offset:query.offset + query.limit]
    return _fetch_raw(query, totals)


def _fetch_raw(query: Query, totals: list[int] | None = None) -> Rows:
    """(dimension values, aggregates) per result row, from raw visits and events."""
    sql, params, wanted = _select(query, with_total=totals is not None)
    count = len(query.dimensions)
    rows: list[tuple[list[Any], dict[str, Any]]] = []
    for raw in database.obj.execute_sql(sql, params).fetchall():
        if totals is not None:
            if not totals:
                totals.append(int(raw[-1]))
            raw = raw[:-1]
        dims = []
        for dimension, value in zip(query.dimensions, raw[:count], strict=True):
            if dimension in TIME_DIMENSIONS:
                dims.append(bucket_label(_grain(query, dimension), value))
            else:
                dims.append(NONE if value is None else value)
        aggregates = {name: int(value or 0) for name, value in zip(wanted, raw[count:],
                                                                   strict=True)}
        rows.append((dims, aggregates))
    return rows


def _one_page(tree: FilterTree) -> str | None:
    """The page of an ``event:page is P`` filter (one value), else None."""
    if (isinstance(tree, Filter) and tree.dimension == "event:page" and tree.operator == "is"
            and len(tree.values) == 1):
        return str(tree.values[0])
    return None


@dataclasses.dataclass(frozen=True)
class _Source:
    """The rollups that answer a query: the table, the dimension of its rows, the page (per-page
    rollups) and the filters left to apply to the rows' values."""

    table: str
    dimension: str
    page: str | None
    filters: tuple[FilterTree, ...]


def _rollup_source(query: Query) -> _Source | None:
    """The rollups that answer ``query`` exactly, or None."""
    if not query.rollups or query.period.first_day is None:
        return None
    plain = [d for d in query.dimensions if d not in TIME_DIMENSIONS]
    times = [d for d in query.dimensions if d in TIME_DIMENSIONS]
    if len(plain) > 1 or (times and _grain(query, times[0]) == "hour"):
        return None
    table, page, filters = "rollup", None, query.filters
    pages = [tree for tree in filters if _one_page(tree) is not None]
    if pages and plain != ["event:page"] and (plain or len(filters) > 1):
        # Filtered by one page, reported by something else: the per-page rollups.
        table, page = "page_rollup", _one_page(pages[0])
        filters = tuple(tree for tree in filters if tree is not pages[0])
    filtered = {leaf.dimension for tree in filters for leaf in leaves(tree)}
    if len(filtered) > 1:
        return None
    dimension = plain[0] if plain else next(iter(filtered), TOTALS)
    known = PAGE_DIMENSIONS if page is not None else ROLLUP_DIMENSIONS
    if dimension not in known or (filtered and filtered != {dimension}):
        return None
    if page is not None and dimension == "event:goal" and _SESSION_METRICS & set(query.metrics):
        return None  # the per-page goal rows count events, not the visits' bounces or time
    if filtered and not plain:  # one visitor, one row of the day: only `is` one value
        [tree] = filters if len(filters) == 1 else [None]
        if not (isinstance(tree, Filter) and tree.operator == "is" and len(tree.values) == 1):
            return None
    return _Source(table, dimension, page, filters)


def _from_rollups(query: Query) -> Rows | None:
    """All rows of ``query`` (unordered) from rollups and today's raw rows, or None."""
    source = _rollup_source(query)
    if source is None:
        return None
    period = query.period
    assert period.first_day is not None and period.last_day is not None
    until = built_until(query.website_id, query.timezone)
    first, last = day_number(period.first_day), day_number(period.last_day)
    if until is None or until <= first:
        return None
    wanted = list(dict.fromkeys(a for m in query.metrics for a in _NEEDS[m]))
    st = _Statement(query, _dialect())
    keys = []
    for d in query.dimensions:
        if d in TIME_DIMENSIONS:
            keys.append(bucket_sql(_grain(query, d), "(CAST(r.day AS BIGINT) * 86400000)",
                                   st.dialect))
        else:
            keys.append("r.value")
    columns = [*wanted, "persistent"]
    select = [f"{k} AS k{i}" for i, k in enumerate(keys)]
    select += [f"SUM(r.{c}) AS s_{c}" for c in columns]
    sql = (f'SELECT {", ".join(select)} FROM "{source.table}" r WHERE '
           f"r.website_id = {st.param(query.website_id)} ")
    if source.page is not None:
        sql += f"AND r.page = {st.param(source.page)} "
    sql += (f"AND r.dimension = {st.param(source.dimension)} "
            f"AND r.day >= {st.param(first)} AND r.day <= {st.param(min(last, until - 1))}")
    st.value_column = "r.value"
    for tree in source.filters:
        sql += " AND " + st.condition(tree, "r", "r")
    if keys:
        sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(keys)))
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    labels: dict[tuple[Any, ...], list[Any]] = {}
    persistent = 0
    for raw in database.obj.execute_sql(sql, st.params).fetchall():
        dims = [bucket_label(_grain(query, d), value) if d in TIME_DIMENSIONS else value
                for d, value in zip(query.dimensions, raw[:len(keys)], strict=True)]
        sums = {c: int(v or 0) for c, v in zip(columns, raw[len(keys):], strict=True)}
        persistent += sums.pop("persistent")
        merged[tuple(dims)] = sums
        labels[tuple(dims)] = dims
    many_days = last > first and not any(
        d in TIME_DIMENSIONS and _grain(query, d) == "day" for d in query.dimensions)
    if persistent and many_days and "visitors" in wanted:
        return None  # ids that persist across days: only raw rows count them exactly
    if last >= until:  # today (and any day not rolled up yet), from raw rows
        rest = dataclasses.replace(query, period=days_range(
            day_of(max(first, until)), period.last_day, query.zone), limit=MAX_LIMIT,
            offset=0, order_by=(), rollups=False)
        for dims, sums in _fetch_raw(rest):
            key = tuple(dims)
            if key in merged:
                for name, value in sums.items():
                    merged[key][name] += value
            else:
                merged[key] = sums
                labels[key] = dims
    if not query.dimensions and not merged:
        merged[()] = {name: 0 for name in wanted}
        labels[()] = []
    return [(labels[key], sums) for key, sums in merged.items()]


def _order(query: Query, rows: Rows) -> Rows:
    """Rows in the order SQL would give them (see _select's ORDER BY)."""
    def metric(name: str) -> Any:
        def value(row: tuple[list[Any], dict[str, Any]]) -> Any:
            return _metric(name, row[1], 1, 1) if name not in ("percentage",
                                                               "conversion_rate") \
                else row[1]["visitors"]
        return value

    def dimension(index: int) -> Any:
        return lambda row: row[0][index]

    keys: list[tuple[Any, bool]] = []
    for name, direction in query.order_by:
        key = (dimension(query.dimensions.index(name)) if name in query.dimensions
               else metric(name))
        keys.append((key, direction == "desc"))
    if not query.order_by:
        keys += [(dimension(i), False) for i, d in enumerate(query.dimensions)
                 if d in TIME_DIMENSIONS]
        keys.append((metric(query.metrics[0]), True))
    keys += [(dimension(i), False) for i in range(len(query.dimensions))]
    ordered = list(rows)
    for key, descending in reversed(keys):
        ordered.sort(key=key, reverse=descending)
    return ordered


def _count_rows(query: Query, rows: Rows | None) -> int:
    if rows is not None:
        return len(rows)
    sql, params, _ = _select(query, count_rows=True)
    return int(database.obj.execute_sql(sql, params).fetchone()[0])


def _results(query: Query, all_rows: Rows | None = None,
             totals: list[int] | None = None) -> list[dict[str, Any]]:
    rows = _fetch(query, all_rows, totals)
    total = _visitors_total(query) if "percentage" in query.metrics else None
    base = (_visitors_total(_without_goals(query)) if "conversion_rate" in query.metrics
            else None)
    return [{"metrics": [_metric(m, agg, total, base) for m in query.metrics],
             "dimensions": dims} for dims, agg in rows]


def _change(metric: str, now: Any, before: Any, *, has_visits: bool) -> Any:
    """Percent change, or points for rates; None where the comparison period had nothing."""
    if metric in _POINT_METRICS:
        return round(now - before, 2) if has_visits else None
    if not before:
        return 0 if not now else None
    return round(100 * (now - before) / before)


def _comparison_query(query: Query) -> Query:
    period = (query.period.previous_period() if query.comparison == "previous_period"
              else query.period.year_before())
    return dataclasses.replace(query, period=period, limit=MAX_LIMIT, offset=0, order_by=(),
                               comparison="", time_labels=False, total_rows=False)


def _add_comparison(query: Query, results: list[dict[str, Any]]) -> dict[str, Any]:
    other = _comparison_query(query)
    filters = list(other.filters)
    for i, dimension in enumerate(query.dimensions):
        if dimension not in TIME_DIMENSIONS and results:
            values = sorted({str(r["dimensions"][i]) for r in results})[:100]
            filters.append(Filter("is", dimension, tuple(values)))
    other = dataclasses.replace(other, filters=tuple(filters))
    compared = _results(other)
    time_index = [i for i, d in enumerate(query.dimensions) if d in TIME_DIMENSIONS]

    def key(row: dict[str, Any], labels: list[str]) -> tuple[Any, ...]:
        dims = list(row["dimensions"])
        for i in time_index:
            dims[i] = labels.index(dims[i]) if dims[i] in labels else dims[i]
        return tuple(dims)

    labels_now = labels_before = []
    if time_index:
        grain = _grain(query, query.dimensions[time_index[0]])
        labels_now = time_labels(grain, query.period)
        labels_before = time_labels(grain, other.period)
    by_key = {key(row, labels_before): row for row in compared}
    zero = [0] * len(query.metrics)
    for row in results:
        match = by_key.get(key(row, labels_now))
        before = match["metrics"] if match else zero
        row["comparison"] = {
            "dimensions": match["dimensions"] if match else row["dimensions"],
            "metrics": before,
            "change": [_change(m, now, then, has_visits=match is not None and any(before))
                       for m, now, then in zip(query.metrics, row["metrics"], before,
                                               strict=True)],
        }
    return {"comparison_date_range": other.period.iso()}


def run_query(query: Query) -> dict[str, Any]:
    """Answer ``query``: ``{"results": [...], "meta": {...}, "query": {...}}``."""
    all_rows = _from_rollups(query)
    # Raw rows: the page and the number of rows in one statement (none on an empty page).
    totals: list[int] | None = [] if query.total_rows and all_rows is None else None
    results = _results(query, all_rows, totals)
    meta: dict[str, Any] = {}
    if query.comparison:
        meta.update(_add_comparison(query, results))
    if query.time_labels:
        time_dims = [d for d in query.dimensions if d in TIME_DIMENSIONS]
        grain = _grain(query, time_dims[0]) if time_dims else query.period.default_grain()
        meta["time_labels"] = time_labels(grain, query.period)
    if query.total_rows:
        meta["total_rows"] = totals[0] if totals else _count_rows(query, all_rows)
    echo = dict(query.echo) or {"metrics": list(query.metrics),
                                "date_range": query.period.iso(),
                                "dimensions": list(query.dimensions)}
    return {"results": results, "meta": meta, "query": echo}


def first_visit_day(website_id: str, zone: ZoneInfo) -> date | None:
    """The day (in ``zone``) of the website's first visit, or None (for the ``all`` range)."""
    sql = f'SELECT MIN(start_ts) FROM "visit" WHERE website_id = {database.obj.param}'
    row = database.obj.execute_sql(sql, [website_id]).fetchone()
    if not row or row[0] is None:
        return None
    return datetime.fromtimestamp(int(row[0]) / 1000, zone).date()


def answer(body: Any, website_id: str, timezone: str) -> dict[str, Any]:
    """Parse a Stats API body for a resolved website and run it (blocking: off the loop)."""
    zone = ZoneInfo(timezone)
    query = parse_query(body, website_id, timezone, now=datetime.now(zone),
                        first_visit=first_visit_day(website_id, zone))
    return run_query(query)
