"""The hub: subscribe-and-replay as one call, reset for ids it cannot honour, gaps refilled from
the store, one website's failure kept to itself, replay memory bounded in bytes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from backend.live.hub import EventStore, Hub, HubMessage, record_size
from models.entities import now_ms
from models.records import EventRecord


def record(seq: int, website_id: str = "w", pathname: str = "", **props: Any) -> EventRecord:
    return EventRecord(seq, website_id, now_ms(), "pageview", pathname or f"/p{seq}", f"v{seq}",
                       f"s{seq}", "", "direct", "", "", None, "desktop", "Chrome", "Linux", "",
                       props)


class MemoryStore:
    """Committed events in memory, read the way models.reports reads them."""

    def __init__(self) -> None:
        self.events: list[EventRecord] = []
        self.reads = 0

    def commit(self, *events: EventRecord) -> list[EventRecord]:
        self.events.extend(events)
        return list(events)

    def events_after(self, website_id: str, after: int, limit: int) -> list[EventRecord]:
        self.reads += 1
        return [e for e in self.events if e.website_id == website_id and e.id > after][:limit]

    def events_since(self, website_id: str, since: int, limit: int) -> list[EventRecord]:
        return [e for e in self.events if e.website_id == website_id and e.ts >= since][-limit:]

    def last_seq(self, website_id: str) -> int:
        return max((e.id for e in self.events if e.website_id == website_id), default=0)

    def hub(self, **options: Any) -> Hub:
        return Hub(store=EventStore(self.events_after, self.events_since, self.last_seq),
                   **options)


class Received:
    """A listener that keeps what it was given."""

    def __init__(self) -> None:
        self.messages: list[HubMessage] = []

    def __call__(self, message: HubMessage) -> None:
        self.messages.append(message)

    @property
    def kinds(self) -> list[str]:
        return [m.kind for m in self.messages]

    @property
    def ids(self) -> list[int]:
        return [e.id for m in self.messages if m.kind == "events" for e in m.events]


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never became true")


@pytest.mark.asyncio
async def test_replay_then_live_with_no_gap_and_no_repeat() -> None:
    store = MemoryStore()
    hub = store.hub()
    hub.publish(store.commit(*(record(i) for i in range(1, 6))))
    received = Received()
    unsubscribe = await hub.subscribe_and_replay("w", received, after=2)
    hub.publish(store.commit(record(6)))
    assert received.kinds[0] == "connected"
    assert received.ids == [3, 4, 5, 6]
    unsubscribe()
    hub.publish(store.commit(record(7)))
    assert received.ids == [3, 4, 5, 6]


@pytest.mark.asyncio
async def test_live_events_arriving_during_the_replay_follow_it_once() -> None:
    store = MemoryStore()
    hub = store.hub(replay_bytes=1)  # nothing buffered: the replay is read from the store
    hub.publish(store.commit(*(record(i) for i in range(1, 11))))
    received = Received()
    published = iter(range(11, 14))

    async def drained() -> bool:  # each replay piece: one more event goes live meanwhile
        seq = next(published, None)
        if seq is not None:
            hub.publish(store.commit(record(seq)))
        return True

    piece = record_size(record(1)) * 3
    await hub.subscribe_and_replay("w", received, after=0, piece_bytes=piece, drained=drained)
    hub.publish(store.commit(record(14)))
    assert received.ids == list(range(1, 15))
    assert len([m for m in received.messages if m.kind == "events"]) > 3  # it came in pieces


@pytest.mark.asyncio
async def test_a_subscriber_holding_too_much_during_its_replay_reads_the_store_instead() -> None:
    store = MemoryStore()
    hub = store.hub(replay_bytes=1, hold_bytes=record_size(record(1)) * 2)
    hub.publish(store.commit(*(record(i) for i in range(1, 5))))
    received = Received()
    burst = iter([list(range(5, 25)), list(range(25, 30))])

    async def drained() -> bool:
        seqs = next(burst, [])
        hub.publish(store.commit(*(record(i) for i in seqs)))
        return True

    await hub.subscribe_and_replay("w", received, after=0, piece_bytes=1, drained=drained)
    hub.publish(store.commit(record(30)))
    assert received.ids == list(range(1, 31))


@pytest.mark.asyncio
async def test_an_id_ahead_of_the_newest_event_gets_a_reset_then_live_events() -> None:
    store = MemoryStore()
    hub = store.hub()
    hub.publish(store.commit(record(1, pathname="/seen")))
    received = Received()
    await hub.subscribe_and_replay("w", received, after=500)
    hub.publish(store.commit(record(2)))
    assert received.kinds == ["reset", "events"]
    assert received.messages[0].stats["recentEvents"][0]["pathname"] == "/seen"
    assert received.ids == [2]


@pytest.mark.asyncio
async def test_an_id_committed_but_not_yet_delivered_here_is_not_a_reset() -> None:
    store = MemoryStore()
    hub = store.hub()
    hub.publish(store.commit(record(1)))
    store.commit(record(2), record(3))  # on the bus, not here yet
    received = Received()
    await hub.subscribe_and_replay("w", received, after=3)
    hub.publish([record(2), record(3), record(4)])
    assert received.kinds == ["connected", "events"]
    assert received.ids == [4]


@pytest.mark.asyncio
async def test_an_id_older_than_what_can_be_replayed_gets_a_reset() -> None:
    store = MemoryStore()
    hub = store.hub()
    hub.publish(store.commit(*(record(i) for i in range(1, 21))))
    received = Received()
    await hub.subscribe_and_replay("w", received, after=3, limit=10)
    hub.publish(store.commit(record(21)))
    assert received.kinds == ["reset", "events"]
    assert received.messages[0].stats["currentVisitors"] == 20
    assert received.ids == [21]


@pytest.mark.asyncio
async def test_a_gap_is_refilled_from_the_store_in_order() -> None:
    store = MemoryStore()
    hub = store.hub()
    received = Received()
    await hub.subscribe_and_replay("w", received)
    hub.publish(store.commit(record(1), record(2)))
    store.commit(record(3), record(4))  # their publish was lost
    hub.publish(store.commit(record(5)))
    hub.publish(store.commit(record(6)))  # arrives while the store is read
    await until(lambda: received.ids[-1:] == [6])
    assert received.ids == [1, 2, 3, 4, 5, 6]
    assert hub.refills == 1


@pytest.mark.asyncio
async def test_a_refill_holding_too_much_reads_the_store_again() -> None:
    store = MemoryStore()
    gate = threading.Event()
    read = store.events_after

    def slow_read(website_id: str, after: int, limit: int) -> list[EventRecord]:
        gate.wait(10)
        return read(website_id, after, limit)

    store.events_after = slow_read  # type: ignore[method-assign]
    hub = store.hub(hold_bytes=record_size(record(1)) * 3)
    received = Received()
    hub.subscribe("w", received)
    store.commit(record(1))  # lost
    hub.publish(store.commit(record(2)))  # a gap: the refill waits for the store
    await asyncio.sleep(0.05)
    for i in range(3, 20):  # more than it may hold: the rest is read from the store
        hub.publish(store.commit(record(i)))
    assert len(hub._refilling["w"]) < 17
    gate.set()
    await until(lambda: received.ids[-1:] == [19])
    assert received.ids == list(range(1, 20))


@pytest.mark.asyncio
async def test_the_periodic_check_refills_a_website_that_fell_behind() -> None:
    store = MemoryStore()
    hub = store.hub()
    received = Received()
    await hub.subscribe_and_replay("w", received)
    store.commit(record(1), record(2))  # committed, never published
    hub.check({"w": 2})
    await until(lambda: received.ids == [1, 2])
    hub.check({"w": 2})  # caught up: nothing more to read
    await asyncio.sleep(0.3)
    assert received.ids == [1, 2] and hub.refills == 1


@pytest.mark.asyncio
async def test_a_website_nobody_watches_is_not_refilled() -> None:
    store = MemoryStore()
    hub = store.hub()
    store.commit(record(1), record(2))
    hub.check({"w": 2})
    await until(lambda: hub.last_delivered("w") == 2)
    assert store.reads == 0


@pytest.mark.asyncio
async def test_one_websites_failure_never_costs_another_its_events() -> None:
    hub = Hub()
    broken = hub.stats("a")

    def fail(events: Any) -> None:
        raise RuntimeError("a broken window")

    broken.add_all = fail  # type: ignore[method-assign]
    received = Received()
    hub.subscribe("b", received)
    hub.publish([record(1, "a"), record(1, "b"), record(2, "a"), record(2, "b")])
    assert received.ids == [1, 2]


def test_replay_buffers_are_bounded_in_bytes_and_the_least_recent_go_first() -> None:
    size = record_size(record(1, "a", x="y" * 1000))
    hub = Hub(replay_bytes=size * 5 + 50, replay_memory=size * 12 + 120)  # sizes vary a little
    for website_id in ("a", "b", "c"):
        hub.publish([record(i, website_id, x="y" * 1000) for i in range(1, 11)])
    assert hub.buffered_bytes <= size * 12 + 120
    assert hub._buffers["c"].size <= size * 5 + 50 and hub._buffers["c"].floor == 5
    assert "a" not in hub._buffers  # the least recently active website went first
    assert list(hub._buffers) == ["b", "c"]


def test_idle_websites_lose_their_replay_buffer() -> None:
    hub = Hub(replay_idle=0.0)
    hub.publish([record(1, "a")])
    assert hub.buffered_bytes > 0
    hub.tick()
    assert hub.buffered_bytes == 0 and not hub._buffers


@pytest.mark.asyncio
async def test_the_live_window_is_seeded_off_the_loop_without_losing_what_arrives_meanwhile(
) -> None:
    store = MemoryStore()
    store.commit(record(1), record(2))
    hub = store.hub()
    hub.start_from({"w": 2})
    seeding = asyncio.ensure_future(hub.window("w"))
    await asyncio.sleep(0)
    hub.publish(store.commit(record(3)))
    stats = await seeding
    assert [e.id for e in stats.recent_events()] == [3, 2, 1]
