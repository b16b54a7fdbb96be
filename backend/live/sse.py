"""LiveStream: one SSE connection's outgoing queue; LiveChannel: the streams of one website;
LiveStreams: all of them, with heartbeats and the flush tick.

Fan-out is the hot path: with a thousand subscribers per website, the work per event and per
subscriber must be tiny. So the hub calls one listener per website (its channel), not one per
connection; the channel queues the already encoded frames and asks for a flush; the flush, at most
once every ``flush_interval`` seconds, joins the queued frames once and hands the same bytes to
every stream of the website. A stream that is not busy writes them straight to its socket (one
``send`` per subscriber per flush); a busy one queues them, and a client whose queue passes the
backlog bound is disconnected: the others never wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Protocol

from tornado.iostream import IOStream

from backend.live.hub import Hub, HubMessage, encode_event
from backend.metrics import Metrics

log = logging.getLogger("pulse.sse")

HEARTBEAT = b": heartbeat\n\n"
FLUSH_INTERVAL = 0.01
CLOSE_GRACE = 5.0  # seconds a closing stream may take to send what it still holds
REPLAY_DRAIN_TIMEOUT = 30.0  # seconds a replaying client may take nothing before it is dropped

Write = Callable[[bytes], "asyncio.Future[None] | None"]


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
        self._writing = False
        self._started = False
        self.dirty = False
        self.opened = time.monotonic()
        self.last_write = self.opened
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.last_event_id = 0

    @property
    def backlog(self) -> int:
        """Bytes queued and not yet handed to the socket."""
        return self._pending_bytes

    def send(self, frame: bytes, kind: str = "new_event", count: int = 1) -> None:
        """Queue ``frame`` (``count`` frames of type ``kind``) for this client; it goes out with
        the next flush."""
        if self.closed.done():
            return
        self._metrics.sse_frames.labels(kind).inc(count)
        if self._queue(frame) and not self._writing and not self.dirty:
            if self._scheduler is not None and self._started:
                self._scheduler.mark(self)
            else:  # the headers and the connected frame go out at once
                self.dirty = True
                asyncio.get_running_loop().call_soon(self.flush)

    def push(self, data: bytes) -> None:
        """Write ``data`` now if nothing is queued or in flight, else queue it (the channel's
        fast path: frames counted by the caller)."""
        if self.closed.done():
            return
        if self._writing or self._pending:
            self._queue(data)
            return
        self._start_write(data)

    def _queue(self, data: bytes) -> bool:
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes > self._max_backlog:
            log.warning("dropping a live stream of %s: %d bytes behind", self.website_id,
                        self._pending_bytes)
            self.close("backlog")
            return False
        return True

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


def frames_after(message: HubMessage, last_event_id: int) -> tuple[bytes, int]:
    """The part of an ``events`` message a stream that has seen ``last_event_id`` still needs,
    and how many frames that is."""
    events = message.events
    if not events or events[-1].id <= last_event_id:
        return b"", 0
    if events[0].id > last_event_id:
        return message.frame, len(events)
    fresh = [e for e in events if e.id > last_event_id]
    return b"".join(encode_event(e) for e in fresh), len(fresh)


class LiveChannel:
    """The SSE streams of one website, fed by a single hub listener."""

    def __init__(self, website_id: str, streams: LiveStreams, metrics: Metrics) -> None:
        self.website_id = website_id
        self.members: dict[LiveStream, None] = {}
        self.dirty = False
        self._streams = streams
        self._pending: list[HubMessage] = []
        self._frames = metrics.sse_frames.labels("new_event")
        self._stats_frames = metrics.sse_frames.labels("stats")
        self.unsubscribe: Callable[[], None] = lambda: None

    def on_message(self, message: HubMessage) -> None:
        """Queue a hub message until the next flush."""
        self._pending.append(message)
        if not self.dirty:
            self._streams.mark(self)

    def pending_last_id(self) -> int:
        """The id of the newest event queued for the next flush (0 for none)."""
        for message in reversed(self._pending):
            if message.kind == "events" and message.events:
                return message.events[-1].id
        return 0

    def flush(self) -> None:
        """Hand the queued frames, joined once, to every member."""
        self.dirty = False
        pending, self._pending = self._pending, []
        if not pending or not self.members:
            return
        data = b"".join(m.frame for m in pending) if len(pending) > 1 else pending[0].frame
        events = [m for m in pending if m.kind == "events"]
        first_id = events[0].events[0].id if events else 0
        last_id = events[-1].events[-1].id if events else 0
        event_frames = sum(len(m.events) for m in events)
        stats_frames = len(pending) - len(events)
        for stream in list(self.members):
            if stream.last_event_id >= first_id > 0:
                # Joined after a replay that overlaps these events: send only what it lacks.
                own = _catch_up(pending, stream.last_event_id)
                if own:
                    stream.push(own)
            else:
                stream.push(data)
            if last_id > stream.last_event_id:
                stream.last_event_id = last_id
        members = len(self.members)
        if event_frames:
            self._frames.inc(event_frames * members)
        if stats_frames:
            self._stats_frames.inc(stats_frames * members)


def _catch_up(pending: Sequence[HubMessage], last_event_id: int) -> bytes:
    parts = []
    for message in pending:
        if message.kind == "events":
            part, _ = frames_after(message, last_event_id)
            if part:
                parts.append(part)
        else:
            parts.append(message.frame)
    return b"".join(parts)


class LiveStreams:
    """Every open stream: per-user counts, per-website channels, the flush tick, heartbeats,
    and closing them all at shutdown."""

    def __init__(self, metrics: Metrics, heartbeat: float,
                 flush_interval: float = FLUSH_INTERVAL) -> None:
        self._metrics = metrics
        self.heartbeat = heartbeat
        self.flush_interval = flush_interval
        self._streams: set[LiveStream] = set()
        self._per_user: dict[int, int] = defaultdict(int)
        self._channels: dict[str, LiveChannel] = {}
        self._dirty: list[_Flushable] = []
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

    def join(self, stream: LiveStream, hub: Hub) -> None:
        """From now on, ``stream`` gets its website's hub messages through the channel."""
        channel = self._channels.get(stream.website_id)
        if channel is None:
            channel = self._channels[stream.website_id] = LiveChannel(
                stream.website_id, self, self._metrics)
            channel.unsubscribe = hub.subscribe(stream.website_id, channel.on_message)
        channel.members[stream] = None
        # What the channel still holds was published before the stream joined: the stream has it
        # already (in its connected snapshot, its replay or the messages forwarded meanwhile).
        stream.last_event_id = max(stream.last_event_id, channel.pending_last_id())

    def remove(self, stream: LiveStream) -> None:
        """Forget a closed stream."""
        channel = self._channels.get(stream.website_id)
        if channel is not None and stream in channel.members:
            del channel.members[stream]
            if not channel.members:
                channel.unsubscribe()
                del self._channels[stream.website_id]
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
