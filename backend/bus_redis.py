"""RedisBus: the live bus of a cluster, one Redis Stream per website.

After each commit the writer's events are added to their website's stream with the event's
per-website sequence as the entry id (``XADD <prefix>ev:<website> <seq>-0``, ``MAXLEN ~``), so a
stream holds each event once, in commit order. Every instance reads every stream (``XREAD``,
blocking) and feeds its hub. Nothing here is the truth: an entry Redis refuses (a later one got
there first), a publish lost with its process, or streams emptied by a Redis restart leave a gap
or a lag that the hub closes from the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from backend.bus import Deliver, DropPublishes
from models.records import EventRecord

log = logging.getLogger("pulse.bus")

FIELDS = tuple(f.name for f in dataclasses.fields(EventRecord))
READ_BLOCK_MS = 1000
READ_COUNT = 1000
RETRY_MAX = 2.0  # seconds between attempts to reach Redis, at most


def encode_record(event: EventRecord) -> bytes:
    """The stream entry's payload: the record's fields, in order, as a JSON array."""
    return orjson.dumps([getattr(event, name) for name in FIELDS])


def decode_record(data: bytes) -> EventRecord:
    """The record an entry's payload holds."""
    return EventRecord(*orjson.loads(data))


class RedisBus:
    """Publishes committed events to Redis Streams and delivers every website's stream."""

    name = "redis"

    def __init__(self, url: str, prefix: str = "pulse:", *, maxlen: int = 10_000,
                 fault: DropPublishes | None = None) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=3,
                                              health_check_interval=10)
        self._prefix = prefix
        self._maxlen = maxlen
        self._fault = fault or DropPublishes("")
        self._outbox: list[EventRecord] = []
        self._wake = asyncio.Event()
        self._cursors: dict[Any, Any] = {}  # stream key → id of the last entry read
        self._deliver: Deliver | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.published = 0
        self.refused = 0

    def key(self, website_id: str) -> str:
        """The stream of a website."""
        return f"{self._prefix}ev:{website_id}"

    # -- writing -----------------------------------------------------------------------------
    def publish(self, events: Sequence[EventRecord]) -> None:
        """Queue ``events`` for the sender task (the writer never waits for Redis)."""
        events = self._fault(events)
        if events:
            self._outbox.extend(events)
            self._wake.set()

    async def _send(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._outbox = self._outbox, []
            if not batch:
                if self._closing:
                    return
                continue
            try:
                await self._xadd(batch)
            except (RedisError, OSError) as exc:
                # The events are committed: readers find the gap and read them from the store.
                log.warning("publishing %d events to Redis failed: %s", len(batch), exc)
            if self._closing and not self._outbox:
                return

    async def _xadd(self, batch: list[EventRecord]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for event in batch:
            pipe.xadd(self.key(event.website_id), {"e": encode_record(event)},
                      id=f"{event.id}-0", maxlen=self._maxlen, approximate=True)
        results = await pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, ResponseError):
                self.refused += 1  # a later entry is in the stream already: readers refill
            elif isinstance(result, Exception):
                raise result
            else:
                self.published += 1

    # -- reading -----------------------------------------------------------------------------
    async def start(self, deliver: Deliver, committed: dict[str, int]) -> None:
        """Read every website's stream from its ``committed`` sequence on, into ``deliver``."""
        self._deliver = deliver
        self.follow(committed)
        self._tasks = [asyncio.create_task(self._send()), asyncio.create_task(self._read())]

    def follow(self, committed: dict[str, int]) -> None:
        """Read the streams of websites not read yet, from their committed sequence on."""
        for website_id, seq in committed.items():
            self._cursors.setdefault(self.key(website_id), f"{seq}-0")

    async def _read(self) -> None:
        pause = 0.1
        while True:
            if not self._cursors:
                await asyncio.sleep(READ_BLOCK_MS / 1000)
                continue
            try:
                response: Any = await self._redis.xread(
                    dict(self._cursors), count=READ_COUNT, block=READ_BLOCK_MS)
            except (RedisError, OSError) as exc:
                log.warning("reading the Redis streams failed (%s); retrying in %.1fs", exc,
                            pause)
                await asyncio.sleep(pause)
                pause = min(RETRY_MAX, pause * 2)
                continue
            pause = 0.1
            events: list[EventRecord] = []
            for key, entries in response or ():
                name = key.decode() if isinstance(key, bytes) else key
                for entry_id, fields in entries:
                    try:
                        events.append(decode_record(fields[b"e"]))
                    except (KeyError, ValueError, TypeError):
                        log.warning("skipping a malformed entry %r of %s", entry_id, name)
                if entries:
                    last = entries[-1][0]
                    self._cursors[name] = last.decode() if isinstance(last, bytes) else last
            if events and self._deliver is not None:
                self._deliver(events)

    async def close(self) -> None:
        """Send what is queued, stop reading, close the connections."""
        self._closing = True
        self._wake.set()
        if self._tasks:
            try:
                await asyncio.wait_for(asyncio.shield(self._tasks[0]), timeout=3)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("some events were not published to Redis before shutdown")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()
