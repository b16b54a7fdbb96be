"""B8 — reports over a long history: every query the default 30-day dashboard view makes, warm,
answered through the query engine (daily rollups + today's raw rows), against the same reports
from raw rows in the same run (the engine without rollups, and plain GROUP BYs over the raw
events table). Also the same view with a page filter.

The generator writes history straight into the store: visits and their events over N days
(90 by default) ending now, 500 pages, 50 sources, 30 countries, custom events with
properties, daily visitor ids (h-…) as Pulse makes them; then the background job's
``build_pending`` builds the rollups. ``--events 10000000`` is the issue's size; ``--db`` keeps
the generated database for later runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine_facts, median, report  # noqa: E402
from models import setup_database  # noqa: E402
from models.db import database  # noqa: E402
from models.entities import Website  # noqa: E402
from models.stats import parse_query, run_query  # noqa: E402
from models.stats.rollups import build_pending  # noqa: E402
from ui.components.dashboard_state import DashboardState, view_bodies  # noqa: E402

DAY_MS = 86_400_000
WEBSITE = "b8-website"
ZONE = "Europe/Berlin"
EVENT_COLUMNS = ("website_id", "ts", "event_type", "pathname", "visitor_id", "session_id",
                 "referrer", "source", "hostname", "title", "screen_width", "device", "browser",
                 "os", "country", "props", "visit_id", "interactive", "seq")
VISIT_COLUMNS = ("id", "website_id", "visitor_id", "start_ts", "end_ts", "end_day", "entry_page",
                 "exit_page", "pageviews", "events", "interactions", "bounce", "duration",
                 "source", "referrer", "channel", "utm_source", "utm_medium", "utm_campaign",
                 "utm_term", "utm_content", "country", "device", "browser", "os")


def generate(events_wanted: int, days: int, seed: int) -> tuple[int, int]:
    """Write about ``events_wanted`` events in visits of ~5 events over ``days`` days."""
    rng = random.Random(seed)
    db = database.obj
    pages = [f"/page/{i}" for i in range(500)]
    page_weights = [1 / (i + 1) for i in range(500)]
    sources = ["direct", "google", "bing", "twitter", "facebook"] + [
        f"site{i}.example" for i in range(45)]
    source_weights = [30, 25, 5, 6, 4] + [1] * 45
    countries = [f"{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(30)]
    devices = [("desktop", "Chrome", "Windows"), ("desktop", "Firefox", "Linux"),
               ("mobile", "Mobile Safari", "iOS"), ("mobile", "Chrome Mobile", "Android"),
               ("tablet", "Safari", "iOS")]
    now = int(time.time() * 1000)
    start = now - days * DAY_MS
    visits_total = events_wanted // 4
    mark = db.param
    ev_sql = (f'INSERT INTO "event" ({", ".join(EVENT_COLUMNS)}) VALUES '
              f"({', '.join([mark] * len(EVENT_COLUMNS))})")
    vi_sql = (f'INSERT INTO "visit" ({", ".join(VISIT_COLUMNS)}) VALUES '
              f"({', '.join([mark] * len(VISIT_COLUMNS))})")
    written = 0
    chunk = 20_000
    starts = sorted(rng.randrange(start, now - 600_000) for _ in range(visits_total))
    connection = db.connection()
    for first in range(0, visits_total, chunk):
        visit_rows, event_rows = [], []
        for number in range(first, min(first + chunk, visits_total)):
            ts = starts[number]
            day = (ts - start) // DAY_MS
            visitor = f"h-{day}-{rng.randrange(visits_total // days * 2)}"
            source = rng.choices(sources, source_weights)[0]
            channel = ("Direct" if source == "direct" else "Organic Search"
                       if source in ("google", "bing") else "Organic Social"
                       if source in ("twitter", "facebook") else "Referral")
            device, browser, os_name = rng.choice(devices)
            country = countries[min(29, int(rng.expovariate(0.15)))]
            views = min(20, 1 + int(rng.expovariate(0.3)))
            path = entry = rng.choices(pages, page_weights)[0]
            interactions = 0
            t = ts
            for view in range(views):
                event_rows.append((WEBSITE, t, "pageview", path, visitor, visitor, "", source,
                                   "b8.example", "", 1440, device, browser, os_name, country,
                                   "{}", number + 1))
                if rng.random() < 0.05:
                    interactions += 1
                    event_rows.append((WEBSITE, t + 5000, rng.choice(["signup", "download",
                                                                      "purchase"]),
                                       path, visitor, visitor, "", source, "b8.example", "",
                                       1440, device, browser, os_name, country,
                                       json.dumps({"plan": rng.choice(["free", "pro"])}),
                                       number + 1))
                if view + 1 < views:
                    t += rng.randrange(10_000, 180_000)
                    path = rng.choices(pages, page_weights)[0]
            bounce = int(views <= 1 and interactions == 0)
            visit_rows.append((
                number + 1, WEBSITE, visitor, ts, t, t // DAY_MS, entry, path,
                views, views + interactions, interactions, bounce, 0 if bounce else t - ts,
                source, "", channel, "", "", "", "", "", country, device, browser, os_name))
        event_rows = [(*row, True, written + n) for n, row in enumerate(event_rows, start=1)]
        with db.atomic():
            cursor = connection.cursor()
            cursor.executemany(vi_sql, visit_rows)
            cursor.executemany(ev_sql, event_rows)
        written += len(event_rows)
    return visits_total, written


def plain_group_bys(period_start: int, period_end: int) -> list[str]:
    """The dashboard's reports as plain GROUP BYs over the raw events table (no visits)."""
    where = (f"website_id = '{WEBSITE}' AND ts >= {period_start} AND ts < {period_end}"
             " AND event_type <> 'engagement'")
    totals = ("SELECT COUNT(DISTINCT visitor_id), SUM(CASE WHEN event_type = 'pageview' "
              f"THEN 1 ELSE 0 END), COUNT(*) FROM event WHERE {where}")
    return [
        totals,
        totals.replace(str(period_start), str(2 * period_start - period_end), 1)
        .replace(str(period_end), str(period_start), 1),
        f"SELECT (ts + 3600000) / 86400000, COUNT(DISTINCT visitor_id) FROM event WHERE {where} "
        "GROUP BY 1",
        *(f"SELECT {column}, COUNT(DISTINCT visitor_id) AS n FROM event WHERE {where} "
          f"GROUP BY 1 ORDER BY n DESC LIMIT 10"
          for column in ("source", "pathname", "country", "device", "event_type")),
    ]


