"""Migration 3 (``interactive`` and revenue columns) on a database that already holds events,
and the server-side visits of events that come without a session id."""

from __future__ import annotations

from pathlib import Path

from backend.ingest.enrichment import Visits
from models import setup_database
from models.db import SchemaVersion, database
from models.entities import Event, Website, now_ms

MINUTE = 60_000


def test_migration_3_upgrades_a_database_with_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pulse.db'}"
    setup_database(url)
    db = database.obj
    for column in ("interactive", "revenue_amount", "revenue_currency"):
        db.execute_sql(f'ALTER TABLE "event" DROP COLUMN "{column}"')  # as migration 2 left it
    SchemaVersion.update(version=2).execute()
    site = Website.create(name="Old", domain="old.example")
    db.execute_sql('INSERT INTO "event" (website_id, seq, ts, event_type, pathname, visitor_id, '
                   "session_id, referrer, source, hostname, title, device, browser, os, country, "
                   "props) VALUES (?, 1, ?, 'pageview', '/', 'v', 's', '', 'direct', '', '', '', "
                   "'', '', '', '{}')", (site.id, now_ms()))
    db.close()

    setup_database(url)
    assert SchemaVersion.get().version >= 3
    old = Event.get()
    assert (old.interactive, old.revenue_amount, old.revenue_currency) == (True, None, None)
    database.obj.close()


def test_events_at_most_30_minutes_apart_share_a_visit() -> None:
    visits = Visits()
    first = visits.session_id("w", "v1", 0)
    assert visits.session_id("w", "v1", 29 * MINUTE) == first
    assert visits.session_id("w", "v1", 58 * MINUTE) == first  # idle time counts from the last
    later = visits.session_id("w", "v1", 89 * MINUTE)
    assert later != first
    assert visits.session_id("w", "v2", 89 * MINUTE) not in (first, later)
    assert visits.session_id("other", "v1", 89 * MINUTE) != later


def test_open_visits_are_bounded() -> None:
    visits = Visits(max_visits=100)
    for n in range(1000):
        visits.session_id("w", f"v{n}", n)
    assert len(visits) == 100
    visits.session_id("w", "late", 31 * MINUTE + 1000)
    assert len(visits) == 1  # everyone else has been idle for more than 30 minutes
