"""The SSE side of the live view: the frames' bytes, LiveStream (one connection's outgoing
queue, a hub listener) and LiveStreams (all of them, with heartbeats and the flush tick).

Fan-out is the hot path: with a thousand subscribers per website, the work per event and per
subscriber must be tiny. A hub message is encoded once (the first stream that needs it keeps the
bytes in ``HubMessage.frame``), each stream queues it and asks for a flush; the flush, at most
once every ``flush_interval`` seconds, writes what a stream queued in one ``send``. A busy stream
keeps queueing, and a client whose queue passes the backlog bound is disconnected: the others
never wait for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from tornado.iostream import IOStream

from backend.live.hub import HubMessage
from backend.metrics import Metrics
from models.records import EventRecord

log = logging.getLogger("pulse.sse")

HEARTBEAT = b": heartbeat\n\n"
RETRY = b"retry: 3000\n\n"
FLUSH_INTERVAL = 0.01
CLOSE_GRACE = 5.0  # seconds a closing stream may take to send what it still holds
REPLAY_DRAIN_TIMEOUT = 30.0  # seconds a replaying client may take nothing before it is dropped

Write = Callable[[bytes], "asyncio.Future[None] | None"]


def encode_frame(kind: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    """One SSE frame: an optional ``id:`` line and a ``data:`` line holding ``{type, data}``."""
    body = json.dumps({"type": kind, "data": data}, ensure_ascii=False, separators=(",", ":"))
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {body}\n\n".encode()


_PLAIN = (str, int, bool, type(None))


def encode_event(event: EventRecord) -> bytes:
    """The ``new_event`` frame of a committed event.

    orjson writes the same bytes as ``json.dumps(ensure_ascii=False)`` with compact separators
    for strings, integers, booleans and null, more than ten times faster; floats (``1e-07``
    against ``1e-7``) and anything nested go through ``encode_frame``, so the frame never
    changes.
    """
    if all(type(value) in _PLAIN for value in event.props.values()):
        try:
            body = orjson.dumps({"type": "new_event", "data": event.to_json()})
        except (orjson.JSONEncodeError, TypeError):  # e.g. an integer past 64 bits
            pass
        else:
            return b"id: %d\ndata: %s\n\n" % (event.id, body)
    return encode_frame("new_event", event.to_json(), event.id)


def frame_of(message: HubMessage) -> bytes:
    """The SSE bytes of a hub message, encoded once and kept on the message."""
    if not message.frame:
        if message.kind == "events":
            message.frame = b"".join(encode_event(event) for event in message.events)
        else:
            message.frame = encode_frame(message.kind, message.stats)
    return message.frame


class _Flushable(Protocol):
    dirty: bool

    def flush(self) -> None: ...


class LiveStream:
    """The outgoing side of one SSE connection.

    ``write`` hands bytes to the connection and returns None when they all went out at once,
    else a future that completes once they did; only one write is in flight at a time.
    ``finish`` closes the connection (after what was written has been sent).
    """

    def __init__(
        self,
        website_id: str,
        user_id: int,
        write: Write,
        finish: Callable[[], None],
        *,
        max_backlog: int,
        metrics: Metrics,
        scheduler: LiveStreams | None = None,
        abort: Callable[[], None] | None = None,
    ) -> None:
        self.website_id = website_id
        self.user_id = user_id
        self._write = write
        self._finish = finish
        self._max_backlog = max_backlog
        self._metrics = metrics
        self._scheduler = scheduler
        self._abort = abort
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._counters: dict[str, Any] = {}
        # Frames counted per kind, added to the metrics by the flush tick (not per message).
        self._tally: defaultdict[str, int] = scheduler.tally if scheduler is not None \
            else defaultdict(int)
        self._done = False
        self._writing = False
        self._started = False
        self.dirty = False
        self.opened = time.monotonic()
        self.last_write = self.opened
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.last_event_id = 0

    @property
    def backlog(self) -> int:
        """Bytes queued and not yet handed to the socket (a client is dropped when they pass
        the bound while its previous write is still in flight)."""
        return self._pending_bytes

    def send(self, frame: bytes, kind: str = "new_event", count: int = 1) -> None:
        """Queue ``frame`` (``count`` frames of type ``kind``) for this client; it goes out with
        the next flush."""
        if self.closed.done():
            return
        counter = self._counters.get(kind)
        if counter is None:
            counter = self._counters[kind] = self._metrics.sse_frames.labels(kind)
        counter.inc(count)
        if self._queue(frame) and not self._writing and not self.dirty:
            if self._scheduler is not None and self._started:
                self._scheduler.mark(self)
            else:  # the headers and the connected frame go out at once
                self.dirty = True
                asyncio.get_running_loop().call_soon(self.flush)

    def on_message(self, message: HubMessage) -> None:
        """The hub's listener: queue the message's frames (encoded once for every stream).
        This runs once per message and subscriber: it only queues and counts."""
        if self._done:
            return
        frame = message.frame or frame_of(message)
        tally = self._tally
        if message.kind == "events":
            tally["new_event"] += len(message.events)
            self.last_event_id = message.events[-1].id
        else:
            tally[message.kind] += 1
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        if self._writing:  # the client has not taken the last write yet: it may fall behind
            if self._pending_bytes > self._max_backlog:
                self._overflow()
        elif not self.dirty:
            if self._scheduler is not None and self._started:
                self._scheduler.mark(self)
            else:
                self.dirty = True
                asyncio.get_running_loop().call_soon(self.flush)

    def _queue(self, data: bytes) -> bool:
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._writing and self._pending_bytes > self._max_backlog:
            self._overflow()
            return False
        return True

    def _overflow(self) -> None:
        log.warning("dropping a live stream of %s: %d bytes behind", self.website_id,
                    self._pending_bytes)
        self.close("backlog")

    def flush(self) -> None:
        """Write everything queued in one write, unless a write is still in flight."""
        self.dirty = False
        if self.closed.done() or self._writing or not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        self._pending_bytes = 0
        self._start_write(data)

    def _start_write(self, data: bytes) -> None:
        self._started = True
        self.last_write = time.monotonic()
        try:
            future = self._write(data)
        except Exception:  # the connection went away under us
            self.close("gone")
            return
        if future is not None:
            self._writing = True
            future.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[None]) -> None:
        self._writing = False
        if future.cancelled() or future.exception() is not None:
            self.close("gone")
        elif self._pending:
            self.flush()

    def close(self, reason: str, final: bytes = b"") -> None:
        """End the stream (client gone, backlog, shutdown), writing ``final`` last if the client
        is still there; safe to call more than once."""
        if self.closed.done():
            return
        self._done = True
        self.closed.set_result(reason)
        self._pending.clear()
        self._pending_bytes = 0
        self._metrics.sse_disconnects.labels(reason).inc()
        self._metrics.sse_connection_seconds.observe(time.monotonic() - self.opened)
        try:
            if final and reason != "gone":
                self._write(final)
        except Exception:
            log.debug("writing the last frame of a stream failed", exc_info=True)
        try:
            if reason == "backlog" and self._abort is not None:
                self._abort()  # a stalled client would never take what is still queued
            else:
                self._finish()
        except Exception:
            log.debug("finishing a closed stream failed", exc_info=True)

    @property
    def idle(self) -> bool:
        """Nothing queued, scheduled or in flight."""
        return not (self._pending or self._writing or self.dirty)

    async def drained(self, timeout: float) -> bool:
        """Wait until everything queued went to the socket; False if the stream closed, or was
        closed for backlog because the client took nothing for ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.closed.done() and not self.idle:
            if time.monotonic() > deadline:
                self.close("backlog")
                break
            await asyncio.sleep(0.005)
        return not self.closed.done()


