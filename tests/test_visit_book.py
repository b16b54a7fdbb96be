"""The writer's visit book (SQLite): changes gathered over batches and written at once give the
same visit rows as writing them with every batch; a batch that rolls back leaves the book as it
was; what a crash left unwritten is rebuilt from the events at the next start."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from backend.ingest.writer import EventWriter, store_batch
from backend.metrics import Metrics
from backend.server import build_services
from models.db import database
from models.entities import Event, Visit, Website
from models.records import NewEvent
from models.visits import VisitBook, repair_recent_visits
from models.websites import create_website, delete_website
from tests.conftest import sqlite_only

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000
KINDS = ["pageview"] * 6 + ["signup", "engagement", "outbound"]


def history(seed: int, batches: int = 80) -> list[list[dict[str, Any]]]:
    """Batches of events of six visitors over several hours: visits that go on across
    batches, gaps over 30 minutes, custom events (some not interactive), engagement."""
    rng = random.Random(seed)
    ts = T0 + 23 * 60 * MIN  # an hour before midnight: some visits run into the next day
    out = []
    for _ in range(batches):
        batch = []
        for _ in range(rng.randrange(1, 9)):
            ts += rng.choice([0, 1000, 20_000, MIN, 3 * MIN, 31 * MIN // 6])
            kind = rng.choice(KINDS)
            batch.append({"ts": ts, "event_type": kind, "pathname": f"/{rng.randrange(5)}",
                          "visitor_id": f"v{rng.randrange(6)}",
                          "interactive": kind != "outbound"})
        out.append(batch)
    return out


def events(website_id: str, batch: list[dict[str, Any]]) -> list[NewEvent]:
    return [NewEvent(website_id=website_id, session_id=e["visitor_id"], **e) for e in batch]


def hit(website_id: str, ts: int, path: str = "/", kind: str = "pageview", visitor: str = "v",
        interactive: bool = True) -> NewEvent:
    """One event of ``visitor``."""
    return NewEvent(website_id=website_id, ts=ts, event_type=kind, pathname=path,
                    visitor_id=visitor, session_id=visitor, interactive=interactive)


def visit_rows(website_id: str) -> list[tuple[Any, ...]]:
    """A website's visits without ids, and which events each holds, in a comparable order."""
    rows = []
    for visit in Visit.select().where(Visit.website == website_id).order_by(Visit.id).dicts():
        held = [e.ts for e in Event.select(Event.ts).where(Event.visit_id == visit["id"])
                .order_by(Event.ts, Event.id)]
        rows.append((*(v for k, v in visit.items() if k not in ("id", "website")), held))
    return rows


@pytest.fixture
def two_websites(services: Any) -> tuple[str, str]:
    return create_website("each.example").id, create_website("gathered.example").id


def test_gathered_changes_give_the_rows_every_batch_gives(two_websites: tuple[str, str]) -> None:
    each, gathered = two_websites
    now = [0.0]
    book = VisitBook(10.0, clock=lambda: now[0])
    rng = random.Random(7)
    waited = 0
    for batch in history(seed=1):
        store_batch(events(each, batch))
        if rng.random() < 0.25:
            now[0] += 11  # due: this batch writes everything gathered so far
        store_batch(events(gathered, batch), visits=book)
        waited += bool(book.pending)
        assert Event.select().where(Event.visit_id.is_null()
                                    & (Event.event_type != "engagement")).count() == 0
    assert waited > 10  # most batches left changes waiting
    assert visit_rows(gathered) != visit_rows(each)  # not yet written: the rows lag
    book.write_pending()
    assert not book.pending
    assert visit_rows(gathered) == visit_rows(each)
    assert len(visit_rows(each)) > 10


def test_the_book_remembers_the_latest_visits_only(services: Any, website: Website) -> None:
    now = [0.0]
    book = VisitBook(10.0, clock=lambda: now[0], remember=3)
    for n in range(6):
        store_batch([hit(website.id, T0 + n, visitor=f"v{n}")], visits=book)
    assert list(book.known) == [(website.id, f"v{n}") for n in (3, 4, 5)]
    store_batch([hit(website.id, T0 + 10, "/b", visitor="v0")], visits=book)
    assert list(book.known)[-1] == (website.id, "v0")  # looked up again, and remembered
    assert len(book.pending) == 1
    now[0] += 11
    book.write_pending()
    assert Visit.get(Visit.visitor_id == "v0").pageviews == 2
    assert Visit.select().count() == 6


