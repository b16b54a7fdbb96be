"""LiveStreamHandler: ``GET /admin/analytics/live?website_id=`` — the SSE live stream."""

from __future__ import annotations

import logging
import re

import tornado.web

from backend.handlers.base import ApiError, BaseHandler
from backend.live.sse import REPLAY_DRAIN_TIMEOUT, RETRY, LiveStream, SocketWriter

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
        """Authenticate, check membership, send the headers, then subscribe the stream: the
        connected (or reset) frame, any replay, then live."""
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
        stream.send(RETRY, "retry")

        async def drained() -> bool:
            return await stream.drained(REPLAY_DRAIN_TIMEOUT)

        # One call: register, the connected (or reset) frame, the stored events after the
        # client's id, then live; the hub holds live messages meanwhile and drops repeats.
        try:
            unsubscribe = await services.hub.subscribe_and_replay(
                website_id, stream.on_message, last_id, limit=services.settings.replay_limit,
                piece_bytes=max(1, services.settings.sse_max_backlog // 4), drained=drained)
        except Exception:
            log.exception("opening a live stream of %s failed", website_id)
            stream.close("error")
            return
        if stream.closed.done():
            unsubscribe()
        else:
            stream.closed.add_done_callback(lambda _: unsubscribe())
