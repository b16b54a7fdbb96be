"""One order per website: events are numbered 1, 2, 3… per website inside the commit, and
that number is the public event id (SSE ``id:``, ``Last-Event-ID``, replay)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import peewee
import pytest
import tornado.httpserver
import tornado.testing

from backend.ingest.writer import EventWriter
from backend.metrics import Metrics
from backend.server import build_services, make_app
from models import setup_database
from models.db import SchemaVersion, database, open_database
from models.entities import (
    MIGRATIONS,
    ApiToken,
    Event,
    EventCounter,
    Membership,
    Salt,
    Session,
    User,
    Website,
)
from models.records import EventRecord, NewEvent
from models.reports import events_after, last_seq, last_seqs
from models.websites import create_website
from tests.conftest import event_body, post_event
from tests.sse_client import SSEReader


def new_event(website_id: str, n: int) -> NewEvent:
    return NewEvent(website_id=website_id, ts=1_700_000_000_000 + n, event_type="pageview",
                    pathname=f"/p/{n}", visitor_id=f"v{n}", session_id=f"s{n}")


@pytest.mark.gen_test
async def test_two_interleaved_websites_are_numbered_one_to_n_each(services: Any,
                                                                    website: Website) -> None:
    other = create_website("other.example.org")
    published: list[EventRecord] = []
    writer = EventWriter(published.extend, Metrics(), batch_size=7, batch_delay=0.001)
    sites = [website.id if n % 3 else other.id for n in range(60)]  # uneven mix, many batches
    records = await asyncio.gather(*(writer.write(new_event(site, n))
                                     for n, site in enumerate(sites)))
    await writer.close()
    for site in (website.id, other.id):
        mine = [r for r in records if r.website_id == site]
        assert [r.id for r in mine] == list(range(1, len(mine) + 1))  # in the order written
        stored = Event.select().where(Event.website == site).order_by(Event.seq)
        assert [(e.seq, e.pathname) for e in stored] == [(r.id, r.pathname) for r in mine]
        assert [r.id for r in published if r.website_id == site] == [r.id for r in mine]
        assert last_seq(site) == len(mine)
    assert last_seqs() == {website.id: 40, other.id: 20}
    assert last_seq("no-such-website") == 0
    assert [e.pathname for e in events_after(other.id, 18, 10)] == ["/p/54", "/p/57"]


@pytest.mark.gen_test
async def test_two_writers_on_one_database_share_one_sequence(services: Any,
                                                              website: Website) -> None:
    """Two writers (as two processes would) never hand out a number twice or skip one."""
    first = EventWriter(lambda _: None, Metrics(), batch_size=5, batch_delay=0.001)
    second = EventWriter(lambda _: None, Metrics(), batch_size=3, batch_delay=0.001)
    records = await asyncio.gather(*(
        (first if n % 2 else second).write(new_event(website.id, n)) for n in range(80)))
    await first.close()
    await second.close()
    assert sorted(r.id for r in records) == list(range(1, 81))
    assert last_seq(website.id) == 80


def live_url(base_url: str, website_id: str) -> str:
    return f"{base_url}/admin/analytics/live?website_id={website_id}"


@pytest.mark.gen_test
async def test_replay_after_a_restart_follows_the_websites_own_sequence(
        http_client: Any, base_url: str, website: Any, token: str, settings: Any,
        services: Any) -> None:
    other = create_website("other.example.org")
    mine: list[int] = []
    for n in range(12):
        site = website.id if n % 2 else other.id
        response = await post_event(http_client, base_url,
                                    event_body(site, pathname=f"/{site[:4]}/{n}"))
        assert response.code == 202
        if site == website.id:
            mine.append(json.loads(response.body)["id"])
    assert mine == [1, 2, 3, 4, 5, 6]
    await services.writer.close()

    restarted = build_services(settings)  # empty memory: the replay must come from the store
    sock, port = tornado.testing.bind_unused_port()
    server = tornado.httpserver.HTTPServer(make_app(restarted))
    server.add_sockets([sock])
    url = f"http://127.0.0.1:{port}"
    reader = SSEReader(live_url(url, website.id),
                       {"Authorization": f"Bearer {token}", "Last-Event-ID": "3"}).start()
    try:
        await reader.wait_for(lambda r: len(r.of_type("new_event")) >= 3)
        response = await post_event(http_client, url,
                                    event_body(website.id, pathname="/after-restart"))
        assert json.loads(response.body)["id"] == 7
        await reader.wait_for(lambda r: len(r.of_type("new_event")) >= 4)
        frames = reader.of_type("new_event")
        assert [f.id for f in frames] == [4, 5, 6, 7]
        assert [f.data["data"]["id"] for f in frames] == [4, 5, 6, 7]
        assert [f.data["data"]["pathname"] for f in frames] == [
            f"/{website.id[:4]}/{n}" for n in (7, 9, 11)] + ["/after-restart"]
    finally:
        reader.close()
        server.stop()
        await restarted.writer.close()


class OldEvent(peewee.Model):
    """The event table as migration 1 made it: a global id and no sequence."""

    id = peewee.BigAutoField()
    website = peewee.ForeignKeyField(Website, on_delete="CASCADE", index=False)
    ts = peewee.BigIntegerField()
    event_type = peewee.CharField(max_length=64)
    pathname = peewee.CharField(max_length=2048)
    visitor_id = peewee.CharField(max_length=64)
    session_id = peewee.CharField(max_length=64)
    referrer = peewee.CharField(max_length=2048, default="")
    source = peewee.CharField(max_length=100, default="direct")
    hostname = peewee.CharField(max_length=253, default="")
    title = peewee.CharField(max_length=500, default="")
    screen_width = peewee.IntegerField(null=True)
    device = peewee.CharField(max_length=16, default="")
    browser = peewee.CharField(max_length=64, default="")
    os = peewee.CharField(max_length=64, default="")
    country = peewee.CharField(max_length=2, default="")
    props = peewee.TextField(default="{}")

    class Meta:
        table_name = "event"
        indexes = ((("website", "ts"), False), (("website", "id"), False))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: Any, tmp_path: Any) -> Iterator[str]:
    """An empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        yield request.getfixturevalue("postgres_url")
    if not database.obj.is_closed():
        database.obj.close()


