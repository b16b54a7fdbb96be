"""EventWriter: group commit. Each request waits for the one transaction that holds its event."""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import peewee
import psycopg

from backend.metrics import Metrics
from models.db import database
from models.entities import Event
from models.records import EVENT_FIELDS, EventRecord, NewEvent
from models.visits import Staged, VisitBook

log = logging.getLogger("pulse.writer")

MAX_ROWS_PER_STATEMENT = 256

Store = Callable[[Sequence[NewEvent]], list[int | None]]


class WriterClosed(RuntimeError):
    """The writer is shutting down and takes no more events."""


_COLUMNS = (*EVENT_FIELDS, "seq")
_SQLITE_INSERT = 'INSERT INTO "{}" ({}) VALUES '.format(
    Event._meta.table_name, ", ".join(f'"{column}"' for column in _COLUMNS))
_SQLITE_ROW = "({})".format(", ".join("?" * len(_COLUMNS)))
# Bumps a website's counter by the number of its events in the batch and returns the new last
# sequence number. The row stays locked until the commit (on SQLite the whole database is), so
# the writers of one website are serialised and commit order is sequence order.
_BUMP_COUNTER = (
    'INSERT INTO "event_counter" ("website_id", "last_seq") VALUES ({p}, {p}) '
    'ON CONFLICT ("website_id") DO UPDATE '
    'SET "last_seq" = "event_counter"."last_seq" + excluded."last_seq" RETURNING "last_seq"')


def next_seqs(db: peewee.Database, events: Sequence[NewEvent]) -> list[int]:
    """Give each event the next sequence number of its website, inside the caller's
    transaction. Counters are taken in website-id order, so two writers never deadlock."""
    counts = Counter(e.website_id for e in events)
    if isinstance(db, peewee.SqliteDatabase):  # straight to sqlite3: less GIL time (see below)
        execute = db.connection().execute
        sql = _BUMP_COUNTER.format(p="?")
    else:
        execute = db.execute_sql
        sql = _BUMP_COUNTER.format(p=db.param)
    following: dict[str, int] = {}
    for website_id in sorted(counts):
        last = execute(sql, (website_id, counts[website_id])).fetchone()[0]
        following[website_id] = last - counts[website_id] + 1
    seqs = []
    for e in events:
        seqs.append(following[e.website_id])
        following[e.website_id] += 1
    return seqs


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


def _insert_sqlite(db: peewee.SqliteDatabase, events: Sequence[NewEvent],
                   seqs: Sequence[int]) -> None:
    """Multi-row ``INSERT`` statements: one ``sqlite3_step`` per statement instead of one per
    row. Each step lets go of the GIL, and getting it back from a busy event loop (the writer
    thread competes with it for the GIL and the core) can take a switch interval; peewee's
    query builder would cost more GIL time still."""
    values = [(*e.values(), seq) for e, seq in zip(events, seqs, strict=True)]
    connection = db.connection()
    limit = min(MAX_ROWS_PER_STATEMENT,
                connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(_COLUMNS))
    start = 0
    for size in _chunks(len(values), limit):
        params = [v for row in values[start:start + size] for v in row]
        connection.execute(_sqlite_insert(size), params)
        start += size


_COPY = 'COPY "{}" ({}) FROM STDIN'.format(
    Event._meta.table_name, ", ".join(f'"{column}"' for column in _COLUMNS))


def _insert_postgres(db: peewee.PostgresqlDatabase, events: Sequence[NewEvent],
                     seqs: Sequence[int]) -> None:
    """``COPY … FROM STDIN``: of multi-row ``INSERT``, ``executemany`` and ``unnest`` the
    fastest for batches of 50 and 500 events, and as fast for one (bench/b9_pg_writer.py)."""
    try:
        with db.connection().cursor() as cursor, cursor.copy(_COPY) as copy:
            for event, seq in zip(events, seqs, strict=True):
                copy.write_row((*event.values(), seq))
    except psycopg.IntegrityError as exc:
        raise peewee.IntegrityError(str(exc)) from exc
    except psycopg.Error as exc:
        raise peewee.OperationalError(str(exc)) from exc


def _insert(db: peewee.Database, events: Sequence[NewEvent], visits: VisitBook,
            flush: bool = True) -> tuple[list[int], Staged]:
    """Store ``events`` (and their visits) in the current transaction; return their sequence
    numbers and what ``visits`` takes in once the transaction commits."""
    # The counters first: the transaction's first statement is a write, so on SQLite it takes
    # the write lock at once (waiting for it under busy_timeout) instead of reading first and
    # failing to upgrade while another writer holds it.
    seqs = next_seqs(db, events)
    staged = visits.stage(events, flush=flush)
    if isinstance(db, peewee.SqliteDatabase):
        _insert_sqlite(db, events, seqs)
    elif isinstance(db, peewee.PostgresqlDatabase):
        _insert_postgres(db, events, seqs)
    else:
        Event.insert_many([e.row() | {"seq": seq} for e, seq in zip(events, seqs, strict=True)]
                          ).execute()
    return seqs, staged


