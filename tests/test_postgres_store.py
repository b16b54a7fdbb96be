"""PostgreSQL as the store, on a real server: the CLI and `pulse serve` on PULSE_DATABASE_URL,
connections the server drops are re-established, and while the database cannot be reached
tracking answers 503 with Retry-After, /healthz says why, and nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from backend.settings import Settings
from models.entities import Event, Website
from models.websites import create_website
from tests.conftest import event_body, post_event
from tests.real_services import POSTGRES_ADMIN_URL
from tests.server_support import ROOT, free_port, start_server
from tests.sse_client import SSEReader


@pytest.fixture
def settings(tmp_path: Any, postgres_url: str) -> Settings:
    """This module's tests always run on PostgreSQL (a fresh database each)."""
    return Settings(data_dir=tmp_path, database_url=postgres_url,
                    secret="test-secret-" + "x" * 20, rate_per_ip=0, rate_per_website=0,
                    sse_heartbeat=30.0, batch_delay_ms=1.0)


def admin_execute(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run ``sql`` on an admin connection of its own (not Pulse's)."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def terminate_connections(url: str) -> int:
    """Kill every server-side backend of Pulse's database; return how many there were."""
    rows = admin_execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE datname = %s AND pid <> pg_backend_pid()", database_name(url))
    return len(rows)


@pytest.fixture
def unreachable(postgres_url: str) -> Iterator[Any]:
    """A switch that makes the database refuse connections (and drops the open ones)."""
    name = database_name(postgres_url)

    def switch(refuse: bool) -> None:
        admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if refuse else "true"}')
        if refuse:
            terminate_connections(postgres_url)

    yield switch
    switch(False)


async def health(http_client: Any, base_url: str) -> tuple[int, dict[str, Any]]:
    response = await http_client.fetch(base_url + "/healthz", raise_error=False)
    return response.code, json.loads(response.body)


@pytest.mark.gen_test
async def test_dropped_connections_are_reestablished(http_client: Any, base_url: str,
                                                     website: Website, token: str,
                                                     postgres_url: str) -> None:
    first = await post_event(http_client, base_url, event_body(website.id, pathname="/one"))
    assert first.code == 202
    assert terminate_connections(postgres_url) >= 2  # the writer's and the loop's
    second = await post_event(http_client, base_url, event_body(website.id, pathname="/two"))
    assert second.code == 202, second.body
    assert json.loads(second.body)["id"] == 2

    terminate_connections(postgres_url)
    assert (await health(http_client, base_url))[0] == 200
    terminate_connections(postgres_url)
    reader = SSEReader(f"{base_url}/admin/analytics/live?website_id={website.id}",
                       {"Authorization": f"Bearer {token}", "Last-Event-ID": "0"}).start()
    try:
        await reader.wait_for(lambda r: len(r.of_type("new_event")) >= 2)
        assert [f.data["data"]["pathname"] for f in reader.of_type("new_event")] == [
            "/one", "/two"]
    finally:
        reader.close()
    assert [(e.seq, e.pathname) for e in Event.select().order_by(Event.seq)] == [
        (1, "/one"), (2, "/two")]


@pytest.mark.gen_test
async def test_an_unreachable_database_answers_503_and_loses_nothing(
        http_client: Any, base_url: str, website: Website, token: str,
        unreachable: Any) -> None:
    acknowledged: list[int] = []
    response = await post_event(http_client, base_url, event_body(website.id, pathname="/a"))
    assert response.code == 202
    acknowledged.append(json.loads(response.body)["id"])
    unlooked = create_website("unlooked.example.org")  # the tracking cache has not seen it

    unreachable(True)
    for site in (website.id, unlooked.id):
        response = await post_event(http_client, base_url, event_body(site, pathname="/down"))
        assert response.code == 503, response.body
        assert int(response.headers["Retry-After"]) >= 1
        assert "error" in json.loads(response.body)
    stream = await http_client.fetch(
        f"{base_url}/admin/analytics/live?website_id={website.id}", raise_error=False,
        headers={"Authorization": f"Bearer {token}"})
    assert stream.code == 503 and int(stream.headers["Retry-After"]) >= 1
    code, body = await health(http_client, base_url)
    assert code == 503
    assert body["status"] == "unhealthy"
    assert body["database"].startswith("error: OperationalError")
    assert "connections" in body["database"]  # PostgreSQL's reason, passed on

    unreachable(False)
    # After a failed attempt Pulse waits a moment (PostgresDatabase.retry_delay) before the
    # next one: /healthz turns 200 by itself, within a few polls.
    for _ in range(100):
        code, body = await health(http_client, base_url)
        if code == 200:
            break
        await asyncio.sleep(0.1)
    assert (code, body["database"], body["writer"]) == (200, "ok", "ok")
    for site in (website.id, unlooked.id):
        response = await post_event(http_client, base_url, event_body(site, pathname="/up"))
        assert response.code == 202, response.body
        acknowledged.append(json.loads(response.body)["id"])
    assert acknowledged == [1, 2, 1]
    stored = [(e.website_id, e.seq, e.pathname) for e in Event.select().order_by(Event.id)]
    assert stored == [(website.id, 1, "/a"), (website.id, 2, "/up"), (unlooked.id, 1, "/up")]


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT, check=True,
                          capture_output=True, text=True, input=stdin, env=env).stdout.strip()


