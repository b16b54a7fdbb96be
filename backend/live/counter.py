"""LiveCounters: the embeddable "N people on this site now" streams, coalesced.

One hub listener per website with at least one open counter marks the website dirty; once a
second ``flush`` reads the website's current visitors and, if the number changed, encodes one
frame and writes those same bytes to every counter stream of the website. A stream whose socket
is still busy is skipped and gets the newest number on a later flush: nothing queues up per
viewer, so 10,000 embedded viewers cost one small socket write each per change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tornado.iostream import IOStream, StreamClosedError

from backend.live.hub import Hub, HubMessage

log = logging.getLogger("pulse.counter")

HEARTBEAT = b": \n\n"


def count_frame(count: int) -> bytes:
    """The SSE frame of a count."""
    return b'data: {"count":%d}\n\n' % count


class CounterStream:
    """One open counter: a detached connection and the last count it was sent."""

    __slots__ = ("iostream", "sent")

    def __init__(self, iostream: IOStream) -> None:
        self.iostream = iostream
        self.sent = -1

    def send(self, data: bytes) -> bool:
        """Write ``data`` if the socket is free (False if the stream is gone or busy)."""
        iostream = self.iostream
        if iostream.closed():
            return False
        if iostream.writing():
            return False
        try:
            sent = iostream.socket.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            iostream.close()
            return False
        if sent < len(data):
            try:
                iostream.write(memoryview(data)[sent:])
            except StreamClosedError:
                return False
        return True


class LiveCounters:
    """Every open counter stream, by website, fed from the hub's live windows."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._streams: dict[str, set[CounterStream]] = {}
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        self._counts: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._beats = 0

    def count(self, website_id: str) -> int:
        """The website's current visitors."""
        return self.hub.stats(website_id).current_visitors

    def add(self, website_id: str, iostream: IOStream) -> CounterStream:
        """Start a counter stream: it gets the count now and on every change."""
        stream = CounterStream(iostream)
        streams = self._streams.get(website_id)
        if streams is None:
            streams = self._streams[website_id] = set()
            self._unsubscribe[website_id] = self.hub.subscribe(website_id, self._on_message)
            self._counts[website_id] = self.count(website_id)
        streams.add(stream)
        count = self._counts[website_id]
        if stream.send(b"retry: 5000\n\n" + count_frame(count)):
            stream.sent = count
        iostream.set_close_callback(lambda: self._remove(website_id, stream))
        return stream

    def _remove(self, website_id: str, stream: CounterStream) -> None:
        streams = self._streams.get(website_id)
        if streams is None:
            return
        streams.discard(stream)
        if not streams:
            del self._streams[website_id]
            self._counts.pop(website_id, None)
            self._dirty.discard(website_id)
            self._unsubscribe.pop(website_id)()

    def _on_message(self, message: HubMessage) -> None:
        self._dirty.add(message.website_id)

    def flush(self) -> None:
        """Send each website's count where it changed, or to streams that missed it (once a
        second: the coalescing step)."""
        for website_id in list(self._dirty):
            if website_id in self._streams:
                self._counts[website_id] = self.count(website_id)
        self._dirty.clear()
        self._beats += 1
        beat = self._beats % 15 == 0  # a comment every 15 s keeps proxies from closing idle ones
        for website_id, streams in list(self._streams.items()):
            count = self._counts[website_id]
            frame = count_frame(count)
            for stream in list(streams):
                if stream.sent != count:
                    if stream.send(frame):
                        stream.sent = count
                elif beat:
                    stream.send(HEARTBEAT)

    def close_website(self, website_id: str) -> None:
        """End every counter of a website (its counter was turned off, or it was deleted)."""
        for stream in list(self._streams.get(website_id, ())):
            stream.iostream.close()

    def close_all(self) -> None:
        """End every counter stream (shutdown)."""
        for website_id in list(self._streams):
            self.close_website(website_id)

    def stream_count(self) -> int:
        """Open counter streams (tests and the benchmark read it)."""
        return sum(len(s) for s in self._streams.values())
