"""Daily rollups: per website, local day, dimension and value, the sums the reports need.

A background task (``build_pending``, off the request path and off the loop) builds each day
once it is closed (an hour after its local midnight, so visits running across midnight are
complete); the engine reads rollups for built days and raw visits/events for the rest (today),
and merges the two. Visitors of several days are the sum of each day's distinct visitors: exact
with Pulse's daily visitor ids; where ids persist (a tracker that sends its own), a query over
several days falls back to raw rows, which are exact.

Per-page rollups (``page_rollup``) answer the reports filtered by one page: per day, page and
value of a visit dimension, the visits with an event on that page; per page and custom event
name, the page's custom events. Entry and exit pages are left out (a page × page table would
hold more rows than it saves reading): those two reports filtered by a page read raw rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from models.db import database, delete_in_batches
from models.entities import PageRollup, Rollup, RollupProgress, Website
from models.stats.periods import midnight
from models.stats.query import VISIT_DIMENSIONS

log = logging.getLogger("pulse.rollups")

EPOCH = date(1970, 1, 1)
CLOSE_AFTER = timedelta(hours=1)  # a day is rolled up this long after its end
TOTALS = ""
ROLLUP_DIMENSIONS = (TOTALS, *VISIT_DIMENSIONS, "event:page", "event:goal")
COLUMNS = ("visitors", "visits", "pageviews", "events", "bounces", "duration",
           "visit_pageviews", "persistent")
PAGE_DIMENSIONS = (*(d for d in VISIT_DIMENSIONS
                     if d not in ("visit:entry_page", "visit:exit_page")), "event:goal")
DAILY_ID = "h-%"  # Pulse's own visitor ids (one per visitor and UTC day) look like h-…


def day_number(day: date) -> int:
    """Days since 1970-01-01."""
    return (day - EPOCH).days


def day_of(number: int) -> date:
    """The date of a day number."""
    return EPOCH + timedelta(days=number)


_ROLLUP_COLUMNS = ("website_id", "day", "dimension", "value", *COLUMNS)
_PAGE_COLUMNS = ("website_id", "day", "page", "dimension", "value", *COLUMNS)
_TABLES = {"rollup": _ROLLUP_COLUMNS, "page_rollup": _PAGE_COLUMNS}
PAGE_DELETE_BATCH = 2_000  # per-page rollup rows per transaction when a time zone changes
_INSERT_ROWS = 200  # rows per multi-row INSERT (13 columns: far below variable limits)

Statement = tuple[str, str, list[Any]]  # (table, a SELECT of its rows, parameters)


def _visit_statements(website_id: str, day: int, start: int, end: int) -> Iterator[Statement]:
    mark = database.obj.param
    for dimension in (TOTALS, *VISIT_DIMENSIONS):
        column = f"v.{VISIT_DIMENSIONS[dimension]}" if dimension else "''"
        sql = (f"SELECT {mark}, {mark}, {mark}, "
               f"{column}, COUNT(DISTINCT v.visitor_id), COUNT(*), SUM(v.pageviews), "
               "SUM(v.events), SUM(v.bounce), SUM(v.duration), SUM(v.pageviews), "
               f"COUNT(DISTINCT CASE WHEN v.visitor_id NOT LIKE {mark} THEN v.visitor_id END) "
               f'FROM "visit" v WHERE v.website_id = {mark} AND v.start_ts >= {mark} '
               f"AND v.start_ts < {mark}")
        sql += f" GROUP BY {column}" if dimension else " HAVING COUNT(*) > 0"
        yield "rollup", sql, [website_id, day, dimension, DAILY_ID, website_id, start, end]


def _event_statements(website_id: str, day: int, start: int, end: int) -> Iterator[Statement]:
    mark = database.obj.param
    for dimension, column, condition in (
            ("event:page", "pathname", "e.event_type <> 'engagement'"),
            ("event:goal", "event_type",
             "e.event_type <> 'engagement' AND e.event_type <> 'pageview'")):
        matching = (f'FROM "event" e WHERE e.website_id = {mark} AND e.ts >= {mark} '
                    f"AND e.ts < {mark} AND {condition}")
        sql = (f"SELECT {mark}, {mark}, {mark}, "
               "a.k, a.visitors, a.visits, a.pageviews, a.events, "
               "COALESCE(b.bounces, 0), COALESCE(b.duration, 0), COALESCE(b.vp, 0), "
               "a.persistent FROM ("
               f"SELECT e.{column} AS k, COUNT(DISTINCT e.visitor_id) AS visitors, "
               "COUNT(DISTINCT e.visit_id) AS visits, "
               "SUM(CASE WHEN e.event_type = 'pageview' THEN 1 ELSE 0 END) AS pageviews, "
               "COUNT(*) AS events, COUNT(DISTINCT CASE WHEN e.visitor_id NOT LIKE "
               f"{mark} THEN e.visitor_id END) AS persistent {matching} GROUP BY e.{column}"
               ") a LEFT JOIN ("
               "SELECT p.k AS k, SUM(v.bounce) AS bounces, SUM(v.duration) AS duration, "
               f"SUM(v.pageviews) AS vp FROM (SELECT DISTINCT e.{column} AS k, e.visit_id "
               f'AS visit_id {matching}) p JOIN "visit" v ON v.id = p.visit_id GROUP BY p.k'
               ") b ON b.k = a.k")
        yield "rollup", sql, [website_id, day, dimension, DAILY_ID, website_id, start, end,
                              website_id, start, end]


def _page_statements(website_id: str, day: int, start: int, end: int) -> Iterator[Statement]:
    mark = database.obj.param
    persistent = (f"COUNT(DISTINCT CASE WHEN {{0}}.visitor_id NOT LIKE {mark} "
                  "THEN {0}.visitor_id END)")
    # Per visit and page: its events on that page that day (engagement aside).
    matching = (f'FROM "event" e WHERE e.website_id = {mark} AND e.ts >= {mark} '
                f"AND e.ts < {mark} AND e.event_type <> 'engagement'")
    per_visit = ("SELECT e.pathname AS page, e.visit_id AS visit_id, COUNT(*) AS events, "
                 "SUM(CASE WHEN e.event_type = 'pageview' THEN 1 ELSE 0 END) AS pageviews "
                 f"{matching} GROUP BY e.pathname, e.visit_id")
    for dimension in PAGE_DIMENSIONS:
        if dimension == "event:goal":
            sql = (f"SELECT {mark}, {mark}, e.pathname, {mark}, e.event_type, "
                   "COUNT(DISTINCT e.visitor_id), COUNT(DISTINCT e.visit_id), 0, COUNT(*), "
                   "0, 0, 0, " + persistent.format("e")
                   + f" {matching} AND e.event_type <> 'pageview' "
                   "GROUP BY e.pathname, e.event_type")
        else:
            column = f"v.{VISIT_DIMENSIONS[dimension]}"
            sql = (f"SELECT {mark}, {mark}, m.page, {mark}, {column}, "
                   "COUNT(DISTINCT v.visitor_id), COUNT(*), SUM(m.pageviews), SUM(m.events), "
                   "SUM(v.bounce), SUM(v.duration), SUM(v.pageviews), "
                   + persistent.format("v")
                   + f' FROM ({per_visit}) m JOIN "visit" v ON v.id = m.visit_id '
                   f"GROUP BY m.page, {column}")
        yield "page_rollup", sql, [website_id, day, dimension, DAILY_ID, website_id, start,
                                   end]


def _insert_rows(table: str, rows: list[tuple[Any, ...]]) -> None:
    columns = _TABLES[table]
    row_marks = "(" + ", ".join([database.obj.param] * len(columns)) + ")"
    for first in range(0, len(rows), _INSERT_ROWS):
        chunk = rows[first:first + _INSERT_ROWS]
        database.obj.execute_sql(
            f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES '
            + ", ".join([row_marks] * len(chunk)), [v for row in chunk for v in row])


def build_day(website_id: str, day: int, zone: ZoneInfo) -> None:
    """(Re)build one website's rollups of one local day.

    Each report is read first, with no lock held, then written in a short transaction of its
    own: on SQLite the writer's batches wait for the write lock only as long as the inserts take
    (a whole day in one transaction held it for seconds at 10 M events). The engine reads a
    website's rollups only for the days before ``built_until``, which moves once the day is
    complete, so nobody sees a day half built; one left half built (a crash) starts again with
    the delete."""
    start = int(midnight(day_of(day), zone).timestamp() * 1000)
    end = int(midnight(day_of(day + 1), zone).timestamp() * 1000)
    with database.atomic():
        Rollup.delete().where((Rollup.website == website_id) & (Rollup.day == day)).execute()
        PageRollup.delete().where((PageRollup.website == website_id)
                                  & (PageRollup.day == day)).execute()
    for table, sql, params in (*_visit_statements(website_id, day, start, end),
                               *_event_statements(website_id, day, start, end),
                               *_page_statements(website_id, day, start, end)):
        rows = [tuple(row) for row in database.obj.execute_sql(sql, params).fetchall()]
        if rows:
            with database.atomic():
                _insert_rows(table, rows)


def _first_day(website_id: str, zone: ZoneInfo) -> int | None:
    mark = database.obj.param
    row = database.obj.execute_sql(
        f'SELECT MIN(start_ts) FROM "visit" WHERE website_id = {mark}', [website_id]).fetchone()
    if not row or row[0] is None:
        return None
    return day_number(datetime.fromtimestamp(int(row[0]) / 1000, zone).date())


def build_pending(now: datetime, max_days: int = 31) -> int:
    """Build the closed days not built yet (at most ``max_days`` per website per call, oldest
    first); return how many days were built. Blocking: run it in a thread."""
    built = 0
    for website in list(Website.select()):
        zone = ZoneInfo(website.timezone or "UTC")
        progress = RollupProgress.get_or_none(RollupProgress.website == website.id)
        if progress is not None and progress.timezone != website.timezone:
            with database.atomic():  # days moved: start again in the new zone
                Rollup.delete().where(Rollup.website == website.id).execute()
                progress.delete_instance()
            # Unread now (no progress): the many per-page rows go in short transactions.
            delete_in_batches(PageRollup, PageRollup.website == website.id, PageRollup.day,
                              PAGE_DELETE_BATCH, 0.002, key=PageRollup.id)
            progress = None
        local_now = now.astimezone(zone)
        closed = day_number((local_now - CLOSE_AFTER).date())  # days before it are closed
        start = progress.built_until if progress is not None else _first_day(website.id, zone)
        if start is None:
            continue
        until = min(closed, start + max_days)
        for day in range(start, until):
            build_day(website.id, day, zone)
            built += 1
        if until > start or progress is None:
            with database.atomic():
                RollupProgress.delete().where(RollupProgress.website == website.id).execute()
                RollupProgress.insert(website=website.id, timezone=website.timezone,
                                      built_until=max(until, start)).execute()
    return built


def built_until(website_id: str, timezone: str) -> int | None:
    """The first day whose rollups are not built (None: nothing built, or another zone)."""
    progress = RollupProgress.get_or_none(RollupProgress.website == website_id)
    if progress is None or progress.timezone != timezone:
        return None
    return int(progress.built_until)
