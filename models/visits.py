"""Visits kept at ingest: the writer calls ``update_visits`` in the transaction that stores a
batch of events, so every committed event already belongs to an up-to-date visit row.

Definitions (Plausible's): a visit is a run of one visitor's events at most 30 minutes apart;
a bounce is a visit with at most one pageview and no interactive custom event; the duration is
last event − first event (0 for a bounce); the entry page is the first event's page, the exit
page the last pageview's. Engagement events (``event_type = "engagement"``) extend the visit's
end but are neither pageviews nor custom events, and never start a visit.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, cast

from models.channels import NO_CAMPAIGN, channel_of
from models.db import database
from models.entities import DAY_MS, Event
from models.records import NewEvent

VISIT_TIMEOUT_MS = 30 * 60 * 1000
PAGEVIEW = "pageview"
ENGAGEMENT = "engagement"
_LOOKUP_CHUNK = 500  # visitor ids per lookup query (far below SQLite's variable limit)


VISIT_FIELDS = (
    "website_id", "visitor_id", "start_ts", "end_ts", "end_day", "entry_page", "exit_page",
    "pageviews", "events", "interactions", "bounce", "duration", "source", "referrer",
    "channel", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "country",
    "device", "browser", "os",
)
_CHANGING = ("start_ts", "end_ts", "exit_page", "pageviews", "events", "interactions",
             "bounce", "duration")
# What the look-up of an open visit reads: its key and what a new event can change.
_LOOKED_UP = ("id", "website_id", "visitor_id", "end_day", *_CHANGING)
_INSERT_CHUNK = 500  # visits per multi-row INSERT (24 values each: far below variable limits)


class _OpenVisit:
    """A visit touched by this batch: its row, and whether it is new or changed."""

    __slots__ = ("row", "new", "changed", "events", "day")

    def __init__(self, row: dict[str, Any], new: bool) -> None:
        self.row = row
        self.new = new
        self.changed = new
        self.events: list[NewEvent] = []
        self.day = row["end_day"]  # as stored: an UPDATE moves the index entry only if it changed

    def add(self, event: NewEvent) -> None:
        """Count ``event`` into the visit."""
        row = self.row
        if event.ts < row["start_ts"]:
            row["start_ts"] = event.ts
        if event.ts > row["end_ts"]:
            row["end_ts"] = event.ts
            row["end_day"] = event.ts // DAY_MS
        if event.event_type != ENGAGEMENT:
            row["events"] += 1
            if event.event_type == PAGEVIEW:
                row["pageviews"] += 1
                row["exit_page"] = event.pathname
            else:
                row["interactions"] += 1
        row["bounce"] = int(row["pageviews"] <= 1 and row["interactions"] == 0)
        row["duration"] = 0 if row["bounce"] else row["end_ts"] - row["start_ts"]
        self.changed = True
        self.events.append(event)


def _new_visit(event: NewEvent) -> _OpenVisit:
    campaign = event.campaign
    return _OpenVisit({
        "website_id": event.website_id, "visitor_id": event.visitor_id,
        "start_ts": event.ts, "end_ts": event.ts, "end_day": event.ts // DAY_MS,
        "entry_page": event.pathname, "exit_page": event.pathname,
        "pageviews": 0, "events": 0, "interactions": 0, "bounce": 1, "duration": 0,
        "source": event.source, "referrer": event.referrer, "channel": event.channel,
        "utm_source": campaign.utm_source, "utm_medium": campaign.utm_medium,
        "utm_campaign": campaign.utm_campaign, "utm_term": campaign.utm_term,
        "utm_content": campaign.utm_content,
        "country": event.country, "device": event.device, "browser": event.browser,
        "os": event.os,
    }, new=True)


def _open_visits(events: Sequence[NewEvent]) -> dict[tuple[str, str], _OpenVisit]:
    """The latest stored visit of each (website, visitor) of the batch that may still go on
    (plain SQL: this runs in the writer's transaction for every batch)."""
    db = database.obj
    mark = db.param
    keys = {(e.website_id, e.visitor_id) for e in events}
    websites = sorted({website for website, _ in keys})
    visitors = sorted({visitor for _, visitor in keys})
    since = min(e.ts for e in events) - VISIT_TIMEOUT_MS
    names = _LOOKED_UP
    found: dict[tuple[str, str], _OpenVisit] = {}
    for start in range(0, len(visitors), _LOOKUP_CHUNK):
        chunk = visitors[start:start + _LOOKUP_CHUNK]
        sql = (f'SELECT {", ".join(names)} FROM "visit" WHERE website_id IN '
               f'({", ".join([mark] * len(websites))}) AND visitor_id IN '
               f'({", ".join([mark] * len(chunk))}) AND end_day >= {mark} AND end_ts >= {mark} '
               "ORDER BY end_ts")
        params = [*websites, *chunk, since // DAY_MS, since]
        for values in db.execute_sql(sql, params).fetchall():
            row = dict(zip(names, values, strict=True))
            key = (row["website_id"], row["visitor_id"])
            if key in keys:
                found[key] = _OpenVisit(row, new=False)  # the latest one wins
    return found


def _insert_visits(visits: list[_OpenVisit]) -> None:
    """Insert new visits with multi-row INSERT … RETURNING id (SQLite ≥ 3.35, PostgreSQL)."""
    db = database.obj
    row_marks = "(" + ", ".join([db.param] * len(VISIT_FIELDS)) + ")"
    for start in range(0, len(visits), _INSERT_CHUNK):
        chunk = visits[start:start + _INSERT_CHUNK]
        sql = (f'INSERT INTO "visit" ({", ".join(VISIT_FIELDS)}) VALUES '
               + ", ".join([row_marks] * len(chunk)) + " RETURNING id")
        params = [visit.row[name] for visit in chunk for name in VISIT_FIELDS]
        ids = [row[0] for row in db.execute_sql(sql, params).fetchall()]
        for visit, visit_id in zip(chunk, sorted(ids), strict=True):
            visit.row["id"] = visit_id  # ids grow with the rows of one statement


def update_visits(events: Sequence[NewEvent]) -> None:
    """Attach each event to its visit and keep the visit rows up to date (sets
    ``event.visit_id``). Call it inside the transaction that then stores the events."""
    if not events:
        return
    current = _open_visits(events)
    touched: list[_OpenVisit] = list(current.values())
    for event in sorted(events, key=lambda e: e.ts):
        key = (event.website_id, event.visitor_id)
        visit = current.get(key)
        if visit is None or event.ts - visit.row["end_ts"] > VISIT_TIMEOUT_MS:
            if event.event_type == ENGAGEMENT:
                event.set_visit(None)  # the end of a visit already over: no new visit
                continue
            visit = current[key] = _new_visit(event)
            touched.append(visit)
        visit.add(event)
    _insert_visits([visit for visit in touched if visit.new])
    changed = [visit for visit in touched if visit.changed and not visit.new]
    # Most changes keep the visit's day: their UPDATE leaves the look-up index alone.
    for names, rows in ((_CHANGING, [v for v in changed if v.row["end_day"] == v.day]),
                        ((*_CHANGING, "end_day"), [v for v in changed
                                                   if v.row["end_day"] != v.day])):
        if rows:
            db = database.obj
            assignments = ", ".join(f"{name} = {db.param}" for name in names)
            db.cursor().executemany(f'UPDATE "visit" SET {assignments} WHERE id = {db.param}',
                                    [[v.row[name] for name in names] + [v.row["id"]]
                                     for v in rows])
    for visit in touched:
        for event in visit.events:
            event.set_visit(visit.row["id"])


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