def timed(fn: Any, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return median(samples)


def dashboard_view(state: DashboardState, rollups: bool) -> None:
    """Every query of the dashboard's load, one after the other, as the page makes them."""
    zone, now = ZoneInfo(ZONE), datetime.now(UTC)
    comparison = None
    for number, body in enumerate(view_bodies(state, zone, now)):
        query = parse_query(body, WEBSITE, ZONE, now=now)
        if not rollups:
            query = dataclasses.replace(query, rollups=False)
        result = run_query(query)
        if number == 0:
            comparison = result["meta"].get("comparison_date_range")
    if comparison is not None:
        body = view_bodies(state, zone, now, comparison)[2]
        query = parse_query(body, WEBSITE, ZONE, now=now)
        if not rollups:
            query = dataclasses.replace(query, rollups=False)
        run_query(query)


def main() -> int:
    """Generate (or reuse) the history, build rollups, time the view three ways."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--db", default="", help="SQLite file to keep (reused when present)")
    parser.add_argument("--database-url", default="", help="e.g. postgresql://… instead")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--name", default="b8_reports")
    args = parser.parse_args()

    facts = machine_facts()
    keep = Path(args.db) if args.db else Path(tempfile.mkdtemp()) / "b8.db"
    url = args.database_url or f"sqlite:///{keep}"
    fresh = bool(args.database_url) or not keep.exists()
    setup_database(url)
    setup: dict[str, Any] = {}
    if fresh or Website.get_or_none(Website.id == WEBSITE) is None:
        Website.create(id=WEBSITE, name="B8", domain="b8.example", timezone=ZONE)
        started = time.perf_counter()
        visits, events = generate(args.events, args.days, seed=8)
        setup["generate_s"] = time.perf_counter() - started
        setup["visits"], setup["events"] = visits, events
        print(f"generated {events:,} events in {visits:,} visits in "
              f"{setup['generate_s']:.1f} s", flush=True)
        if args.database_url:  # statistics, as autovacuum would gather after such a load
            database.obj.execute_sql("ANALYZE")
    started = time.perf_counter()
    days = 0
    while (built := build_pending(datetime.now(UTC), max_days=366)) > 0:
        days += built
    setup["rollup_days"] = days
    for table in ("rollup", "page_rollup"):  # what the rollups cost in rows
        setup[f"{table}_rows"] = database.obj.execute_sql(
            f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
    setup["rollup_build_s"] = time.perf_counter() - started
    print(f"rollups: {days} days built in {setup['rollup_build_s']:.1f} s", flush=True)

    default = DashboardState()
    filtered = DashboardState(filters=(("is", "event:page", "/page/1"),))
    start_ms = int(time.time() * 1000) - 30 * DAY_MS
    plain = plain_group_bys(start_ms, int(time.time() * 1000))
    dashboard_view(default, True)  # warm: the database's pages in the cache
    dashboard_view(default, False)
    rounds = []
    for r in range(args.rounds):
        row = {
            "engine_ms": timed(lambda: dashboard_view(default, True), args.repeat) * 1000,
            "raw_engine_ms": timed(lambda: dashboard_view(default, False), 1) * 1000,
            "plain_group_by_ms": timed(
                lambda: [database.obj.execute_sql(sql).fetchall() for sql in plain], 1) * 1000,
            "page_filter_ms": timed(lambda: dashboard_view(filtered, True), args.repeat) * 1000,
        }
        row["ratio_vs_plain"] = row["engine_ms"] / row["plain_group_by_ms"]
        row["ratio_vs_raw_engine"] = row["engine_ms"] / row["raw_engine_ms"]
        rounds.append(row)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()),
              flush=True)
    summary = {k: median([r[k] for r in rounds]) for k in rounds[0]}
    summary.update(setup)
    summary["store"] = "postgresql" if args.database_url else "sqlite"
    database.obj.close()
    return report(args.name, args, facts, rounds, summary)


if __name__ == "__main__":
    sys.exit(main())
