"""EventWriter: group commit, failure isolation, draining on close and on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from backend.ingest.writer import EventWriter, WriterClosed
from backend.metrics import Metrics
from models.entities import Event, Website
from models.records import EventRecord, NewEvent
from models.websites import create_website, delete_website
from tests.conftest import BROWSER_UA, sqlite_only
from tests.server_support import cli, free_port, start_server, wait_pending


def new_event(website_id: str, n: int) -> NewEvent:
    return NewEvent(website_id=website_id, ts=1_700_000_000_000 + n, event_type="pageview",
                    pathname=f"/p/{n}", visitor_id=f"v{n}", session_id=f"s{n}")


@pytest.mark.gen_test
async def test_concurrent_writes_share_transactions(services: Any, website: Website) -> None:
    published: list[EventRecord] = []
    metrics = Metrics()
    writer = EventWriter(published.extend, metrics, batch_size=100, batch_delay=0.01)
    records = await asyncio.gather(*(writer.write(new_event(website.id, n)) for n in range(250)))
    assert [r.pathname for r in records] == [f"/p/{n}" for n in range(250)]
    assert len({r.id for r in records}) == 250
    assert Event.select().count() == 250
    assert published == sorted(published, key=lambda r: r.id)  # published after commit, in order
    assert [r.id for r in published] == [r.id for r in records]
    batches = metrics.batch_size.collect()[0].samples
    count = next(s.value for s in batches if s.name.endswith("_count"))
    assert count <= 4  # 250 events in a few transactions, not 250
    await writer.close()


@pytest.mark.gen_test
async def test_an_event_for_a_deleted_website_fails_alone(services: Any, website: Website) -> None:
    doomed = create_website("doomed.example.net")
    writer = EventWriter(lambda _: None, Metrics(), batch_size=10, batch_delay=0.05)
    good = writer.write(new_event(website.id, 1))
    bad = writer.write(new_event(doomed.id, 2))
    delete_website(doomed.id)
    results = await asyncio.gather(good, bad, return_exceptions=True)
    assert isinstance(results[0], EventRecord)
    assert isinstance(results[1], LookupError)
    assert Event.select().count() == 1
    await writer.close()


@pytest.mark.gen_test
async def test_a_failing_store_fails_its_requests_and_marks_the_writer(services: Any,
                                                                     website: Website) -> None:
    def broken(events: Any) -> list[int | None]:
        raise OSError("disk full")

    writer = EventWriter(lambda _: None, Metrics(), store=broken)
    with pytest.raises(OSError):
        await writer.write(new_event(website.id, 1))
    assert not writer.alive
    await writer.close()


@pytest.mark.gen_test
async def test_close_commits_everything_accepted(services: Any, website: Website) -> None:
    writer = EventWriter(lambda _: None, Metrics(), batch_size=1000, batch_delay=10.0)
    pending = [asyncio.ensure_future(writer.write(new_event(website.id, n))) for n in range(50)]
    await asyncio.sleep(0)
    await writer.close()
    assert all(p.done() and not p.exception() for p in pending)
    assert Event.select().count() == 50
    with pytest.raises(WriterClosed):
        await writer.write(new_event(website.id, 99))


@pytest.mark.slow
@sqlite_only
def test_sigterm_drains_every_accepted_event(tmp_path: Path) -> None:
    """Load the server, SIGTERM it mid-stream: every event answered 202 is stored, once."""
    website_id = cli(tmp_path, "create-website", "example.com")
    port = free_port()
    # A long batch delay keeps accepted events waiting in the writer when the signal lands.
    proc = start_server(tmp_path, port, PULSE_BATCH_DELAY_MS="3000", PULSE_BATCH_SIZE="100000")
    acknowledged: list[int] = []
    failed = 0

    async def load() -> None:
        nonlocal failed
        import aiohttp
        body = {"website_id": website_id, "event_type": "pageview", "pathname": "/x",
                "visitor_id": "v", "session_id": "s"}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def one(i: int) -> None:
                nonlocal failed
                try:
                    async with session.post(f"http://127.0.0.1:{port}/web/analytics/track",
                                            json={**body, "pathname": f"/x/{i}"},
                                            headers={"User-Agent": BROWSER_UA}) as response:
                        if response.status == 202:
                            acknowledged.append((await response.json())["id"])
                        else:
                            failed += 1
                except aiohttp.ClientError:
                    failed += 1
            tasks = [asyncio.create_task(one(i)) for i in range(300)]
            await wait_pending(session, port, 300, tries=1000)  # all wait for their batch
            proc.send_signal(signal.SIGTERM)
            await asyncio.gather(*tasks)

    asyncio.run(load())
    assert proc.wait(timeout=15) == 0
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert "shutting down" in output
    import sqlite3
    with sqlite3.connect(tmp_path / "pulse.db") as db:
        stored = [row[0] for row in db.execute("SELECT seq FROM event")]
    assert len(acknowledged) == 300  # they were all accepted before the signal
    assert sorted(stored) == sorted(acknowledged)  # all acknowledged, none twice, none extra
    assert len(acknowledged) + failed == 300
