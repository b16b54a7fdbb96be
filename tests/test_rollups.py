"""Daily rollups: built for closed days off the request path, read by the engine together with
today's raw rows, and giving the same answers as raw rows (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from backend.ingest.writer import store_batch
from models import setup_database
from models.db import database
from models.entities import Event, PageRollup, Rollup, RollupProgress, Website
from models.records import NewEvent
from models.stats import parse_query, run_query
from models.stats.rollups import build_pending, built_until, day_number
from models.websites import create_website, delete_website, update_website

ZONE = "Europe/Berlin"


def history(website_id: str, now: datetime) -> None:
    """Visits at local noon of the last six days and today (daily ids h-…), none at midnight."""
    events = []
    for days_ago in range(6, -1, -1):
        noon = (now - timedelta(days=days_ago)).replace(hour=11, minute=0, second=0,
                                                        microsecond=0)
        if noon > now:
            noon = now - timedelta(minutes=30)
        for n in range(days_ago + 2):
            visitor = f"h-{days_ago}-{n}"
            ts = int(noon.timestamp() * 1000) + n * 1000
            source, channel = [("google", "Organic Search"), ("direct", "Direct"),
                               ("twitter", "Organic Social")][n % 3]
            events.append(NewEvent(website_id=website_id, ts=ts, event_type="pageview",
                                   pathname=f"/p{n % 4}", visitor_id=visitor,
                                   session_id=visitor, source=source, channel=channel,
                                   country=["DE", "FR"][n % 2]))
            if n % 2:
                events.append(NewEvent(website_id=website_id, ts=ts + 60_000,
                                       event_type="pageview", pathname="/pricing",
                                       visitor_id=visitor, session_id=visitor, source=source))
            if n % 3 == 2:
                events.append(NewEvent(website_id=website_id, ts=ts + 90_000,
                                       event_type="signup", pathname="/pricing",
                                       visitor_id=visitor, session_id=visitor,
                                       props={"plan": "pro"}))
    store_batch(events)


BODIES: list[dict[str, Any]] = [
    {"metrics": ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration",
                 "views_per_visit"]},
    {"metrics": ["visitors", "visits", "bounce_rate"], "dimensions": ["visit:source"]},
    {"metrics": ["visitors", "percentage"], "dimensions": ["visit:channel"],
     "filters": [["contains", "visit:channel", ["organic"]]]},
    {"metrics": ["visitors", "pageviews"], "dimensions": ["event:page"],
     "pagination": {"limit": 3, "offset": 1}},
    {"metrics": ["visitors", "events", "conversion_rate"], "dimensions": ["event:goal"]},
    {"metrics": ["visitors", "pageviews", "bounce_rate"],
     "filters": [["is", "event:page", ["/pricing"]]]},
    {"metrics": ["visitors", "visits"], "filters": [["is", "visit:country", ["FR"]]]},
    {"metrics": ["visitors", "pageviews"], "dimensions": ["time:day"]},
    {"metrics": ["visits"], "dimensions": ["time:week", "visit:source"]},
    {"metrics": ["visitors"], "include": {"comparisons": {"mode": "previous_period"}}},
    {"metrics": ["visitors"], "dimensions": ["visit:source"],
     "order_by": [["visit:source", "desc"]], "include": {"total_rows": True}},
    # Filtered by one page: the per-page rollups.
    {"metrics": ["visitors", "percentage"], "dimensions": ["visit:channel"],
     "filters": [["is", "event:page", ["/pricing"]]], "include": {"total_rows": True}},
    {"metrics": ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration",
                 "views_per_visit"], "dimensions": ["visit:country"],
     "filters": [["is", "event:page", ["/p1"]]]},
    {"metrics": ["visitors", "events", "conversion_rate"], "dimensions": ["event:goal"],
     "filters": [["is", "event:page", ["/pricing"]]]},
    {"metrics": ["visitors", "visits"], "dimensions": ["visit:source"],
     "filters": [["is", "event:page", ["/pricing"]], ["is_not", "visit:source", ["direct"]]]},
    {"metrics": ["visitors", "pageviews"],
     "filters": [["is", "event:page", ["/pricing"]], ["is", "visit:country", ["FR"]]]},
    {"metrics": ["visitors", "visits", "events", "bounce_rate", "visit_duration"],
     "filters": [["is", "event:page", ["/pricing"]], ["is", "event:goal", ["signup"]]]},
    {"metrics": ["visitors", "visits", "events"],
     "filters": [["is", "event:page", ["/pricing"]], ["is", "event:goal", ["signup"]]]},
    {"metrics": ["visitors"], "dimensions": ["visit:channel"],
     "filters": [["is", "event:page", ["/pricing"]]],
     "include": {"comparisons": {"mode": "previous_period"}}},
    {"metrics": ["visitors"], "dimensions": ["visit:entry_page"],  # raw: not rolled up by page
     "filters": [["is", "event:page", ["/pricing"]]]},
]


def both(website: Website, body: dict[str, Any], now: datetime) -> tuple[Any, Any]:
    query = parse_query({"date_range": "7d", **body}, website.id, website.timezone, now=now)
    with_rollups = run_query(query)
    raw = run_query(dataclasses.replace(query, rollups=False))
    return with_rollups, raw


def test_rollups_answer_like_raw_rows(services: Any) -> None:
    website = create_website("rolled.example", timezone=ZONE)
    now = datetime.now(UTC)
    history(website.id, now)
    assert build_pending(now) >= 5
    today = day_number(now.astimezone(website_zone(website)).date())
    assert built_until(website.id, ZONE) in (today, today - 1)  # today is never rolled up
    assert Rollup.select().where(Rollup.dimension == "event:page").count() > 0
    assert PageRollup.select().where(PageRollup.page == "/pricing").count() > 0
    for body in BODIES:
        with_rollups, raw = both(website, body, now)
        assert with_rollups == raw, body
    assert build_pending(now) == 0  # nothing new to build


def test_rollups_keep_reports_of_deleted_events(services: Any) -> None:
    website = create_website("kept.example", timezone=ZONE)
    now = datetime.now(UTC)
    history(website.id, now)
    body = {"metrics": ["pageviews"], "dimensions": ["event:page"],
            "filters": [["is", "event:page", ["/pricing"]]]}
    before, _ = both(website, body, now)
    build_pending(now)
    Event.delete().where(Event.ts < int((now - timedelta(days=2)).timestamp() * 1000)).execute()
    with_rollups, raw = both(website, body, now)
    assert with_rollups == before  # retention took the events, the rollups kept the report
    assert raw["results"][0]["metrics"][0] < before["results"][0]["metrics"][0]


def test_reports_filtered_by_a_page_are_read_from_the_per_page_rollups(services: Any) -> None:
    website = create_website("paged.example", timezone=ZONE)
    now = datetime.now(UTC)
    history(website.id, now)
    bodies = [{"metrics": ["visitors", "visits", "pageviews"], "dimensions": [dimension],
               "filters": [["is", "event:page", ["/pricing"]]]}
              for dimension in ("visit:channel", "visit:country", "visit:source", "event:goal")]
    before = [both(website, body, now)[0] for body in bodies]
    build_pending(now)
    Event.delete().where(Event.ts < int((now - timedelta(days=2)).timestamp() * 1000)).execute()
    for body, earlier in zip(bodies, before, strict=True):
        with_rollups, raw = both(website, body, now)
        assert with_rollups == earlier, body  # the rollups kept what retention took
        assert raw != earlier
    # Entry pages are not rolled up per page: raw rows answer (and lost the old days).
    body = {"metrics": ["visitors"], "dimensions": ["visit:entry_page"],
            "filters": [["is", "event:page", ["/pricing"]]]}
    with_rollups, raw = both(website, body, now)
    assert with_rollups == raw


def test_a_day_is_read_outside_any_transaction_and_written_in_short_ones(
        services: Any, monkeypatch: Any) -> None:
    """On SQLite a transaction that writes holds the one write lock: the reports of a day are
    read with no transaction open (the writer's batches never wait for them)."""
    website = create_website("locked.example", timezone=ZONE)
    now = datetime.now(UTC)
    history(website.id, now)
    db = database.obj
    execute = type(db).execute_sql
    seen: list[tuple[bool, str]] = []

    def watched(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        seen.append((self.in_transaction(), sql))
        return execute(self, sql, *args, **kwargs)

    monkeypatch.setattr(type(db), "execute_sql", watched)
    assert build_pending(now) >= 5
    reads = [inside for inside, sql in seen if "GROUP BY" in sql or "HAVING" in sql]
    writes = [inside for inside, sql in seen if sql.startswith("INSERT INTO \"page_rollup\"")]
    assert reads and not any(reads)
    assert writes and all(writes)


def test_the_upgrade_that_adds_per_page_rollups_builds_every_day_again(services: Any) -> None:
    from models.entities import add_page_rollups

    website = create_website("upgraded.example", timezone=ZONE)
    now = datetime.now(UTC)
    history(website.id, now)
    built = build_pending(now)
    PageRollup.delete().execute()  # as a database rolled up before per-page rollups existed
    add_page_rollups(database.obj)
    assert built_until(website.id, ZONE) is None and Rollup.select().count() == 0
    assert build_pending(now) == built
    assert PageRollup.select().where(PageRollup.page == "/pricing").count() > 0
    for body in BODIES:
        with_rollups, raw = both(website, body, now)
        assert with_rollups == raw, body


def test_ids_that_persist_across_days_are_counted_from_raw_rows(services: Any,
                                                               website: Website) -> None:
    now = datetime.now(UTC)
    store_batch([NewEvent(website_id=website.id, ts=int((now - timedelta(days=d)).timestamp()
                                                        * 1000), event_type="pageview",
                          pathname="/", visitor_id="kept-id", session_id="s")
                 for d in (3, 2)])
    build_pending(now)
    with_rollups, raw = both(website, {"metrics": ["visitors", "visits"]}, now)
    assert with_rollups == raw
    assert raw["results"][0]["metrics"] == [1, 2]


def test_a_new_time_zone_rebuilds_and_deleting_the_website_removes_rollups(
        services: Any) -> None:
    website = create_website("moved.example", timezone=ZONE)
    now = datetime.now(UTC)
    history(website.id, now)
    build_pending(now)
    update_website(website, name="Moved", domain="moved.example", origins="",
                   timezone="America/New_York")
    assert built_until(website.id, "America/New_York") is None  # stale: raw rows answer
    build_pending(now)
    assert RollupProgress.get_by_id(website.id).timezone == "America/New_York"
    for body in BODIES:  # per-page rows of the old zone included: gone, not counted twice
        with_rollups, raw = both(Website.get_by_id(website.id), body, now)
        assert with_rollups == raw
    delete_website(website.id)
    assert Rollup.select().count() == 0 and RollupProgress.select().count() == 0
    assert PageRollup.select().count() == 0


def test_rollups_on_postgresql(postgres_url: str) -> None:
    setup_database(postgres_url)
    try:
        website = create_website("pg-rolled.example", timezone=ZONE)
        now = datetime.now(UTC)
        history(website.id, now)
        assert build_pending(now) >= 5
        for body in BODIES:
            with_rollups, raw = both(website, body, now)
            assert with_rollups == raw, body
    finally:
        database.obj.close()


def website_zone(website: Website) -> Any:
    from zoneinfo import ZoneInfo
    return ZoneInfo(website.timezone)