def test_a_crash_loses_nothing_the_next_start_does_not_rebuild(
        two_websites: tuple[str, str]) -> None:
    each, gathered = two_websites
    book = VisitBook(3600.0)
    for batch in history(seed=2):
        store_batch(events(each, batch))
        store_batch(events(gathered, batch), visits=book)
    assert book.pending
    assert visit_rows(gathered) != visit_rows(each)
    # The book is lost with the process; the last hour of each website's events is replayed.
    assert repair_recent_visits(window_ms=3600 * MIN) > 0
    assert visit_rows(gathered) == visit_rows(each)
    assert repair_recent_visits(window_ms=3600 * MIN) == 0  # nothing left to correct


@sqlite_only
def test_the_server_repairs_after_a_crash(settings: Any) -> None:
    services = build_services(settings)
    running = Path(f"{database.obj.database}-visits")
    assert running.exists()  # a writer runs
    website = create_website("crash.example")
    book = services.writer.visits
    assert book.flush_seconds == 1.0
    store_batch([hit(website.id, T0, "/a")], visits=book)
    store_batch([hit(website.id, T0 + 5000, "/b")], visits=book)
    assert Visit.get().pageviews == 1  # the second pageview's change is still in the book
    database.obj.close()
    build_services(settings)  # the next start: the writer did not stop, its book is lost
    visit = Visit.get()
    assert (visit.pageviews, visit.exit_page, visit.bounce, visit.duration) == (2, "/b", 0, 5000)
    database.obj.close()


@sqlite_only
@pytest.mark.asyncio
async def test_a_clean_stop_writes_everything_and_leaves_nothing_to_repair(
        settings: Any) -> None:
    services = build_services(settings)
    running = Path(f"{database.obj.database}-visits")
    website = create_website("clean.example")
    for n in range(2):
        await services.writer.write(hit(website.id, T0 + n * MIN, f"/{n}"))
    await services.writer.close()
    assert not running.exists()
    assert (Visit.get().pageviews, Visit.get().exit_page) == (2, "/1")
    Visit.update(pageviews=7).execute()  # not what the events say: a repair would undo it
    database.obj.close()
    build_services(settings)
    assert Visit.get().pageviews == 7  # no repair ran
    database.obj.close()


def test_a_batch_that_rolls_back_leaves_the_book_as_it_was(services: Any,
                                                          website: Website) -> None:
    book = VisitBook(3600.0)
    store_batch([hit(website.id, T0, "/a")], visits=book)
    store_batch([hit(website.id, T0 + MIN, "/b")], visits=book)
    pending, known = dict(book.pending), dict(book.known)
    with database.obj.atomic() as transaction:
        book.stage([hit(website.id, T0 + 2 * MIN, "/c")])
        transaction.rollback()
    assert (book.pending, book.known) == (pending, known)
    # A batch holding a website deleted meanwhile: the other website's events count, once.
    gone = create_website("gone.example")
    mixed = [hit(website.id, T0 + 3 * MIN, "/d"), hit(gone.id, T0 + 3 * MIN, "/x")]
    delete_website(gone.id)
    seqs = store_batch(mixed, visits=book)
    assert seqs[0] is not None and seqs[1] is None
    book.write_pending()
    visit = Visit.get(Visit.website == website.id)
    assert (visit.pageviews, visit.exit_page, visit.duration) == (3, "/d", 3 * MIN)


def test_a_custom_event_that_is_not_interactive_keeps_a_bounce(services: Any,
                                                               website: Website) -> None:
    store_batch([hit(website.id, T0),
                 hit(website.id, T0 + MIN, kind="scrolled", interactive=False)])
    visit = Visit.get()
    assert (visit.events, visit.interactions, visit.bounce, visit.duration) == (2, 0, 1, 0)


@pytest.mark.asyncio
async def test_the_writer_writes_gathered_changes_when_no_batch_comes(services: Any,
                                                                      website: Website) -> None:
    writer = EventWriter(lambda records: None, Metrics(), batch_delay=0.001,
                         visits=VisitBook(0.05))
    for n, path in enumerate(("/a", "/b", "/c")):
        await writer.write(hit(website.id, T0 + n * MIN, path))
    for _ in range(500):  # patience on a busy machine, not a speed limit
        if not writer.visits.pending:
            break
        await asyncio.sleep(0.01)
    assert not writer.visits.pending
    assert (Visit.get().pageviews, Visit.get().exit_page) == (3, "/c")
    await writer.close()


@pytest.mark.asyncio
async def test_the_writer_writes_gathered_changes_when_it_stops(services: Any,
                                                                website: Website) -> None:
    writer = EventWriter(lambda records: None, Metrics(), batch_delay=0.001,
                         visits=VisitBook(3600.0))
    for n in range(3):
        await writer.write(hit(website.id, T0 + n * MIN, f"/{n}"))
    assert writer.visits.pending
    await writer.close()
    assert (Visit.get().pageviews, Visit.get().exit_page) == (3, "/2")
