"""Visits kept at ingest: the writer attaches every event to its visit in the transaction that
stores the events, so every committed event belongs to a visit row.

Definitions (Plausible's): a visit is a run of one visitor's events at most 30 minutes apart;
a bounce is a visit with at most one pageview and no interactive custom event; the duration is
last event − first event (0 for a bounce); the entry page is the first event's page, the exit
page the last pageview's. Engagement events (``event_type = "engagement"``) extend the visit's
end but are neither pageviews nor custom events, and never start a visit.

A new visit is inserted with the events' transaction (its id goes into the events). What later
events add to a visit that already has a row (its end, counts and exit page) is kept as a
*change* (``_Change``) and written as ``UPDATE``s that add to the row (``pageviews =
pageviews + ?``, ``end_ts = max(end_ts, ?)``, …), so changes from several writers combine in
any order. ``VisitBook`` decides when: with ``flush_seconds = 0`` in the same transaction (what
``update_visits`` and a cluster on PostgreSQL do), otherwise the changes of all batches of a
second are gathered and written once, with the batch that comes after that second (or on their
own when no batch comes). On SQLite most of a batch's commit was writing the pages of the visit
rows its events changed, once per batch, and that commit is what every tracking request waits
for. A crash loses at most the changes not yet written, and ``repair_recent_visits`` rebuilds
them from the stored events at the next start.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, Protocol, cast

import peewee

from models.channels import NO_CAMPAIGN, channel_of
from models.db import database
from models.entities import DAY_MS, Event
from models.records import NewEvent

VISIT_TIMEOUT_MS = 30 * 60 * 1000
PAGEVIEW = "pageview"
ENGAGEMENT = "engagement"
REPAIR_MS = 60_000  # repair_recent_visits: far more than a crash can leave unwritten
_LOOKUP_CHUNK = 500  # visitor ids per lookup query (far below SQLite's variable limit)
_INSERT_CHUNK = 500  # visits per multi-row INSERT (24 values each: far below variable limits)
_NOT_YET = 1 << 62  # a start later than any event

VISIT_FIELDS = (
    "website_id", "visitor_id", "start_ts", "end_ts", "end_day", "entry_page", "exit_page",
    "pageviews", "events", "interactions", "bounce", "duration", "source", "referrer",
    "channel", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "country",
    "device", "browser", "os",
)


class _Counted(Protocol):
    """What counting an event into a visit reads of it (a NewEvent or a stored row)."""

    @property
    def ts(self) -> int: ...
    @property
    def event_type(self) -> str: ...
    @property
    def pathname(self) -> str: ...
    @property
    def interactive(self) -> bool: ...


class _Change:
    """What a run of events adds to one visit: its earliest and latest event, its counts and
    its latest pageview. ``day`` is the visit row's ``end_day`` as stored (an ``UPDATE`` sets
    ``end_day``, and so moves the visit's index entry, only when the change passes it)."""

    __slots__ = ("start", "end", "pageviews", "events", "interactions", "exit_ts", "exit_page",
                 "day")

    def __init__(self, day: int) -> None:
        self.start = _NOT_YET
        self.end = -1
        self.pageviews = self.events = self.interactions = 0
        self.exit_ts: int | None = None
        self.exit_page = ""
        self.day = day

    def add(self, event: _Counted) -> None:
        """Count ``event`` (events come in time order)."""
        ts = event.ts
        self.start = min(self.start, ts)
        self.end = max(self.end, ts)
        if event.event_type == ENGAGEMENT:
            return  # extends the visit, counts as nothing
        self.events += 1
        if event.event_type == PAGEVIEW:
            self.pageviews += 1
            if self.exit_ts is None or ts >= self.exit_ts:
                self.exit_ts, self.exit_page = ts, event.pathname
        elif event.interactive:
            self.interactions += 1

    def then(self, later: _Change) -> _Change:
        """This change followed by ``later``, as a new change (neither is modified)."""
        both = _Change(self.day)
        both.start = min(self.start, later.start)
        both.end = max(self.end, later.end)
        both.pageviews = self.pageviews + later.pageviews
        both.events = self.events + later.events
        both.interactions = self.interactions + later.interactions
        both.exit_ts, both.exit_page = self.exit_ts, self.exit_page
        if later.exit_ts is not None and (self.exit_ts is None or later.exit_ts >= self.exit_ts):
            both.exit_ts, both.exit_page = later.exit_ts, later.exit_page
        return both

    def totals(self) -> dict[str, Any]:
        """The columns of a visit made of this change alone."""
        bounce = is_bounce(self.pageviews, self.interactions)
        return {"start_ts": self.start, "end_ts": self.end, "end_day": self.end // DAY_MS,
                "pageviews": self.pageviews, "events": self.events,
                "interactions": self.interactions, "bounce": int(bounce),
                "duration": 0 if bounce else self.end - self.start}


