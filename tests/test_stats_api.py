"""The query engine and POST /api/v2/query: hand-made visits pin every definition, period,
comparison and filter operator; the same answers on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from backend.auth import create_user
from backend.ingest.writer import store_batch
from models import setup_database
from models.db import database
from models.entities import ApiToken, Website
from models.records import NewEvent
from models.stats import QueryError, answer, parse_query
from models.websites import create_website
from tests.openapi_check import check_response
from tests.server_support import Response

D = "2026-01-10"


def at(moment: str) -> int:
    """UTC ms of an ISO datetime with offset."""
    return int(datetime.fromisoformat(moment).timestamp() * 1000)


def ev(website: str, moment: str, path: str = "/", visitor: str = "a", kind: str = "pageview",
       source: str = "direct", channel: str = "Direct", **fields: Any) -> NewEvent:
    return NewEvent(website_id=website, ts=at(moment), event_type=kind, pathname=path,
                    visitor_id=visitor, session_id=visitor, source=source, channel=channel,
                    **fields)


def load_history(website: str) -> None:
    """Three visits on 2026-01-10 (UTC), one the day before and one the day after."""
    store_batch([
        ev(website, "2026-01-09T15:00:00+00:00", "/old", visitor="z"),
        ev(website, "2026-01-10T10:00:00+00:00", "/", source="google",
           channel="Organic Search", country="DE", device="desktop"),
        ev(website, "2026-01-10T10:02:00+00:00", "/pricing", source="google"),
        ev(website, "2026-01-10T10:05:00+00:00", "/pricing", kind="signup",
           props={"plan": "pro"}),
        ev(website, "2026-01-10T11:00:00+00:00", "/blog", visitor="b", source="twitter",
           channel="Organic Social", country="FR", device="mobile"),
        ev(website, "2026-01-10T12:00:00+00:00", "/", visitor="c", country="DE"),
        ev(website, "2026-01-10T12:01:00+00:00", "/", visitor="c", kind="engagement",
           props={"e": 60000, "sd": 80}),
        ev(website, "2026-01-11T09:00:00+00:00", "/", visitor="a"),
    ])


def ask(website: Website, **body: Any) -> dict[str, Any]:
    body.setdefault("date_range", [D, D])
    return answer(body, website.id, website.timezone)


def rows(website: Website, **body: Any) -> list[list[Any]]:
    return [r["dimensions"] + r["metrics"] for r in ask(website, **body)["results"]]


ALL = ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration",
       "views_per_visit"]


def test_definitions(services: Any, website: Website) -> None:
    load_history(website.id)
    # a: 2 pageviews + signup over 5 min; b: bounce; c: one pageview + engagement = bounce, 0 s.
    assert rows(website, metrics=ALL) == [[3, 3, 4, 5, 67, 100, 1.33]]
    assert rows(website, metrics=["visits", "bounce_rate", "visit_duration"],
                dimensions=["visit:entry_page"]) == [["/", 2, 50, 150], ["/blog", 1, 100, 0]]
    assert rows(website, metrics=["visits"], dimensions=["visit:exit_page"]) == [
        ["/", 1], ["/blog", 1], ["/pricing", 1]]
    assert rows(website, metrics=["visitors", "pageviews"], dimensions=["event:page"]) == [
        ["/", 2, 2], ["/blog", 1, 1], ["/pricing", 1, 1]]
    assert rows(website, metrics=["visitors", "percentage"],
                dimensions=["visit:channel"]) == [
        ["Direct", 1, 33.3], ["Organic Search", 1, 33.3], ["Organic Social", 1, 33.3]]
    assert rows(website, metrics=["visitors"], dimensions=["visit:country", "visit:device"]) == [
        ["DE", "", 1], ["DE", "desktop", 1], ["FR", "mobile", 1]]


def test_goals_and_properties(services: Any, website: Website) -> None:
    load_history(website.id)
    assert rows(website, metrics=["visitors", "events", "conversion_rate"],
                dimensions=["event:goal"]) == [["signup", 1, 1, 33.33]]
    assert rows(website, metrics=["events"], dimensions=["event:props:plan"],
                filters=[["is", "event:goal", ["signup"]]]) == [["pro", 1]]
    assert rows(website, metrics=["visitors", "conversion_rate"],
                filters=[["is", "event:goal", ["signup"]]]) == [[1, 33.33]]


def test_time_buckets_and_labels(services: Any, website: Website) -> None:
    load_history(website.id)
    result = ask(website, metrics=["visitors", "pageviews"], dimensions=["time:day"],
                 date_range=["2026-01-09", "2026-01-11"], include={"time_labels": True})
    assert [r["dimensions"] + r["metrics"] for r in result["results"]] == [
        ["2026-01-09", 1, 1], ["2026-01-10", 3, 4], ["2026-01-11", 1, 1]]
    assert result["meta"]["time_labels"] == ["2026-01-09", "2026-01-10", "2026-01-11"]
    assert rows(website, metrics=["visits"], dimensions=["time:hour"]) == [
        ["2026-01-10 10:00:00", 1], ["2026-01-10 11:00:00", 1], ["2026-01-10 12:00:00", 1]]
    assert rows(website, metrics=["visits"], dimensions=["time:week"],
                date_range=["2026-01-01", "2026-01-31"]) == [["2026-01-05", 5]]
    assert rows(website, metrics=["visits"], dimensions=["time:month"],
                date_range=["2026-01-01", "2026-01-31"]) == [["2026-01-01", 5]]


def test_a_visit_across_midnight_counts_on_its_first_local_day(services: Any) -> None:
    website = create_website("ny.example", timezone="America/New_York")
    store_batch([ev(website.id, "2026-01-10T23:50:00-05:00", "/late"),
                 ev(website.id, "2026-01-11T00:10:00-05:00", "/later")])
    assert rows(website, metrics=["visits", "pageviews", "visit_duration"],
                dimensions=["time:day"], date_range=["2026-01-10", "2026-01-11"]) == [
        ["2026-01-10", 1, 2, 1200]]
    assert rows(website, metrics=["visits"], date_range=["2026-01-11", "2026-01-11"]) == [[0]]
    assert rows(website, metrics=["visitors"], dimensions=["event:page"],
                date_range=["2026-01-11", "2026-01-11"]) == [["/later", 1]]


def test_a_visitor_whose_id_changed_at_midnight_is_two_visitors(services: Any,
                                                                 website: Website) -> None:
    # Daily salts: the same browser gets a new anonymous id at 00:00 UTC.
    store_batch([ev(website.id, "2026-01-10T23:55:00+00:00", "/a", visitor="h-day1"),
                 ev(website.id, "2026-01-11T00:05:00+00:00", "/b", visitor="h-day2")])
    assert rows(website, metrics=["visitors", "visits", "bounce_rate"],
                date_range=["2026-01-10", "2026-01-11"]) == [[2, 2, 100]]


NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("date_range", "first", "last"), [
    ("day", "2026-03-15", "2026-03-15"),
    ("7d", "2026-03-09", "2026-03-15"),
    ("28d", "2026-02-16", "2026-03-15"),
    ("30d", "2026-02-14", "2026-03-15"),
    ("91d", "2025-12-15", "2026-03-15"),
    ("month", "2026-03-01", "2026-03-15"),
    ("6mo", "2025-10-01", "2026-03-15"),
    ("12mo", "2025-04-01", "2026-03-15"),
    ("year", "2026-01-01", "2026-03-15"),
    ("all", "2025-06-01", "2026-03-15"),
    (["2026-01-01", "2026-01-31"], "2026-01-01", "2026-01-31"),
])
def test_period_boundaries(date_range: Any, first: str, last: str) -> None:
    query = parse_query({"metrics": ["visitors"], "date_range": date_range}, "w", "UTC",
                        now=NOW, first_visit=date(2025, 6, 1))
    assert query.echo["date_range"] == [f"{first}T00:00:00+00:00", f"{last}T23:59:59+00:00"]


def test_periods_follow_the_websites_zone_and_dst() -> None:
    query = parse_query({"metrics": ["visitors"], "date_range": "day"}, "w", "America/New_York",
                        now=datetime(2026, 3, 15, 3, 0, tzinfo=UTC))
    assert query.echo["date_range"] == ["2026-03-14T00:00:00-04:00", "2026-03-14T23:59:59-04:00"]
    dst = parse_query({"metrics": ["visitors"], "date_range": ["2026-03-08", "2026-03-08"]},
                      "w", "America/New_York", now=NOW).period
    assert dst.end_ms - dst.start_ms == 23 * 3_600_000
    week = parse_query({"metrics": ["visitors"], "date_range": "7d"}, "w", "UTC", now=NOW).period
    assert week.previous_period().iso() == ["2026-03-02T00:00:00+00:00",
                                            "2026-03-08T23:59:59+00:00"]
    assert week.year_before().iso() == ["2025-03-09T00:00:00+00:00",
                                        "2025-03-15T23:59:59+00:00"]
    hours = parse_query({"metrics": ["visitors"],
                         "date_range": ["2026-03-15T08:00:00Z", "2026-03-15T09:59:59Z"]},
                        "w", "UTC", now=NOW).period
    assert (hours.start_ms, hours.end_ms) == (at("2026-03-15T08:00:00+00:00"),
                                              at("2026-03-15T10:00:00+00:00"))


def test_comparison_with_the_previous_period(services: Any, website: Website) -> None:
    load_history(website.id)
    result = ask(website, metrics=["visitors", "bounce_rate"],
                 include={"comparisons": {"mode": "previous_period"}})
    [row] = result["results"]
    assert row["metrics"] == [3, 67]
    assert row["comparison"]["metrics"] == [1, 100]  # 2026-01-09: z bounced
    assert row["comparison"]["change"] == [200, -33]
    assert result["meta"]["comparison_date_range"][0] == "2026-01-09T00:00:00+00:00"
    by_page = ask(website, metrics=["visitors"], dimensions=["event:page"],
                  include={"comparisons": {"mode": "previous_period"}})["results"]
    assert [(r["dimensions"], r["comparison"]["metrics"], r["comparison"]["change"])
            for r in by_page] == [(["/"], [0], [None]), (["/blog"], [0], [None]),
                                  (["/pricing"], [0], [None])]
    daily = ask(website, metrics=["visitors"], dimensions=["time:day"],
                include={"comparisons": {"mode": "previous_period"}})["results"]
    assert [(r["dimensions"], r["comparison"]["dimensions"], r["comparison"]["metrics"])
            for r in daily] == [(["2026-01-10"], ["2026-01-09"], [1])]


@pytest.mark.parametrize(("filters", "visitors"), [
    ([["is", "visit:source", ["google"]]], 1),
    ([["is", "visit:source", ["google", "twitter"]]], 2),
    ([["is_not", "visit:source", ["google"]]], 2),
    ([["contains", "visit:source", ["OO"]]], 1),  # contains ignores case
    ([["contains_not", "visit:source", ["o"]]], 2),
    ([["contains", "event:page", ["pric"]]], 1),
    ([["is", "event:page", ["/"]], ["is", "visit:country", ["DE"]]], 2),
    ([["or", [["is", "visit:source", ["twitter"]], ["is", "event:page", ["/pricing"]]]]], 2),
    ([["and", [["is", "visit:country", ["DE"]], ["is_not", "visit:source", ["google"]]]]], 1),
    ([["not", ["is", "visit:country", ["DE"]]]], 1),
    ([["is", "event:props:plan", ["pro"]]], 1),
    ([["is", "visit:channel", ["Organic Social"]]], 1),
    ([["contains", "visit:source", ["%"]]], 0),  # LIKE wildcards are plain characters
])
def test_filter_operators(services: Any, website: Website, filters: Any,
                          visitors: int) -> None:
    load_history(website.id)
    assert rows(website, metrics=["visitors"], filters=filters) == [[visitors]]


def test_event_filters_count_matching_events_only(services: Any, website: Website) -> None:
    load_history(website.id)
    assert rows(website, metrics=["visitors", "visits", "pageviews", "bounce_rate"],
                filters=[["is", "event:page", ["/pricing"]]]) == [[1, 1, 1, 0]]
    assert rows(website, metrics=["pageviews"], dimensions=["event:page"],
                filters=[["is", "visit:source", ["google"]]]) == [["/", 1], ["/pricing", 1]]
    # Without pageviews or events the visits come from the page index alone: same visits.
    assert rows(website, metrics=["visitors", "visits", "bounce_rate", "visit_duration"],
                filters=[["is", "event:page", ["/pricing"]]]) == [[1, 1, 0, 300]]
    assert rows(website, metrics=["visitors", "visits", "bounce_rate"],
                dimensions=["visit:source"], filters=[["is_not", "event:page", ["/pricing"]]]
                ) == [["direct", 1, 1, 100], ["google", 1, 1, 0], ["twitter", 1, 1, 100]]


def test_order_and_pagination(services: Any, website: Website) -> None:
    load_history(website.id)
    result = ask(website, metrics=["visitors"], dimensions=["event:page"],
                 order_by=[["event:page", "desc"]], pagination={"limit": 2, "offset": 1},
                 include={"total_rows": True})
    assert [r["dimensions"] for r in result["results"]] == [["/blog"], ["/"]]
    assert result["meta"]["total_rows"] == 3
    # Past the last page: no rows, and still the number of rows (counted on its own then).
    result = ask(website, metrics=["visitors"], dimensions=["event:page"],
                 pagination={"limit": 2, "offset": 10}, include={"total_rows": True})
    assert result["results"] == [] and result["meta"]["total_rows"] == 3


@pytest.mark.parametrize(("body", "message"), [
    ({"date_range": "7d"}, "metrics: must be a non-empty list of metric names"),
    ({"metrics": ["hits"], "date_range": "7d"}, "metrics: unknown metric 'hits'"),
    ({"metrics": ["visitors"]}, "date_range: is required"),
    ({"metrics": ["visitors"], "date_range": "8d"}, "date_range: unknown range '8d'"),
    ({"metrics": ["visitors"], "date_range": ["2026-01-02", "2026-01-01"]},
     "date_range: ends before it starts"),
    ({"metrics": ["visitors"], "date_range": ["yesterday", "x"]},
     "date_range: 'yesterday' is not an ISO 8601 date or datetime"),
    ({"metrics": ["visitors"], "date_range": "7d", "dimensions": ["visit:city"]},
     "dimensions: invalid dimension 'visit:city'"),
    ({"metrics": ["visitors"], "date_range": "7d", "dimensions": ["time:day", "time:hour"]},
     "dimensions: may hold one time dimension"),
    ({"metrics": ["visitors"], "date_range": "7d", "filters": [["matches", "event:page", ["/"]]]},
     "filters[0]: unknown operator 'matches'"),
    ({"metrics": ["visitors"], "date_range": "7d", "filters": [["is", "event:page", "/"]]},
     "filters[0]: values must be a list of 1–100 strings"),
    ({"metrics": ["visitors"], "date_range": "7d", "filters": [["is", "time", ["x"]]]},
     "filters[0]: cannot filter on time; use date_range"),
    ({"metrics": ["visitors"], "date_range": "7d", "order_by": [["visits", "desc"]]},
     "order_by: 'visits' is neither a queried metric nor a queried dimension"),
    ({"metrics": ["visitors"], "date_range": "7d", "pagination": {"limit": 0}},
     "pagination: limit must be a whole number from 1 to 10000"),
    ({"metrics": ["visitors"], "date_range": "7d", "include": {"comparisons": {"mode": "x"}}},
     "include: comparisons.mode must be previous_period or year_over_year"),
    ({"metrics": ["bounce_rate"], "date_range": "7d", "dimensions": ["event:page"]},
     "metrics: bounce_rate cannot be broken down by event dimension event:page"),
    ({"metrics": ["conversion_rate"], "date_range": "7d"},
     "metrics: conversion_rate needs an event:goal dimension or filter"),
    ({"metrics": ["percentage"], "date_range": "7d"},
     "metrics: percentage needs a non-time dimension"),
    ({"metrics": ["visitors"], "date_range": "7d", "period": "7d"},
     "period: is not a query field"),
    ({"metrics": ["visitors"], "date_range": ["0001-01-01", "9999-12-31"]},
     "date_range: must lie between 1970-01-02 and 2200-01-01"),
    ({"metrics": ["visitors"], "date_range": ["0001-01-01T00:00:00", "2026-01-01T00:00:00"]},
     "date_range: '0001-01-01T00:00:00' is not an ISO 8601 date or datetime"),
    ({"metrics": ["visitors"], "date_range": "12mo", "dimensions": ["time:hour"]},
     "dimensions: time:hour covers at most 93 days"),
])
def test_errors_name_the_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryError) as raised:
        parse_query(body, "w", "UTC", now=NOW)
    assert str(raised.value).startswith(message)


async def post(http_client: Any, base_url: str, body: Any, token: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = await http_client.fetch(base_url + "/api/v2/query", method="POST",
                                       body=json.dumps(body), headers=headers,
                                       raise_error=False)
    check_response("/api/v2/query", "POST", Response(
        response.code, response.reason, {k.lower(): v for k, v in response.headers.get_all()},
        response.body))
    return response


@pytest.mark.gen_test
async def test_the_http_api(http_client: Any, base_url: str, website: Website,
                            token: str) -> None:
    load_history(website.id)
    body = {"site_id": "example.com", "metrics": ["visitors", "pageviews"],
            "date_range": [D, D], "dimensions": ["visit:source"]}
    response = await post(http_client, base_url, body, token)
    assert response.code == 200
    result = json.loads(response.body)
    assert result["results"] == [{"metrics": [1, 1], "dimensions": ["direct"]},
                                 {"metrics": [1, 2], "dimensions": ["google"]},
                                 {"metrics": [1, 1], "dimensions": ["twitter"]}]
    assert result["query"]["site_id"] == "example.com"
    assert result["query"]["date_range"] == ["2026-01-10T00:00:00+00:00",
                                             "2026-01-10T23:59:59+00:00"]
    by_id = await post(http_client, base_url, {**body, "site_id": website.id}, token)
    assert json.loads(by_id.body)["results"] == result["results"]

    bad = await post(http_client, base_url, {**body, "metrics": ["hits"]}, token)
    assert (bad.code, json.loads(bad.body)["error"].split(";")[0]) == (
        400, "metrics: unknown metric 'hits'")
    anonymous = await post(http_client, base_url, body, None)
    assert anonymous.code == 401
    missing = await post(http_client, base_url, {**body, "site_id": "nope.example"}, token)
    assert (missing.code, json.loads(missing.body)) == (
        404, {"error": "site_id: no such website among yours"})
    no_site = await post(http_client, base_url, {"metrics": ["visitors"]}, token)
    assert json.loads(no_site.body)["error"] == "site_id: is required (a website id or domain)"
    stranger = create_user("stranger@example.com", "another long password")
    other = ApiToken.issue(stranger, "t")[1]
    forbidden = await post(http_client, base_url, body, other)
    assert forbidden.code == 404


QUERIES: list[dict[str, Any]] = [
    {"metrics": ALL},
    {"metrics": ALL, "filters": [["is", "event:page", ["/pricing"]]]},
    {"metrics": ["visitors", "bounce_rate"], "dimensions": ["visit:country"],
     "filters": [["contains", "event:page", ["pric"]]]},
    {"metrics": ["visitors", "pageviews", "events"], "dimensions": ["event:page"]},
    {"metrics": ["visitors", "visits", "bounce_rate", "visit_duration"],
     "dimensions": ["visit:source", "time:hour"]},
    {"metrics": ["visitors", "events", "conversion_rate"], "dimensions": ["event:goal"]},
    {"metrics": ["events"], "dimensions": ["event:props:plan"]},
    {"metrics": ["visitors", "percentage"], "dimensions": ["visit:channel"],
     "filters": [["contains", "visit:source", ["OO"]]]},
    {"metrics": ["visitors"], "dimensions": ["time:month"], "date_range": "all",
     "include": {"comparisons": {"mode": "year_over_year"}}},
    {"metrics": ["visits", "views_per_visit"], "dimensions": ["time:day"],
     "date_range": ["2026-01-09", "2026-01-11"],
     "include": {"comparisons": {"mode": "previous_period"}, "time_labels": True}},
]


def all_answers(url: str) -> list[dict[str, Any]]:
    setup_database(url)
    try:
        website = create_website("same.example", timezone="Europe/Berlin")
        load_history(website.id)
        answers = [ask(website, **dict(q)) for q in QUERIES]
    finally:
        database.obj.close()
    for result in answers:
        result.pop("query")
        if "time_labels" in result["meta"] and result["meta"]["time_labels"][0] > "2026-02":
            result["meta"].pop("time_labels")  # "all" ends today
    return answers


def test_sqlite_and_postgresql_give_the_same_answers(settings: Any, postgres_url: str) -> None:
    on_sqlite = all_answers(settings.database)
    on_postgres = all_answers(postgres_url)
    assert on_sqlite == on_postgres
    assert on_sqlite[0]["results"][0]["metrics"] == [3, 3, 4, 5, 67, 100, 1.33]


def test_answers_off_the_loop_use_the_zone(services: Any) -> None:
    website = create_website("tokyo.example", timezone="Asia/Tokyo")
    store_batch([ev(website.id, "2026-01-10T23:30:00+09:00")])
    assert rows(website, metrics=["visitors"], dimensions=["time:day"],
                date_range=["2026-01-10", "2026-01-10"]) == [["2026-01-10", 1]]
    assert ZoneInfo(website.timezone).key == "Asia/Tokyo"
