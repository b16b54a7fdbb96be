"""LiveStream as a hub listener: each message encoded once for every stream, one write per
flush, a slow client dropped at its backlog bound without holding up the others."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from backend.live.hub import Hub
from backend.live.sse import LiveStream, LiveStreams, encode_event
from backend.metrics import Metrics
from models.records import EventRecord


def record(event_id: int, website_id: str = "w1") -> EventRecord:
    return EventRecord(event_id, website_id, 1_700_000_000_000 + event_id, "pageview",
                       f"/p{event_id}", f"v{event_id}", f"s{event_id}", "", "direct", "", "",
                       None, "desktop", "Chrome", "Linux", "", {})


class FakeConnection:
    """A connection whose writes either all go out at once or stay in flight until released."""

    def __init__(self, blocked: bool = False) -> None:
        self.blocked = blocked
        self.writes: list[bytes] = []
        self.in_flight: list[asyncio.Future[None]] = []
        self.finished = False
        self.aborted = False

    def write(self, data: bytes) -> asyncio.Future[None] | None:
        self.writes.append(bytes(data))
        if not self.blocked:
            return None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.in_flight.append(future)
        return future

    def finish(self) -> None:
        self.finished = True

    def abort(self) -> None:
        self.aborted = True

    @property
    def received(self) -> bytes:
        return b"".join(self.writes)


async def open_stream(streams: LiveStreams, hub: Hub, conn: FakeConnection, *,
                      max_backlog: int = 1_000_000) -> LiveStream:
    stream = LiveStream("w1", 1, conn.write, conn.finish, max_backlog=max_backlog,
                        metrics=Metrics(), scheduler=streams, abort=conn.abort)
    streams.add(stream)
    unsubscribe = await hub.subscribe_and_replay("w1", stream.on_message)
    stream.closed.add_done_callback(lambda _: unsubscribe())
    await settle(streams)
    assert b'"type":"connected"' in conn.received
    conn.writes.clear()
    return stream


async def settle(streams: LiveStreams) -> None:
    for _ in range(5):
        await asyncio.sleep(streams.flush_interval + 0.01)


@pytest.mark.asyncio
async def test_every_stream_gets_the_frames_of_a_flush_in_one_write() -> None:
    hub, streams = Hub(), LiveStreams(Metrics(), heartbeat=30, flush_interval=0.02)
    conns = [FakeConnection() for _ in range(3)]
    opened = [await open_stream(streams, hub, conn) for conn in conns]
    assert hub.listener_count("w1") == 3
    hub.publish([record(1)])
    hub.publish([record(2), record(3)])
    await settle(streams)
    expected = b"".join(encode_event(record(i)) for i in (1, 2, 3))
    for conn in conns:
        assert conn.received == expected
    writes = [len(conn.writes) for conn in conns]
    assert writes[0] == writes[1] == writes[2] and writes[0] <= 2
    assert all(stream.last_event_id == 3 for stream in opened)


@pytest.mark.asyncio
async def test_a_message_is_encoded_once_for_every_stream() -> None:
    hub, streams = Hub(), LiveStreams(Metrics(), heartbeat=30, flush_interval=0.02)
    conns = [FakeConnection() for _ in range(2)]
    for conn in conns:
        await open_stream(streams, hub, conn)
    seen: list[Any] = []
    hub.subscribe("w1", seen.append)
    hub.publish([record(1)])
    await settle(streams)
    assert seen[0].frame == encode_event(record(1))  # kept on the message by the first stream
    assert conns[0].writes[0] == conns[1].writes[0]


@pytest.mark.asyncio
async def test_a_client_that_cannot_keep_up_is_dropped_and_the_others_carry_on() -> None:
    hub, streams = Hub(), LiveStreams(Metrics(), heartbeat=30, flush_interval=0.0)
    slow, fast = FakeConnection(), FakeConnection()
    frame_size = len(encode_event(record(1)))
    slow_stream = await open_stream(streams, hub, slow, max_backlog=frame_size * 3)
    slow.blocked = True
    await open_stream(streams, hub, fast)
    for i in range(1, 8):
        hub.publish([record(i)])
        await settle(streams)
    assert slow_stream.closed.done() and slow_stream.closed.result() == "backlog"
    assert slow.aborted and not slow.finished  # closed at once: it would never drain
    assert fast.received == b"".join(encode_event(record(i)) for i in range(1, 8))
    assert len(streams) == 1
    assert hub.listener_count("w1") == 1


@pytest.mark.asyncio
async def test_queued_frames_follow_a_write_in_flight_in_order() -> None:
    hub, streams = Hub(), LiveStreams(Metrics(), heartbeat=30, flush_interval=0.0)
    conn = FakeConnection()
    await open_stream(streams, hub, conn)
    conn.blocked = True
    hub.publish([record(1)])
    await settle(streams)
    hub.publish([record(2)])
    hub.publish([record(3)])
    await settle(streams)
    assert len(conn.writes) == 1  # the first write is still in flight
    conn.in_flight[0].set_result(None)
    await settle(streams)
    assert conn.received == b"".join(encode_event(record(i)) for i in (1, 2, 3))
    assert len(conn.writes) == 2  # what gathered meanwhile went out in one write


@pytest.mark.asyncio
async def test_a_closed_stream_leaves_the_hub() -> None:
    hub, streams = Hub(), LiveStreams(Metrics(), heartbeat=30)
    conns: list[Any] = [FakeConnection(), FakeConnection()]
    members = [await open_stream(streams, hub, conn) for conn in conns]
    members[0].close("gone")
    await asyncio.sleep(0)  # the registry forgets a stream from its closed future's callback
    assert hub.listener_count("w1") == 1 and len(streams) == 1
    members[1].close("shutdown", final=b"retry: 2000\n\n")
    await asyncio.sleep(0)
    assert hub.listener_count("w1") == 0 and len(streams) == 0
    assert conns[1].writes[-1] == b"retry: 2000\n\n" and conns[1].finished