@pytest.mark.slow
def test_the_cli_and_the_server_run_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    """`create-user`, `create-website`, `create-token` and `serve` on PULSE_DATABASE_URL."""
    env = {**os.environ, "PULSE_DATA_DIR": str(tmp_path), "PULSE_DATABASE_URL": postgres_url}
    cli(env, "create-user", "ada@example.com", "--password-stdin", stdin="long enough pw\n")
    website_id = cli(env, "create-website", "example.com").splitlines()[-1]
    token = cli(env, "create-token", "ada@example.com").splitlines()[-1]
    assert token.startswith("pulse_")
    port = free_port()
    proc = start_server(tmp_path, port, PULSE_DATABASE_URL=postgres_url)
    try:
        import urllib.request
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/web/analytics/track", method="POST",
            data=event_body(website_id, pathname="/pg"),
            headers={"Content-Type": "application/json",
                     "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
            assert json.loads(response.read())["id"] == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            assert json.loads(response.read())["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert not (tmp_path / "pulse.db").exists()  # the rows are in PostgreSQL
    with psycopg.connect(postgres_url) as conn:
        stored = conn.execute('SELECT website_id, seq, pathname FROM "event"').fetchall()
    assert stored == [(website_id, 1, "/pg")]


@pytest.mark.slow
def test_two_servers_on_one_database_share_each_websites_sequence(tmp_path: Path,
                                                                   postgres_url: str) -> None:
    """Two `pulse serve` processes write one website's events concurrently: the ids are
    1..N, each handed out once, and commit order is id order (the counter row serialises)."""
    env = {**os.environ, "PULSE_DATA_DIR": str(tmp_path), "PULSE_DATABASE_URL": postgres_url}
    website_id = cli(env, "create-website", "example.com").splitlines()[-1]
    other_id = cli(env, "create-website", "other.example.org").splitlines()[-1]
    ports = [free_port(), free_port()]
    procs = [start_server(tmp_path / f"server{i}", port, PULSE_DATABASE_URL=postgres_url,
                          PULSE_SECRET="s" * 32)
             for i, port in enumerate(ports)]
    answers: dict[str, list[int]] = {website_id: [], other_id: []}

    async def load() -> None:
        import aiohttp
        async with aiohttp.ClientSession() as session:
            async def one(i: int) -> None:
                site = website_id if i % 3 else other_id
                async with session.post(
                        f"http://127.0.0.1:{ports[i % 2]}/web/analytics/track",
                        data=event_body(site, pathname=f"/{i}"),
                        headers={"Content-Type": "application/json",
                                 "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) "
                                               "Chrome/126.0 Safari/537.36"}) as response:
                    assert response.status == 202, await response.text()
                    answers[site].append((await response.json())["id"])
            await asyncio.gather(*(one(i) for i in range(300)))

    try:
        asyncio.run(load())
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)
    assert sorted(answers[website_id]) == list(range(1, 201))
    assert sorted(answers[other_id]) == list(range(1, 101))
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute('SELECT website_id, seq FROM "event" ORDER BY id').fetchall()
        counters = dict(conn.execute('SELECT website_id, last_seq FROM "event_counter"'))
    assert counters == {website_id: 200, other_id: 100}
    for site, count in counters.items():
        # Rows were inserted in sequence order too: one website's writers never overlap.
        assert [seq for s, seq in rows if s == site] == list(range(1, count + 1))


def test_what_is_retried_after_a_lost_connection(postgres_url: str) -> None:
    """Outside a transaction the statement is retried on a new connection (the server said it
    never ran it); inside one the error goes up, nothing of it is kept, and the connection
    after it is new."""
    import peewee

    from models import setup_database
    from models.db import database

    setup_database(postgres_url)
    db = database.obj
    try:
        terminate_connections(postgres_url)
        Website.create(name="after a drop", domain="a.example")  # an INSERT, retried
        with pytest.raises(peewee.OperationalError), db.atomic():
            Website.create(name="in a transaction", domain="b.example")
            terminate_connections(postgres_url)
            Website.create(name="never", domain="c.example")
        assert [w.name for w in Website.select().order_by(Website.name)] == ["after a drop"]
    finally:
        db.close()


def test_connection_attempts_pause_after_one_fails(postgres_url: str, unreachable: Any) -> None:
    """An outage costs one connection attempt per pause, not one per statement."""
    import peewee

    from models.db import database, open_database

    setup = open_database(postgres_url)
    setup.retry_delay = 3600.0
    try:
        unreachable(True)
        with pytest.raises(peewee.OperationalError, match="not currently accepting connections"):
            Website.select().count()
        unreachable(False)
        # The server would answer now, but nobody asks it before the pause ends.
        with pytest.raises(peewee.OperationalError, match="next attempt within 3600 s"):
            Website.select().count()
        assert open_database(postgres_url).execute_sql("SELECT 1").fetchone() == (1,)
    finally:
        database.obj.close()


@pytest.mark.slow
def test_sigkill_on_postgres_loses_no_acknowledged_event(tmp_path: Path,
                                                        postgres_url: str) -> None:
    """Full-speed ingest into PostgreSQL, SIGKILL after 500 acknowledgements: every 202 is in
    the table exactly once, and a restarted server continues the website's sequence."""
    import signal

    import aiohttp

    from tests.test_durability import Load

    env = {**os.environ, "PULSE_DATA_DIR": str(tmp_path), "PULSE_DATABASE_URL": postgres_url}
    website_id = cli(env, "create-website", "example.com").splitlines()[-1]
    port = free_port()
    proc = start_server(tmp_path, port, PULSE_DATABASE_URL=postgres_url)
    load = Load(port, website_id)

    async def drive() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=aiohttp.ClientTimeout(total=30)) as session:
            task = asyncio.create_task(load.run(session, total=20_000, workers=64))
            while len(load.acknowledged) < 500 and not task.done():
                await asyncio.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            await task

    try:
        asyncio.run(drive())
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(load.acknowledged) >= 500 and load.failed > 0
    with psycopg.connect(postgres_url) as conn:
        stored = dict(conn.execute('SELECT seq, pathname FROM "event"').fetchall())
    assert {seq: stored.get(seq) for seq in load.acknowledged} == load.acknowledged
    assert len(set(stored.values())) == len(stored)  # none stored twice
    assert sorted(stored) == list(range(1, len(stored) + 1))  # no gap: commits are whole

    restarted = start_server(tmp_path, port, PULSE_DATABASE_URL=postgres_url)
    try:
        async def one_more() -> None:
            async with aiohttp.ClientSession() as session:
                await Load(port, website_id).one(session, 10**6)

        asyncio.run(one_more())
        with psycopg.connect(postgres_url) as conn:
            newest = conn.execute('SELECT seq, pathname FROM "event" ORDER BY seq DESC'
                                  ' LIMIT 1').fetchone()
        assert newest == (len(stored) + 1, f"/load/{10**6}")
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
