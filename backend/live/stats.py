"""LiveStats: one website's sliding live window, updated in O(1) amortised per event.

Visitors and sessions are kept in OrderedDicts moved to the end on every event, so the oldest is
always first and leaving the window is a pop from the front (a plain dict would rescan the holes
its deletions leave at the front). Memory is bounded by the
visitors inside the window (plus the per-minute history of the last 30 minutes).
"""

from __future__ import annotations

import heapq
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from models.records import EventRecord

RECENT_EVENTS = 20
TOP_N = 10
HISTORY_MINUTES = 30
DIMENSIONS = ("source", "country", "device")
ENGAGEMENT = "engagement"  # Plausible's time-on-page pings: presence, not activity


@dataclass(slots=True)
class _Visitor:
    last_ts: int
    pathname: str
    source: str
    country: str
    device: str


@dataclass(slots=True)
class _Minute:
    minute: int  # ms since the epoch // 60_000
    pageviews: int
    events: int
    visitors: set[str]


def _top(counter: Counter[str], n: int = TOP_N) -> list[tuple[str, int]]:
    return heapq.nlargest(n, counter.items(), key=lambda kv: (kv[1], kv[0]))


class LiveStats:
    """Current visitors, unique visitors, active pages and recent events of one website."""

    def __init__(self, website_id: str, window_ms: int) -> None:
        self.website_id = website_id
        self.window_ms = window_ms
        self.last_id = 0
        self._sessions: OrderedDict[str, int] = OrderedDict()
        self._visitors: OrderedDict[str, _Visitor] = OrderedDict()
        self._pages: Counter[str] = Counter()
        self._dims: dict[str, Counter[str]] = {d: Counter() for d in DIMENSIONS}
        self._recent: deque[EventRecord] = deque(maxlen=RECENT_EVENTS)
        self._minutes: deque[_Minute] = deque()

    @property
    def current_visitors(self) -> int:
        """Active sessions in the window."""
        return len(self._sessions)

    @property
    def unique_visitors(self) -> int:
        """Distinct visitor ids in the window."""
        return len(self._visitors)

    def add(self, event: EventRecord) -> bool:
        """Fold one committed event in; False if it was already counted (by id)."""
        if event.id <= self.last_id:
            return False
        self.last_id = event.id
        ts = event.ts
        if event.event_type == ENGAGEMENT:
            # Still there, on the page of their last pageview or event (a visitor who already
            # left the window stays out): never in the feed, the pages or the per-minute counts.
            visitor = self._visitors.get(event.visitor_id)
            if visitor is not None:
                visitor.last_ts = max(visitor.last_ts, ts)
                self._visitors.move_to_end(event.visitor_id)
                session_key = event.session_id or event.visitor_id
                self._sessions[session_key] = max(ts, self._sessions.get(session_key, ts))
                self._sessions.move_to_end(session_key)
            return True
        session_key = event.session_id or event.visitor_id
        self._sessions[session_key] = ts
        self._sessions.move_to_end(session_key)
        visitor = self._visitors.pop(event.visitor_id, None)
        if visitor is not None:
            self._forget(visitor)
        visitor = _Visitor(ts, event.pathname, event.source, event.country, event.device)
        self._visitors[event.visitor_id] = visitor
        self._remember(visitor)
        self._recent.appendleft(event)
        self._count_minute(event)
        return True

    def add_all(self, events: Iterable[EventRecord]) -> None:
        """Fold several events in, oldest first."""
        for event in events:
            self.add(event)

    def _remember(self, visitor: _Visitor) -> None:
        self._pages[visitor.pathname] += 1
        for dim in DIMENSIONS:
            self._dims[dim][getattr(visitor, dim) or "unknown"] += 1

    def _forget(self, visitor: _Visitor) -> None:
        _decrement(self._pages, visitor.pathname)
        for dim in DIMENSIONS:
            _decrement(self._dims[dim], getattr(visitor, dim) or "unknown")

    def _count_minute(self, event: EventRecord) -> None:
        minute = event.ts // 60_000
        if not self._minutes or self._minutes[-1].minute < minute:
            self._minutes.append(_Minute(minute, 0, 0, set()))
            while self._minutes[0].minute <= minute - HISTORY_MINUTES:
                self._minutes.popleft()
        bucket = self._minutes[-1]
        if bucket.minute != minute:  # a late event for an earlier minute
            bucket = next((b for b in reversed(self._minutes) if b.minute == minute), bucket)
            if bucket.minute != minute:
                return
        bucket.events += 1
        if event.event_type == "pageview":
            bucket.pageviews += 1
        bucket.visitors.add(event.visitor_id)

    def expire(self, now_ms: int) -> bool:
        """Let visitors and sessions idle for longer than the window leave; True if any left."""
        cutoff = now_ms - self.window_ms
        changed = False
        sessions = self._sessions
        while sessions and sessions[next(iter(sessions))] <= cutoff:
            sessions.popitem(last=False)
            changed = True
        visitors = self._visitors
        while visitors and visitors[next(iter(visitors))].last_ts <= cutoff:
            self._forget(visitors.popitem(last=False)[1])
            changed = True
        minutes = self._minutes
        while minutes and minutes[0].minute <= now_ms // 60_000 - HISTORY_MINUTES:
            minutes.popleft()
        return changed

    @property
    def empty(self) -> bool:
        """Nobody in the window and no history worth keeping."""
        return not self._sessions and not self._visitors and not self._minutes

    def active_pages(self, n: int = TOP_N) -> list[dict[str, Any]]:
        """Pages being viewed now: each visitor counted once, on the page of their latest event."""
        return [{"pathname": p, "visitors": c} for p, c in _top(self._pages, n)]

    def active_pages_in(self, country: str, n: int = TOP_N) -> list[dict[str, Any]]:
        """Active pages of the visitors from one country (a pass over the window's visitors: for
        a page filtered to a country, not for every frame)."""
        pages: Counter[str] = Counter(v.pathname for v in self._visitors.values()
                                      if (v.country or "unknown") == country)
        return [{"pathname": p, "visitors": c} for p, c in _top(pages, n)]

    def top(self, dimension: str, n: int = TOP_N) -> list[dict[str, Any]]:
        """Current visitors by source, country or device."""
        return [{"name": k, "visitors": c} for k, c in _top(self._dims[dimension], n)]

    def per_minute(self, now_ms: int) -> list[dict[str, int]]:
        """Pageviews and visitors for each of the last 30 minutes, oldest first."""
        last = now_ms // 60_000
        by_minute = {b.minute: b for b in self._minutes}
        rows = []
        for minute in range(last - HISTORY_MINUTES + 1, last + 1):
            bucket = by_minute.get(minute)
            rows.append({
                "minute": minute * 60_000,
                "pageviews": bucket.pageviews if bucket else 0,
                "visitors": len(bucket.visitors) if bucket else 0,
            })
        return rows

    def key(self) -> tuple[int, int, tuple[tuple[str, int], ...]]:
        """What a ``stats`` frame shows; a change in it means the frame is worth sending."""
        return (self.current_visitors, self.unique_visitors, tuple(_top(self._pages)))

    def snapshot(self) -> dict[str, Any]:
        """The ``connected`` / ``stats`` frame body."""
        return {
            "currentVisitors": self.current_visitors,
            "uniqueVisitors": self.unique_visitors,
            "recentEvents": [e.to_json() for e in self._recent],
            "activePages": self.active_pages(),
        }

    def recent_events(self) -> list[EventRecord]:
        """The 20 most recent events, newest first."""
        return list(self._recent)


def _decrement(counter: Counter[str], key: str) -> None:
    remaining = counter[key] - 1
    if remaining > 0:
        counter[key] = remaining
    else:
        del counter[key]