def is_bounce(pageviews: int, interactions: int) -> bool:
    """A bounce: at most one pageview and no interactive custom event."""
    return pageviews <= 1 and interactions == 0


# Adds a change to a stored visit. Every right-hand side reads the row as it was, so changes
# written by several writers, in any order, add up to the same row.
_ADD_CHANGE = (
    'UPDATE "visit" SET start_ts = {lo}(start_ts, {p}), end_ts = {hi}(end_ts, {p}),{day} '
    "exit_page = CASE WHEN {p} >= end_ts THEN {p} ELSE exit_page END, "
    "pageviews = pageviews + {p}, events = events + {p}, interactions = interactions + {p}, "
    "bounce = CASE WHEN pageviews + {p} <= 1 AND interactions + {p} = 0 THEN 1 ELSE 0 END, "
    "duration = CASE WHEN pageviews + {p} <= 1 AND interactions + {p} = 0 THEN 0 "
    "ELSE {hi}(end_ts, {p}) - {lo}(start_ts, {p}) END WHERE id = {p}")


def _change_params(visit_id: int, change: _Change, day: bool) -> list[Any]:
    counts = [change.pageviews, change.interactions]
    return [change.start, change.end, *([change.end // DAY_MS] if day else []),
            change.exit_ts, change.exit_page, change.pageviews, change.events,
            change.interactions, *counts, *counts, change.end, change.start, visit_id]


def _write_changes(changes: dict[int, _Change]) -> None:
    """Add ``changes`` (visit id → change) to the visit rows, in the current transaction."""
    db = database.obj
    lo, hi = ("min", "max") if isinstance(db, peewee.SqliteDatabase) else ("LEAST", "GREATEST")
    for day in (False, True):  # most changes stay within the row's day: its index entry stays
        rows = [_change_params(visit_id, change, day) for visit_id, change in changes.items()
                if (change.end // DAY_MS > change.day) == day]
        if rows:
            sets_day = f" end_day = {hi}(end_day, {db.param})," if day else ""
            db.cursor().executemany(
                _ADD_CHANGE.format(lo=lo, hi=hi, p=db.param, day=sets_day), rows)


class _Visit:
    """A visit as one batch sees it: its row id (None until a new one is inserted), latest
    event, stored ``end_day``, and what the batch's events add to it."""

    __slots__ = ("id", "end", "day", "change", "events", "first")

    def __init__(self, visit_id: int | None, end: int, day: int,
                 first: NewEvent | None = None) -> None:
        self.id = visit_id
        self.end = end
        self.day = day
        self.change: _Change | None = None
        self.events: list[NewEvent] = []
        self.first = first  # the event that starts a new visit

    def add(self, event: NewEvent) -> None:
        if self.change is None:
            self.change = _Change(self.day)
        self.change.add(event)
        self.end = max(self.end, event.ts)
        self.events.append(event)

    def row(self) -> dict[str, Any]:
        """The columns of a new visit."""
        event = self.first
        assert event is not None and self.change is not None
        campaign = event.campaign
        return {
            "website_id": event.website_id, "visitor_id": event.visitor_id,
            "entry_page": event.pathname, "exit_page": self.change.exit_page or event.pathname,
            **self.change.totals(),
            "source": event.source, "referrer": event.referrer, "channel": event.channel,
            "utm_source": campaign.utm_source, "utm_medium": campaign.utm_medium,
            "utm_campaign": campaign.utm_campaign, "utm_term": campaign.utm_term,
            "utm_content": campaign.utm_content,
            "country": event.country, "device": event.device, "browser": event.browser,
            "os": event.os,
        }


class _Known(NamedTuple):
    """A visit touched since the book last wrote its changes."""

    id: int
    end: int
    day: int


def _open_visits(keys: Sequence[tuple[str, str]], since: int) -> dict[tuple[str, str], _Known]:
    """The latest stored visit of each (website, visitor) that may still go on (plain SQL:
    this runs in the writer's transaction for every batch)."""
    db = database.obj
    mark = db.param
    wanted = set(keys)
    websites = sorted({website for website, _ in keys})
    visitors = sorted({visitor for _, visitor in keys})
    found: dict[tuple[str, str], _Known] = {}
    for start in range(0, len(visitors), _LOOKUP_CHUNK):
        chunk = visitors[start:start + _LOOKUP_CHUNK]
        sql = ('SELECT id, website_id, visitor_id, end_ts, end_day FROM "visit" '
               f'WHERE website_id IN ({", ".join([mark] * len(websites))}) AND visitor_id IN '
               f'({", ".join([mark] * len(chunk))}) AND end_day >= {mark} AND end_ts >= {mark} '
               "ORDER BY end_ts")
        params = [*websites, *chunk, since // DAY_MS, since]
        for visit_id, website_id, visitor_id, end, day in db.execute_sql(sql, params):
            if (website_id, visitor_id) in wanted:
                found[(website_id, visitor_id)] = _Known(visit_id, end, day)  # the latest wins
    return found


def _insert_visits(visits: list[_Visit]) -> None:
    """Insert new visits with multi-row INSERT … RETURNING id (SQLite ≥ 3.35, PostgreSQL)."""
    db = database.obj
    row_marks = "(" + ", ".join([db.param] * len(VISIT_FIELDS)) + ")"
    for start in range(0, len(visits), _INSERT_CHUNK):
        chunk = visits[start:start + _INSERT_CHUNK]
        sql = (f'INSERT INTO "visit" ({", ".join(VISIT_FIELDS)}) VALUES '
               + ", ".join([row_marks] * len(chunk)) + " RETURNING id")
        params = [row[name] for row in (visit.row() for visit in chunk) for name in VISIT_FIELDS]
        ids = [row[0] for row in db.execute_sql(sql, params).fetchall()]
        for visit, visit_id in zip(chunk, sorted(ids), strict=True):
            visit.id = visit_id  # ids grow with the rows of one statement


class Staged(NamedTuple):
    """What one batch did to visits, for ``VisitBook.commit`` once its transaction commits."""

    changes: dict[int, _Change]  # visit id → what the batch adds to a visit stored earlier
    known: dict[tuple[str, str], _Known]
    wrote: bool  # the book's pending changes were written with the batch


class VisitBook:
    """The visit changes one writer has committed events for but not yet written to the visit
    rows, and the latest ``remember`` visits it touched (which later batches need not look up:
    the writer is the only one writing them).

    Used from the writer's thread only. ``stage`` runs inside the batch's transaction and
    changes nothing here; ``commit`` takes the result in once that transaction committed, so a
    batch that rolls back leaves the book as it was. With ``flush_seconds = 0`` every batch
    writes its own changes and looks its visits up (several writers may share them)."""

    def __init__(self, flush_seconds: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, remember: int = 20_000,
                 on_stop: Callable[[], None] | None = None) -> None:
        self.flush_seconds = flush_seconds
        self.clock = clock
        self.remember = remember
        self.on_stop = on_stop  # told when the writer stopped with nothing left unwritten
        self.pending: dict[int, _Change] = {}
        self.known: dict[tuple[str, str], _Known] = {}
        self._written_at = clock()

    def stage(self, events: Sequence[NewEvent], *, flush: bool = True) -> Staged:
        """Attach each event to its visit (sets ``event.visit_id``), inserting new visits, in
        the caller's transaction; write the pending changes too when they are due (never
        with ``flush=False``, unless every batch writes its own)."""
        if not events:
            return Staged({}, {}, False)
        current: dict[tuple[str, str], _Visit] = {}
        missing = []
        for key in {(e.website_id, e.visitor_id) for e in events}:
            seen = self.known.get(key)
            if seen is None:
                missing.append(key)
            else:
                current[key] = _Visit(seen.id, seen.end, seen.day)
        if missing:
            since = min(e.ts for e in events) - VISIT_TIMEOUT_MS
            for key, found in _open_visits(missing, since).items():
                current[key] = _Visit(found.id, found.end, found.day)
        touched: list[tuple[tuple[str, str], _Visit]] = []
        for event in sorted(events, key=lambda e: e.ts):
            key = (event.website_id, event.visitor_id)
            visit = current.get(key)
            if visit is None or event.ts - visit.end > VISIT_TIMEOUT_MS:
                if event.event_type == ENGAGEMENT:
                    event.set_visit(None)  # the end of a visit already over: no new visit
                    continue
                visit = current[key] = _Visit(None, event.ts, event.ts // DAY_MS, event)
            if not visit.events:
                touched.append((key, visit))
            visit.add(event)
        new = [visit for _, visit in touched if visit.first is not None]
        _insert_visits(new)
        changes: dict[int, _Change] = {}
        known: dict[tuple[str, str], _Known] = {}
        for key, visit in touched:
            assert visit.id is not None
            for event in visit.events:
                event.set_visit(visit.id)
            if visit.first is None and visit.change is not None:
                changes[visit.id] = visit.change
            day = visit.end // DAY_MS if visit.first is not None else visit.day
            known[key] = _Known(visit.id, visit.end, day)
        if self.flush_seconds <= 0:
            _write_changes(changes)
            return Staged({}, known, True)
        if flush and self.clock() - self._written_at >= self.flush_seconds:
            _write_changes(self._with(changes))
            return Staged({}, known, True)
        return Staged(changes, known, False)

    def _with(self, changes: dict[int, _Change]) -> dict[int, _Change]:
        """The pending changes followed by ``changes`` (the book is not modified)."""
        combined = dict(self.pending)
        for visit_id, change in changes.items():
            earlier = combined.get(visit_id)
            combined[visit_id] = change if earlier is None else earlier.then(change)
        return combined

    def commit(self, staged: Staged) -> None:
        """Take in a staged batch whose transaction committed."""
        if staged.wrote:
            self.pending = {}
            self._written_at = self.clock()
            if self.flush_seconds <= 0:
                self.known = {}  # other writers may change these visits: look them up again
                return
        else:
            self.pending = self._with(staged.changes)
        known = self.known  # least recently touched first
        for key, visit in staged.known.items():
            known.pop(key, None)
            known[key] = visit
        while len(known) > self.remember:
            oldest = next(iter(known))
            if known[oldest].id in self.pending:
                break  # its row lags: a look-up would not find its end (the next write ends it)
            del known[oldest]

    def write_pending(self) -> None:
        """Write the pending changes in a transaction of their own (the writer calls it when no
        batch came to carry them, and when it stops)."""
        if not self.pending:
            return
        with database.obj.atomic():
            _write_changes(self.pending)
        self.commit(Staged({}, {}, True))

    def stopped(self) -> None:
        """The writer stopped: write what is pending, then say so to ``on_stop``."""
        self.write_pending()
        if self.on_stop is not None:
            self.on_stop()


def update_visits(events: Sequence[NewEvent]) -> None:
    """Attach each event to its visit and bring the visit rows up to date (sets
    ``event.visit_id``), in the caller's transaction, which then stores the events."""
    book = VisitBook()
    book.commit(book.stage(events))


def _stored_event(row: dict[str, Any]) -> NewEvent:
    """A stored event (without visit) as the writer would have seen it."""
    try:
        props = json.loads(row["props"] or "{}")
    except ValueError:
        props = {}
    return NewEvent(
        website_id=row["website"], ts=row["ts"], event_type=row["event_type"],
        pathname=row["pathname"], visitor_id=row["visitor_id"], session_id=row["session_id"],
        referrer=row["referrer"], source=row["source"], hostname=row["hostname"],
        title=row["title"], screen_width=row["screen_width"], device=row["device"],
        browser=row["browser"], os=row["os"], country=row["country"], props=props,
        campaign=NO_CAMPAIGN, channel=channel_of(row["source"]),
        interactive=bool(row["interactive"]),
    )


def rebuild_visits(page: int = 5000) -> int:
    """Build the visits of events stored without one (older than visits), oldest first;
    return how many events were attached. Runs inside the migration's transaction."""
    attached = 0
    for website_id in _websites_with_unvisited_events():
        after = (-1, -1)
        while True:
            query = (Event.select()
                     .where((Event.website == website_id) & Event.visit_id.is_null()
                            & (Event.ts >= after[0]))
                     .order_by(Event.ts, Event.id).limit(page).dicts())
            rows = [r for r in cast(Iterable[dict[str, Any]], query)
                    if (r["ts"], r["id"]) > after]
            if not rows:
                break
            events = [_stored_event(r) for r in rows]
            update_visits(events)
            by_visit: dict[int, list[int]] = defaultdict(list)
            for row, event in zip(rows, events, strict=True):
                if event.visit_id is not None:
                    by_visit[event.visit_id].append(row["id"])
            for visit_id, ids in by_visit.items():
                for chunk in _chunks(ids, _LOOKUP_CHUNK):
                    Event.update(visit_id=visit_id).where(  # ids may be per website
                        (Event.website == website_id) & Event.id.in_(chunk)).execute()
                attached += len(ids)
            after = (rows[-1]["ts"], rows[-1]["id"])
    return attached


def _websites_with_unvisited_events() -> list[str]:
    query = Event.select(Event.website).where(Event.visit_id.is_null()).distinct().tuples()
    return [row[0] for row in cast(Iterable[tuple[str]], query)]


def _chunks(values: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


class _Stored(NamedTuple):
    """A stored event, as much as counting it into its visit reads."""

    ts: int
    event_type: str
    pathname: str
    interactive: bool


_REPAIRED = ("start_ts", "end_ts", "end_day", "exit_page", "pageviews", "events",
             "interactions", "bounce", "duration")


def repair_recent_visits(window_ms: int = REPAIR_MS) -> int:
    """Rebuild from their events the visits that had an event in the last ``window_ms`` of
    each website's history: what a writer that stopped without writing its pending changes
    (a crash) left out. Run at start-up, before the writer; returns the visits corrected."""
    db = database.obj
    p = db.param
    repaired = 0
    websites = [row[0] for row in db.execute_sql('SELECT website_id FROM "event_counter"')]
    for website_id in websites:
        (last,) = db.execute_sql(f'SELECT MAX(ts) FROM "event" WHERE website_id = {p}',
                                 [website_id]).fetchone()
        if last is None:
            continue
        ids = [row[0] for row in db.execute_sql(
            f'SELECT DISTINCT visit_id FROM "event" WHERE website_id = {p} AND ts >= {p} '
            "AND visit_id IS NOT NULL", [website_id, last - window_ms])]
        stored: dict[int, dict[str, Any]] = {}
        for chunk in _chunks(sorted(ids), _LOOKUP_CHUNK):
            marks = ", ".join([p] * len(chunk))
            stored.update((row[0], dict(zip(_REPAIRED, row[1:], strict=True))) for row in
                          db.execute_sql(f'SELECT id, {", ".join(_REPAIRED)} FROM "visit" '
                                         f"WHERE id IN ({marks})", chunk))
        # Latest start first: each chunk reads the events since its own earliest start.
        by_start = sorted(stored, key=lambda visit_id: stored[visit_id]["start_ts"],
                          reverse=True)
        for chunk in _chunks(by_start, _LOOKUP_CHUNK):
            fixes = _rebuilt(website_id, {visit_id: stored[visit_id] for visit_id in chunk})
            if fixes:
                assignments = ", ".join(f"{name} = {p}" for name in _REPAIRED)
                with db.atomic():
                    db.cursor().executemany(f'UPDATE "visit" SET {assignments} WHERE id = {p}',
                                            fixes)
                repaired += len(fixes)
    return repaired


def _rebuilt(website_id: str, stored: dict[int, dict[str, Any]]) -> list[list[Any]]:
    """The ``UPDATE`` parameters of the ``stored`` visits (id → row) whose events say
    otherwise."""
    db = database.obj
    p = db.param
    events: dict[int, list[_Stored]] = defaultdict(list)
    for visit_id, ts, kind, pathname, interactive in db.execute_sql(
            'SELECT visit_id, ts, event_type, pathname, interactive FROM "event" '
            f"WHERE website_id = {p} AND ts >= {p} "
            f'AND visit_id IN ({", ".join([p] * len(stored))}) ORDER BY ts, id',
            [website_id, min(row["start_ts"] for row in stored.values()), *stored]):
        events[visit_id].append(_Stored(ts, kind, pathname, bool(interactive)))
    fixes = []
    for visit_id, row in stored.items():
        found = events.get(visit_id)
        if not found or found[0].ts > row["start_ts"]:
            continue  # its first events are gone (retention): nothing to rebuild it from
        change = _Change(row["end_day"])
        for event in found:
            change.add(event)
        rebuilt = {**change.totals(), "exit_page": change.exit_page or row["exit_page"]}
        if any(rebuilt[name] != row[name] for name in _REPAIRED):
            fixes.append([rebuilt[name] for name in _REPAIRED] + [visit_id])
    return fixes
