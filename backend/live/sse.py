"""LiveStream: one SSE connection's outgoing queue; LiveStreams: all of them, with heartbeats.

Frames from the hub are appended to the stream's queue and written in one write per loop
iteration; while a write is in flight the queue gathers. A client whose queue passes the backlog
bound is disconnected: the others never wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable

from backend.metrics import Metrics

log = logging.getLogger("pulse.sse")

HEARTBEAT = b": heartbeat\n\n"


class LiveStream:
    """The outgoing side of one SSE connection."""

    def __init__(
        self,
        website_id: str,
        user_id: int,
        write: Callable[[bytes], asyncio.Future[None]],
        finish: Callable[[], object],
        *,
        max_backlog: int,
        metrics: Metrics,
    ) -> None:
        self.website_id = website_id
        self.user_id = user_id
        self._write = write
        self._finish = finish
        self._max_backlog = max_backlog
        self._metrics = metrics
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._writing = False
        self._scheduled = False
        self.opened = time.monotonic()
        self.last_write = self.opened
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.last_event_id = 0

    @property
    def backlog(self) -> int:
        """Bytes queued and not yet handed to the socket."""
        return self._pending_bytes

    def send(self, frame: bytes, kind: str = "new_event", count: int = 1) -> None:
        """Queue ``frame`` (``count`` frames of type ``kind``) for this client."""
        if self.closed.done():
            return
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        self._metrics.sse_frames.labels(kind).inc(count)
        if self._pending_bytes > self._max_backlog:
            log.warning("dropping a live stream of %s: %d bytes behind", self.website_id,
                        self._pending_bytes)
            self.close("backlog")
            return
        if not self._writing and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self.closed.done() or self._writing or not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        self._pending_bytes = 0
        self._writing = True
        self.last_write = time.monotonic()
        try:
            future = self._write(data)
        except Exception:  # the connection went away under us
            self.close("gone")
            return
        future.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[None]) -> None:
        self._writing = False
        if future.cancelled() or future.exception() is not None:
            self.close("gone")
        elif self._pending:
            self._flush()

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
        if reason != "gone":
            try:
                if final:
                    self._write(final)
                self._finish()
            except Exception:
                log.debug("finishing a closed stream failed", exc_info=True)


class LiveStreams:
    """Every open stream: per-user counts, heartbeats, and closing them all at shutdown."""

    def __init__(self, metrics: Metrics, heartbeat: float) -> None:
        self._metrics = metrics
        self.heartbeat = heartbeat
        self._streams: set[LiveStream] = set()
        self._per_user: dict[int, int] = defaultdict(int)

    def __len__(self) -> int:
        return len(self._streams)

    def count_for_user(self, user_id: int) -> int:
        """Open streams of one user."""
        return self._per_user.get(user_id, 0)

    def add(self, stream: LiveStream) -> None:
        """Register an open stream."""
        self._streams.add(stream)
        self._per_user[stream.user_id] += 1
        self._metrics.live_connections.labels(stream.website_id).inc()

    def remove(self, stream: LiveStream) -> None:
        """Forget a closed stream."""
        if stream not in self._streams:
            return
        self._streams.discard(stream)
        self._per_user[stream.user_id] -= 1
        if self._per_user[stream.user_id] <= 0:
            del self._per_user[stream.user_id]
        self._metrics.live_connections.labels(stream.website_id).dec()

    def beat(self) -> None:
        """Send a heartbeat comment to every stream that has been quiet for a period."""
        quiet_since = time.monotonic() - self.heartbeat * 0.9
        for stream in list(self._streams):
            if stream.last_write <= quiet_since:
                stream.send(HEARTBEAT, "heartbeat")

    def close_all(self, reason: str = "shutdown") -> None:
        """Close every stream, telling clients when to reconnect."""
        for stream in list(self._streams):
            stream.close(reason, final=b"retry: 2000\n\n")
