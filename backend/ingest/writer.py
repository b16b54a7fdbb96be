"""EventWriter: group commit. Each request waits for the one transaction that holds its event."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import peewee

from backend.metrics import Metrics
from models.db import database
from models.entities import Event
from models.records import EVENT_COLUMNS, EventRecord, NewEvent
from models.visits import update_visits

log = logging.getLogger("pulse.writer")

MAX_ROWS_PER_STATEMENT = 256

Store = Callable[[Sequence[NewEvent]], list[int | None]]


class WriterClosed(RuntimeError):
    """The writer is shutting down and takes no more events."""


_FIELDS = [f for f in Event._meta.sorted_fields if f.name != "id"]
_SQLITE_INSERT = 'INSERT INTO "{}" ({}) VALUES '.format(
    Event._meta.table_name, ", ".join(f'"{f.column_name}"' for f in _FIELDS))
if [f.name for f in _FIELDS] != ["website", *EVENT_COLUMNS[1:]]:
    raise RuntimeError("_values() no longer matches the event table's columns")
_SQLITE_ROW = "({})".format(", ".join("?" * len(_FIELDS)))


def _values(e: NewEvent) -> tuple[Any, ...]:
    """The row of ``e`` in the event table's column order (what ``NewEvent.row`` holds)."""
    return (
        e.website_id, e.ts, e.event_type, e.pathname, e.visitor_id, e.session_id, e.referrer,
        e.source, e.hostname, e.title, e.screen_width, e.device, e.browser, e.os, e.country,
        json.dumps(e.props, ensure_ascii=False, separators=(",", ":")), e.visit_id,
    )


@lru_cache(maxsize=16)
def _sqlite_insert(rows: int) -> str:
    """The multi-row ``INSERT`` of ``rows`` rows (few distinct sizes: SQLite caches them)."""
    return _SQLITE_INSERT + ", ".join([_SQLITE_ROW] * rows)


def _chunks(count: int, limit: int) -> list[int]:
    """``count`` rows as statement sizes: ``limit``-row statements, then powers of two."""
    sizes = [limit] * (count // limit)
    rest = count % limit
    size = 1 << max(0, limit.bit_length() - 1)
    while rest:
        if size <= rest:
            sizes.append(size)
            rest -= size
        size >>= 1
    return sizes


def _insert_sqlite(db: peewee.SqliteDatabase, events: Sequence[NewEvent]) -> list[int | None]:
    """Multi-row ``INSERT`` statements in one transaction: one ``sqlite3_step`` per statement
    instead of one per row. Each step lets go of the GIL, and getting it back from a busy event
    loop (the writer thread competes with it for the GIL and the core) can take a switch
    interval; peewee's query builder would cost more GIL time still."""
    with db.atomic():
        update_visits(events)
        values = [_values(e) for e in events]
        connection = db.connection()
        limit = min(MAX_ROWS_PER_STATEMENT,
                    connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(_FIELDS))
        start = 0
        for size in _chunks(len(values), limit):
            params = [v for row in values[start:start + size] for v in row]
            connection.execute(_sqlite_insert(size), params)
            start += size
        last = connection.execute("SELECT last_insert_rowid()").fetchone()[0]
    # The transaction held SQLite's write lock throughout: the rowids are consecutive.
    return list(range(last - len(values) + 1, last + 1))


def store_batch(events: Sequence[NewEvent]) -> list[int | None]:
    """Insert ``events`` in one transaction; return their ids (None for a row that failed)."""
    db = database.obj
    try:
        if isinstance(db, peewee.SqliteDatabase):
            return _insert_sqlite(db, events)
        with db.atomic():
            update_visits(events)
            cursor = Event.insert_many([e.row() for e in events]).returning(Event.id).tuples()
            return [row[0] for row in cursor.execute()]
    except (peewee.IntegrityError, sqlite3.IntegrityError):
        if len(events) == 1:
            return [None]
    # One bad row (its website was deleted meanwhile) must not sink the others.
    ids: list[int | None] = []
    with db.atomic():
        for event in events:
            try:
                with db.atomic():
                    update_visits([event])
                    ids.append(Event.insert(event.row()).execute())
            except peewee.IntegrityError:
                event.visit_id = None
                ids.append(None)
    return ids


class EventWriter:
    """Batches events from many requests into one transaction on a single writer thread.

    A batch is committed when ``batch_size`` events wait or the oldest has waited
    ``batch_delay`` seconds; while one batch commits, the next one gathers.
    """

    def __init__(
        self,
        on_commit: Callable[[list[EventRecord]], None],
        metrics: Metrics,
        *,
        batch_size: int = 500,
        batch_delay: float = 0.005,
        store: Store = store_batch,
    ) -> None:
        self._on_commit = on_commit
        self._metrics = metrics
        self._batch_size = max(1, batch_size)
        self._batch_delay = batch_delay
        self._store = store
        self._pending: list[tuple[NewEvent, asyncio.Future[EventRecord]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pulse-writer")
        self.last_error: str = ""

    @property
    def alive(self) -> bool:
        """Whether the writer takes events and its last commit succeeded."""
        return not self._closed and not self.last_error

    @property
    def pending(self) -> int:
        """Events accepted but not yet committed."""
        return len(self._pending)

    async def write(self, event: NewEvent) -> EventRecord:
        """Store ``event``; return once the transaction holding it has committed."""
        if self._closed:
            raise WriterClosed("the server is shutting down")
        future: asyncio.Future[EventRecord] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        if len(self._pending) >= self._batch_size:
            self._kick()
        elif self._timer is None and self._flushing is None:
            self._timer = asyncio.get_running_loop().call_later(self._batch_delay, self._kick)
        return await future

    def _kick(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushing is None and self._pending:
            self._flushing = asyncio.get_running_loop().create_task(self._flush_all())

    async def _flush_all(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = self._pending[: self._batch_size]
                del self._pending[: self._batch_size]
                await self._commit(loop, batch)
        finally:
            self._flushing = None

    async def _commit(
        self, loop: asyncio.AbstractEventLoop,
        batch: list[tuple[NewEvent, asyncio.Future[EventRecord]]],
    ) -> None:
        events = [event for event, _ in batch]
        started = time.perf_counter()
        try:
            ids = await loop.run_in_executor(self._executor, self._store, events)
        except Exception as exc:  # the database failed: every request of the batch learns it
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("commit of %d events failed: %s", len(events), self.last_error)
            self._metrics.events_dropped.labels("store_error").inc(len(events))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.last_error = ""
        self._metrics.commit_seconds.observe(time.perf_counter() - started)
        self._metrics.batch_size.observe(len(events))
        committed: list[EventRecord] = []
        for (event, future), event_id in zip(batch, ids, strict=True):
            if event_id is None:
                self._metrics.events_dropped.labels("unknown_website").inc()
                if not future.done():
                    future.set_exception(LookupError("website no longer exists"))
                continue
            record = event.stored(event_id)
            committed.append(record)
            if not future.done():
                future.set_result(record)
        self._metrics.events_accepted.inc(len(committed))
        if committed:
            try:
                self._on_commit(committed)
            except Exception:
                log.exception("publishing %d committed events failed", len(committed))

    async def close(self) -> None:
        """Stop taking events, commit every event already accepted, then stop the thread."""
        self._closed = True
        self._kick()
        while self._flushing is not None:
            await asyncio.shield(self._flushing)
            self._kick()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, _close_thread_connection)
        self._executor.shutdown(wait=True)


def _close_thread_connection() -> None:
    if not database.obj.is_closed():
        database.obj.close()
