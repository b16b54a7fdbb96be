"""LiveStreamHandler: ``GET /admin/analytics/live?website_id=`` — the SSE live stream."""

from __future__ import annotations

import asyncio
import logging
import re

import tornado.web

from backend.handlers.base import ApiError, BaseHandler
from backend.live.hub import HubMessage, encode_event, encode_frame
from backend.live.sse import REPLAY_DRAIN_TIMEOUT, LiveStream, SocketWriter, frames_after

log = logging.getLogger("pulse.sse")
access_log = logging.getLogger("pulse.access")

_EVENT_ID = re.compile(r"[0-9]{1,18}")


def parse_last_event_id(value: str | None) -> int | None:
    """The numeric Last-Event-ID, or None when absent; ApiError when malformed."""
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if not _EVENT_ID.fullmatch(value):  # str.isdigit() also takes "²", which int() refuses
        raise ApiError(400, "Last-Event-ID must be a non-negative event id")
    return int(value)


class LiveStreamHandler(BaseHandler):
    """Streams a website's live view: ``connected``, then replay, then ``new_event``/``stats``."""

    async def get(self) -> None:
        """Authenticate, check membership, send the headers, the connected frame and any replay,
        then hand the connection to the website's channel."""
        services = self.services
        try:
            asked: str | None = self.get_query_argument("website_id", "").strip()
        except tornado.web.HTTPError:  # not UTF-8: a 400, once the credentials were checked
            asked = None
        # The look-ups (and a token's last-use UPDATE) run in a worker thread, never here.
        user, access = await self.authenticate_for(asked)
        if user is None:
            raise ApiError(401, "authentication required: a Bearer token or a panel session",
                           {"WWW-Authenticate": 'Bearer realm="pulse"'})
        website_id = self.get_query_argument("website_id", "").strip()
        if not website_id:
            raise ApiError(400, "website_id: is required")
        if access == "missing":
            raise ApiError(404, "website_id: no such website")
        if access == "forbidden":
            raise ApiError(403, "you are not a member of this website")
        last_id = parse_last_event_id(
            self.request.headers.get("Last-Event-ID")
            or self.get_query_argument("last_event_id", None))
        if services.streams.count_for_user(user.get_id()) >= services.settings.sse_max_per_user:
            raise ApiError(429, "too many open live streams for this user",
                           {"Retry-After": "10"})

        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache, no-transform")
        self.set_header("X-Accel-Buffering", "no")
        self.set_header("Connection", "close")
        # From here the connection is the stream's: Tornado's HTTP machinery (and this handler)
        # let go of it, which keeps an idle stream small. The body ends when the connection does.
        version = b"HTTP/1.1" if self.request.version == "HTTP/1.1" else b"HTTP/1.0"
        head = b"".join(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1"))
                        for name, value in self._headers.get_all())  # the headers set so far
        iostream = self.detach()
        iostream.write(version + b" 200 OK\r\n" + head + b"\r\n")
        writer = SocketWriter(iostream)
        streams = services.streams
        stream = LiveStream(
            website_id, user.get_id(), writer.write, writer.close,
            max_backlog=services.settings.sse_max_backlog, metrics=services.metrics,
            scheduler=streams, abort=writer.abort)
        iostream.set_close_callback(lambda: stream.close("gone"))
        streams.add(stream)
        access_log.debug("200 GET %s (live stream)", self.request.path)
        hub = services.hub
        # Live messages wait here during the replay, which they are deduplicated against; then
        # the stream joins its website's channel and this coroutine ends.
        buffered: list[HubMessage] = []
        unsubscribe = hub.subscribe(website_id, buffered.append)
        try:
            stream.send(b"retry: 3000\n\n", "retry")
            stats = hub.stats(website_id)
            stream.send(encode_frame("connected", stats.snapshot()), "connected")
            if last_id is not None:
                await self._replay(stream, website_id, last_id)
        except Exception:
            log.exception("opening a live stream of %s failed", website_id)
            stream.close("error")
        finally:
            unsubscribe()
        for message in buffered:
            _forward(stream, message)
        if not stream.closed.done():
            streams.join(stream, hub)

    async def _replay(self, stream: LiveStream, website_id: str, last_id: int) -> None:
        hub = self.services.hub
        limit = self.services.settings.replay_limit
        stream.last_event_id = last_id
        frames = hub.replay_from_buffer(website_id, last_id, limit)
        if frames is not None:
            replay = [(_frame_id(frame), frame) for frame in frames]
        else:
            events = await asyncio.get_running_loop().run_in_executor(
                None, hub.replay_from_store, website_id, last_id, limit)
            replay = [(event.id, encode_event(event)) for event in events]
        await self._send_in_pieces(stream, replay)

    async def _send_in_pieces(self, stream: LiveStream, replay: list[tuple[int, bytes]]) -> None:
        """Send the replay in pieces of at most half the backlog bound, each once the previous
        one reached the socket: a replay larger than the bound must not get its client dropped
        (which would reconnect and ask for the same replay again)."""
        budget = max(1, self.services.settings.sse_max_backlog // 2)
        piece: list[bytes] = []
        size = 0
        for index, (event_id, frame) in enumerate(replay):
            piece.append(frame)
            size += len(frame)
            last = index == len(replay) - 1
            if not last and size + len(replay[index + 1][1]) <= budget:
                continue
            stream.send(b"".join(piece), "new_event", len(piece))
            stream.last_event_id = event_id
            piece, size = [], 0
            if not last and not await stream.drained(REPLAY_DRAIN_TIMEOUT):
                return


def _forward(stream: LiveStream, message: HubMessage) -> None:
    """Send a message that arrived during the replay, minus the events already replayed."""
    if message.kind == "stats":
        stream.send(message.frame, "stats")
        return
    data, count = frames_after(message, stream.last_event_id)
    if count:
        stream.send(data, "new_event", count)
        stream.last_event_id = message.events[-1].id


def _frame_id(frame: bytes) -> int:
    """The id of a ``new_event`` frame (it starts with ``id: N``)."""
    return int(frame[4:frame.index(b"\n")])