class LiveStreams:
    """Every open stream: per-user counts, the flush tick, heartbeats,
    and closing them all at shutdown."""

    def __init__(self, metrics: Metrics, heartbeat: float,
                 flush_interval: float = FLUSH_INTERVAL) -> None:
        self._metrics = metrics
        self.heartbeat = heartbeat
        self.flush_interval = flush_interval
        self._streams: set[LiveStream] = set()
        self._per_user: dict[int, int] = defaultdict(int)
        self._dirty: list[_Flushable] = []
        self.tally: defaultdict[str, int] = defaultdict(int)  # frames sent since the last tick
        self._flush_handle: asyncio.Handle | None = None
        self._last_flush = 0.0

    def __len__(self) -> int:
        return len(self._streams)

    def count_for_user(self, user_id: int) -> int:
        """Open streams of one user."""
        return self._per_user.get(user_id, 0)

    def add(self, stream: LiveStream) -> None:
        """Register an open stream; it is forgotten when it closes."""
        self._streams.add(stream)
        self._per_user[stream.user_id] += 1
        self._metrics.live_connections.labels(stream.website_id).inc()
        stream.closed.add_done_callback(lambda _: self.remove(stream))

    def remove(self, stream: LiveStream) -> None:
        """Forget a closed stream."""
        if stream not in self._streams:
            return
        self._streams.discard(stream)
        self._per_user[stream.user_id] -= 1
        if self._per_user[stream.user_id] <= 0:
            del self._per_user[stream.user_id]
        self._metrics.live_connections.labels(stream.website_id).dec()

    def mark(self, item: _Flushable) -> None:
        """Flush ``item`` with the next tick: at once if the last flush is ``flush_interval``
        old, else when it will be (frames arriving meanwhile share the write)."""
        item.dirty = True
        self._dirty.append(item)
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            delay = self._last_flush + self.flush_interval - loop.time()
            if delay > 0:
                self._flush_handle = loop.call_later(delay, self._flush)
            else:
                self._flush_handle = loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        self._last_flush = asyncio.get_running_loop().time()
        dirty, self._dirty = self._dirty, []
        for item in dirty:
            try:
                item.flush()
            except Exception:
                log.exception("flushing live streams failed")
        self.count_frames()

    def count_frames(self) -> None:
        """Add the frames tallied since the last call to the metrics."""
        if self.tally:
            for kind, count in self.tally.items():
                self._metrics.sse_frames.labels(kind).inc(count)
            self.tally.clear()

    def beat(self) -> None:
        """Send a heartbeat comment to every stream that has been quiet for a period."""
        quiet_since = time.monotonic() - self.heartbeat * 0.9
        for stream in list(self._streams):
            if stream.last_write <= quiet_since:
                stream.send(HEARTBEAT, "heartbeat")

    def close_website(self, website_id: str, reason: str) -> None:
        """Close every stream of one website (it was deleted)."""
        for stream in [s for s in self._streams if s.website_id == website_id]:
            stream.close(reason)

    def close_all(self, reason: str = "shutdown") -> None:
        """Close every stream, telling clients when to reconnect."""
        for stream in list(self._streams):
            stream.close(reason, final=b"retry: 2000\n\n")


class SocketWriter:
    """Writes to a detached IOStream: straight to its socket when nothing is queued there, the
    rest through the IOStream, which sends it when the socket can take more."""

    def __init__(self, iostream: IOStream) -> None:
        self._iostream = iostream
        # Frames are already coalesced per flush: let each go out now, not after an ACK.
        iostream.set_nodelay(True)

    def write(self, data: bytes) -> asyncio.Future[None] | None:
        """Send ``data``; None if the socket took it all, else a future for the rest."""
        iostream = self._iostream
        if not iostream.writing():
            try:
                sent = iostream.socket.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent == len(data):
                return None
            return iostream.write(memoryview(data)[sent:])  # type: ignore[return-value]
        return iostream.write(data)  # type: ignore[return-value]

    def close(self) -> None:
        """Close the connection once what is queued has been sent (at most a few seconds on)."""
        iostream = self._iostream
        if iostream.closed():
            return
        if iostream.writing():
            iostream.write(b"").add_done_callback(lambda _: iostream.close())
            asyncio.get_running_loop().call_later(CLOSE_GRACE, iostream.close)
        else:
            iostream.close()

    def abort(self) -> None:
        """Close the connection now, dropping whatever is still queued."""
        self._iostream.close()
