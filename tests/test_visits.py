"""Capture (UTM, click ids, channel) and visits kept at ingest, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from backend.ingest.writer import store_batch
from models import setup_database
from models.channels import Campaign, campaign_of, channel_of
from models.db import SchemaVersion, database, migrate
from models.entities import DAY_MS, MIGRATIONS, Event, Visit, Website, index_visits_by_end_day
from models.records import NewEvent
from models.websites import create_website, delete_website
from tests.conftest import event_body, post_event

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000


def ev(website: str, minute: float, kind: str = "pageview", path: str = "/",
       visitor: str = "v1", **fields: Any) -> NewEvent:
    return NewEvent(website_id=website, ts=T0 + int(minute * MIN), event_type=kind,
                    pathname=path, visitor_id=visitor, session_id=visitor, **fields)


def visits() -> list[dict[str, Any]]:
    return list(Visit.select().order_by(Visit.start_ts, Visit.id).dicts())


def test_campaign_of_reads_utm_and_click_ids() -> None:
    campaign = campaign_of("utm_source=Newsletter&utm_medium=Email&utm_campaign=Spring%20Sale"
                           "&utm_term=shoes&utm_content=top&x=1")
    assert campaign == Campaign("newsletter", "email", "Spring Sale", "shoes", "top", "")
    assert campaign_of("gclid=abc").click_id == "gclid"
    assert campaign_of("ref=producthunt").utm_source == "producthunt"
    assert campaign_of("") == campaign_of("a=1") == Campaign()


@pytest.mark.parametrize(("source", "query", "channel"), [
    ("direct", "", "Direct"),
    ("google", "", "Organic Search"),
    ("google", "gclid=x", "Paid Search"),
    ("bing", "utm_medium=cpc", "Paid Search"),
    ("facebook", "fbclid=x", "Organic Social"),
    ("facebook", "utm_medium=paid_social", "Paid Social"),
    ("tiktok", "ttclid=x", "Paid Social"),
    ("newsletter", "utm_medium=email", "Email"),
    ("partner.com", "utm_medium=affiliate", "Affiliates"),
    ("ads.example", "utm_medium=banner", "Display"),
    ("youtube", "", "Organic Video"),
    ("example.org", "", "Referral"),
])
def test_channel_table(source: str, query: str, channel: str) -> None:
    assert channel_of(source, campaign_of(query)) == channel


def test_visit_definitions(services: Any, website: Website) -> None:
    w = website.id
    store_batch([ev(w, 0, path="/landing"), ev(w, 5, path="/pricing"),
                 ev(w, 6, "engagement", path="/pricing"),
                 ev(w, 0, path="/only", visitor="bouncer"),
                 ev(w, 3, "engagement", path="/only", visitor="bouncer"),
                 ev(w, 1, path="/a", visitor="clicker"), ev(w, 2, "signup", path="/a",
                                                            visitor="clicker")])
    store_batch([ev(w, 40, path="/back")])  # 34 minutes after the last event: a new visit
    rows = {(r["visitor_id"], r["entry_page"]): r for r in visits()}
    first = rows[("v1", "/landing")]
    assert (first["pageviews"], first["events"], first["bounce"]) == (2, 2, 0)
    assert first["exit_page"] == "/pricing"
    assert first["duration"] == 6 * MIN  # the engagement event extends the visit
    bouncer = rows[("bouncer", "/only")]
    assert (bouncer["pageviews"], bouncer["bounce"], bouncer["duration"]) == (1, 1, 0)
    clicker = rows[("clicker", "/a")]
    assert (clicker["pageviews"], clicker["interactions"], clicker["bounce"]) == (1, 1, 0)
    assert clicker["duration"] == MIN
    assert rows[("v1", "/back")]["bounce"] == 1
    assert len(rows) == 4
    by_visit = {e.visit_id for e in Event.select().where(Event.visitor_id == "v1")}
    assert by_visit == {first["id"], rows[("v1", "/back")]["id"]}


def test_visit_continues_across_batches_and_late_engagement_starts_nothing(
        services: Any, website: Website) -> None:
    w = website.id
    store_batch([ev(w, 0, path="/a")])
    store_batch([ev(w, 29, path="/b")])
    store_batch([ev(w, 90, "engagement", path="/b")])
    [visit] = visits()
    assert (visit["pageviews"], visit["exit_page"], visit["duration"]) == (2, "/b", 29 * MIN)
    late = Event.get(Event.event_type == "engagement")
    assert late.visit_id is None


def test_a_visit_running_across_midnight_is_found_on_its_new_day(services: Any,
                                                                 website: Website) -> None:
    w = website.id  # a visitor id that persists (sent by a tracker): one visit across 00:00 UTC
    store_batch([ev(w, -10, path="/a", visitor="kept")])
    store_batch([ev(w, 10, path="/b", visitor="kept")])  # its last day moves: the UPDATE with it
    store_batch([ev(w, 35, path="/c", visitor="kept")])  # found by that new day
    [visit] = visits()
    assert (visit["pageviews"], visit["exit_page"]) == (3, "/c")
    assert (visit["end_ts"], visit["end_day"]) == (T0 + 35 * MIN, T0 // DAY_MS)


def test_the_migration_gives_stored_visits_their_end_day(settings: Any) -> None:
    setup_database(settings.database)
    db = database.obj
    website = create_website("days.example")
    store_batch([ev(website.id, -10, visitor="a"), ev(website.id, 0, visitor="b")])
    db.execute_sql('UPDATE "visit" SET "end_day" = 0')  # as stored before the column existed
    index_visits_by_end_day(db)
    assert sorted(r["end_day"] for r in visits()) == [T0 // DAY_MS - 1, T0 // DAY_MS]
    store_batch([ev(website.id, 5, visitor="b")])  # the look-up finds its visit again
    assert [r["pageviews"] for r in visits()] == [1, 2]
    indexes = {index.name for index in db.get_indexes("visit")}
    assert "visit_website_id_visitor_id_end_day" in indexes
    assert "visit_website_id_visitor_id_end_ts" not in indexes
    db.close()


@pytest.mark.gen_test
async def test_tracked_landing_page_keeps_utm_and_channel(
        http_client: Any, base_url: str, website: Website, services: Any) -> None:
    body = event_body(website.id, pathname="/?utm_source=Google&utm_medium=cpc"
                      "&utm_campaign=brand&gclid=secret", visitor_id="ad")
    response = await post_event(http_client, base_url, body)
    assert response.code == 202
    await post_event(http_client, base_url, event_body(website.id, pathname="/next",
                                                       visitor_id="ad"))
    await services.writer.write_visits()  # on SQLite the writer gathers them for a second
    [visit] = visits()
    assert (visit["source"], visit["channel"]) == ("google", "Paid Search")
    assert (visit["utm_medium"], visit["utm_campaign"]) == ("cpc", "brand")
    assert (visit["pageviews"], visit["entry_page"], visit["exit_page"]) == (2, "/", "/next")
    assert "secret" not in str(visit)  # the click id's value is never kept


def test_deleting_a_website_deletes_its_visits(services: Any, website: Website) -> None:
    store_batch([ev(website.id, 0)])
    assert Visit.select().count() == 1
    delete_website(website.id)
    assert Visit.select().count() == 0


def test_migration_builds_visits_of_events_stored_before(settings: Any) -> None:
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as run_migration

    setup_database(settings.database)
    db = database.obj
    website = create_website("old.example")
    store_batch([ev(website.id, 0, path="/old"), ev(website.id, 10, path="/older", visitor="w"),
                 ev(website.id, 12, path="/x", visitor="w")])
    # Back to the first schema: no visits table, no visit_id column, version 1.
    db.drop_tables([Visit])
    db.execute_sql('DROP INDEX "event_website_id_pathname_ts_visit_id"')
    run_migration(SchemaMigrator.from_database(db).drop_column("event", "visit_id"))
    SchemaVersion.update(version=1).execute()
    migrate(MIGRATIONS)
    rows = visits()
    assert [(r["visitor_id"], r["pageviews"], r["exit_page"]) for r in rows] == [
        ("v1", 1, "/old"), ("w", 2, "/x")]
    assert Event.select().where(Event.visit_id.is_null()).count() == 0
    db.close()


def test_visits_on_postgresql(postgres_url: str) -> None:
    setup_database(postgres_url)
    try:
        website = create_website("pg.example")
        store_batch([ev(website.id, 0, path="/a"), ev(website.id, 1, "signup", path="/a")])
        store_batch([ev(website.id, 2, path="/b")])
        [visit] = visits()
        assert (visit["pageviews"], visit["events"], visit["bounce"]) == (2, 3, 0)
        assert (visit["entry_page"], visit["exit_page"], visit["duration"]) == ("/a", "/b",
                                                                                2 * MIN)
        assert {e.visit_id for e in Event.select()} == {visit["id"]}
    finally:
        database.obj.close()