def test_the_migration_numbers_the_events_of_an_existing_database(database_url: str) -> None:
    db = open_database(database_url)
    db.create_tables([SchemaVersion, User, Website, Membership, ApiToken, Session, Salt])
    OldEvent._meta.set_database(db)
    db.create_tables([OldEvent])
    SchemaVersion.create(version=1)
    a = Website.create(name="A", domain="a.example")
    b = Website.create(name="B", domain="b.example")
    Website.create(name="quiet", domain="c.example")
    order = [a, b, b, a, b, a, a, b, b, b]
    for n, site in enumerate(order):
        OldEvent.create(website=site, ts=1_700_000_000_000 + n, event_type="pageview",
                        pathname=f"/{n}", visitor_id="v", session_id="s")

    setup_database(database_url)  # migration 2 runs here

    assert SchemaVersion.get().version == len(MIGRATIONS)
    for site in (a, b):
        rows = list(Event.select().where(Event.website == site).order_by(Event.id))
        expected = [f"/{n}" for n, s in enumerate(order) if s == site]
        assert [(e.seq, e.pathname) for e in rows] == list(enumerate(expected, start=1))
    assert last_seqs() == {a.id: 4, b.id: 6}
    assert EventCounter.select().count() == 2
    with pytest.raises(peewee.IntegrityError), database.atomic():
        Event.create(website=a, seq=2, ts=0, event_type="pageview", pathname="/dup",
                     visitor_id="v", session_id="s")

    # New events continue each website's sequence.
    from backend.ingest.writer import store_batch
    assert store_batch([new_event(b.id, 1), new_event(a.id, 2), new_event(b.id, 3)]) == [7, 5, 8]
    assert [r.id for r in events_after(a.id, 3, 10)] == [4, 5]
    setup_database(database_url)  # idempotent: nothing left to apply
    assert last_seqs() == {a.id: 5, b.id: 8}
