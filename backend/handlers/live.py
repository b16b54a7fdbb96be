"""LiveStreamHandler: ``GET /admin/analytics/live?website_id=`` — the SSE live stream."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from backend.handlers.base import ApiError, BaseHandler
from backend.live.hub import HubMessage, encode_event, encode_frame
from backend.live.sse import LiveStream
from models.entities import Membership, Website

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

    stream: LiveStream | None = None

    async def get(self) -> None:
        """Authenticate, check membership, then stream until the client leaves."""
        services = self.services
        user = self.current_user
        if user is None:
            raise ApiError(401, "authentication required: a Bearer token or a panel session",
                           {"WWW-Authenticate": 'Bearer realm="pulse"'})
        website_id = self.get_query_argument("website_id", "").strip()
        if not website_id:
            raise ApiError(400, "website_id: is required")
        if len(website_id) > 64 or Website.get_or_none(Website.id == website_id) is None:
            raise ApiError(404, "website_id: no such website")
        if not Membership.allows(user, website_id):
            raise ApiError(403, "you are not a member of this website")
        last_id = parse_last_event_id(
            self.request.headers.get("Last-Event-ID")
            or self.get_query_argument("last_event_id", None))
        if services.streams.count_for_user(user.id) >= services.settings.sse_max_per_user:
            raise ApiError(429, "too many open live streams for this user",
                           {"Retry-After": "10"})

        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache, no-transform")
        self.set_header("X-Accel-Buffering", "no")
        stream = self.stream = LiveStream(
            website_id, user.id, self._write_chunk, self.finish,
            max_backlog=services.settings.sse_max_backlog, metrics=services.metrics)
        services.streams.add(stream)
        hub = services.hub
        # Live frames queue up from here on; the replay below is deduplicated against them.
        buffered: list[HubMessage] | None = []

        def on_message(message: HubMessage) -> None:
            if buffered is not None:
                buffered.append(message)
            else:
                self._forward(stream, message)

        unsubscribe = hub.subscribe(website_id, on_message)
        try:
            stream.send(b"retry: 3000\n\n", "retry")
            stats = hub.stats(website_id)
            stream.send(encode_frame("connected", stats.snapshot()), "connected")
            if last_id is not None:
                await self._replay(stream, website_id, last_id)
            pending: list[HubMessage] = buffered or []
            buffered = None
            for message in pending:
                self._forward(stream, message)
            await stream.closed
        finally:
            unsubscribe()
            services.streams.remove(stream)

    async def _replay(self, stream: LiveStream, website_id: str, last_id: int) -> None:
        hub = self.services.hub
        limit = self.services.settings.replay_limit
        stream.last_event_id = last_id
        frames = hub.replay_from_buffer(website_id, last_id, limit)
        if frames is not None:
            if frames:
                stream.send(b"".join(frames), "new_event", len(frames))
                stream.last_event_id = _frame_id(frames[-1])
            return
        events = await asyncio.get_running_loop().run_in_executor(
            None, hub.replay_from_store, website_id, last_id, limit)
        if events:
            stream.send(b"".join(encode_event(e) for e in events), "new_event", len(events))
            stream.last_event_id = events[-1].id

    def _forward(self, stream: LiveStream, message: HubMessage) -> None:
        if message.kind == "stats":
            stream.send(message.frame, "stats")
            return
        events = message.events
        if events and events[-1].id <= stream.last_event_id:
            return  # all of it was replayed already
        if events and events[0].id <= stream.last_event_id:
            fresh = [e for e in events if e.id > stream.last_event_id]
            stream.send(b"".join(encode_event(e) for e in fresh), "new_event", len(fresh))
        else:
            stream.send(message.frame, "new_event", len(events))
        stream.last_event_id = events[-1].id

    def _write_chunk(self, data: bytes) -> Any:
        self.write(data)
        return self.flush()

    def on_connection_close(self) -> None:
        """The client went away: end the stream."""
        if self.stream is not None:
            self.stream.close("gone")

    def on_finish(self) -> None:
        """The response is over (normally or after an error)."""
        if self.stream is not None:
            self.stream.close("gone")


def _frame_id(frame: bytes) -> int:
    """The id of a ``new_event`` frame (it starts with ``id: N``)."""
    return int(frame[4:frame.index(b"\n")])