def store_batch(events: Sequence[NewEvent],
                visits: VisitBook | None = None) -> list[int | None]:
    """Insert ``events`` in one transaction; return their per-website sequence numbers (None
    for an event whose website was deleted meanwhile). Their visits' changes are written in
    the same transaction unless ``visits`` (the writer's book) gathers them."""
    db = database.obj
    book = VisitBook() if visits is None else visits
    try:
        with db.atomic():
            stored, staged = _insert(db, events, book)
        book.commit(staged)
        return list(stored)
    except (peewee.IntegrityError, sqlite3.IntegrityError):
        if len(events) == 1:
            return [None]
    # One website deleted meanwhile must not sink the other websites' events.
    seqs: list[int | None] = [None] * len(events)
    by_website: dict[str, list[int]] = {}
    for index, event in enumerate(events):
        by_website.setdefault(event.website_id, []).append(index)
    done: list[Staged] = []
    with db.atomic():
        for indexes in by_website.values():
            try:
                with db.atomic():  # the pending changes wait: this savepoint may roll back
                    stored, staged = _insert(db, [events[i] for i in indexes], book,
                                             flush=False)
            except (peewee.IntegrityError, sqlite3.IntegrityError):
                for index in indexes:
                    events[index].set_visit(None)  # rolled back with the events
                continue
            done.append(staged)
            for index, seq in zip(indexes, stored, strict=True):
                seqs[index] = seq
    for staged in done:
        book.commit(staged)
    return seqs


class EventWriter:
    """Batches events from many requests into one transaction on a single writer thread.

    A batch is committed when ``batch_size`` events wait or the oldest has waited
    ``batch_delay`` seconds; while one batch commits, the next one gathers. ``visits`` gathers
    what the batches change in visit rows (models.visits.VisitBook): a later batch writes it,
    or the writer itself once ``visits.flush_seconds`` passed without one, and when it stops.
    """

    def __init__(
        self,
        on_commit: Callable[[list[EventRecord]], None],
        metrics: Metrics,
        *,
        batch_size: int = 500,
        batch_delay: float = 0.005,
        store: Store | None = None,
        visits: VisitBook | None = None,
    ) -> None:
        self._on_commit = on_commit
        self._metrics = metrics
        self._batch_size = max(1, batch_size)
        self._batch_delay = batch_delay
        self.visits = VisitBook() if visits is None else visits
        self._store = store or functools.partial(store_batch, visits=self.visits)
        self._visits_timer: asyncio.TimerHandle | None = None
        self._visits_task: asyncio.Task[None] | None = None
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
            self.last_error = describe_error(exc)
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
        self._schedule_visits()
        if committed:
            try:
                self._on_commit(committed)
            except Exception:
                log.exception("publishing %d committed events failed", len(committed))

    def _schedule_visits(self) -> None:
        """Write the pending visit changes in ``visits.flush_seconds`` if no batch has by then."""
        if self.visits.pending and self._visits_timer is None and not self._closed:
            self._visits_timer = asyncio.get_running_loop().call_later(
                self.visits.flush_seconds, self._visits_due)

    def _visits_due(self) -> None:
        self._visits_timer = None
        if self._visits_task is None:
            self._visits_task = asyncio.get_running_loop().create_task(self._write_visits())

    async def _write_visits(self) -> None:
        try:
            await self.write_visits()
        except Exception as exc:  # the next batch, or the next try, writes them
            log.error("writing visit changes failed: %s", describe_error(exc))
        finally:
            self._visits_task = None
        self._schedule_visits()

    async def write_visits(self) -> None:
        """Write the visit changes of the events committed so far, now."""
        await asyncio.get_running_loop().run_in_executor(self._executor,
                                                         self.visits.write_pending)

    async def check_database(self) -> str:
        """Ask the database a trivial question on the writer's own connection (which reconnects
        it after an outage); return "" when it answers, else the reason. On PostgreSQL a
        writer that failed because the server was unreachable is healthy again once it
        answers; on SQLite only a commit that succeeds clears the failure (a full disk still
        answers reads)."""
        executor = None if self._closed else self._executor
        try:
            await asyncio.get_running_loop().run_in_executor(executor, _select_one)
        except Exception as exc:
            return describe_error(exc)
        if self.last_error and isinstance(database.obj, peewee.PostgresqlDatabase):
            log.info("the database answers again")
            self.last_error = ""
        return ""

    async def close(self) -> None:
        """Stop taking events, commit every event already accepted, then stop the thread."""
        self._closed = True
        self._kick()
        while self._flushing is not None:
            await asyncio.shield(self._flushing)
            self._kick()
        if self._visits_timer is not None:
            self._visits_timer.cancel()
            self._visits_timer = None
        if self._visits_task is not None:
            await asyncio.shield(self._visits_task)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self.visits.stopped)
        except Exception as exc:  # repair_recent_visits rebuilds them at the next start
            log.error("writing visit changes failed: %s", describe_error(exc))
        await loop.run_in_executor(self._executor, _close_thread_connection)
        self._executor.shutdown(wait=True)


def describe_error(exc: BaseException) -> str:
    """A one-line reason for a database failure: the error's class and first line."""
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first_line}"[:300]


def _select_one() -> None:
    database.obj.execute_sql("SELECT 1").fetchone()


def _close_thread_connection() -> None:
    if not database.obj.is_closed():
        database.obj.close()
