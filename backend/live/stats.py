"""LiveStats: one website's sliding live window, updated in O(1) amortised per event.

Visitors and sessions are kept in OrderedDicts moved to the end on every event, so the oldest is
always first and leaving the window is a pop from the front (a plain dict would rescan the holes
its deletions leave at the front).

Memory is bounded in bytes (``max_bytes``, ``PULSE_LIVE_MAX_BYTES``): the window keeps an estimate
of what its visitors, sessions and per-minute visitor sets hold (the ``*_BYTES`` costs below,
measured with tracemalloc, plus the lengths of the strings kept). Past three quarters of the
budget the least recently active visitors and sessions leave the window early (``evicted``
counts them); past the last quarter, a minute's visitors are counted without being remembered
(``overflow``: a visitor seen twice in that minute then counts twice). A traffic spike can make
the numbers approximate; it cannot exhaust memory.
"""

from __future__ import annotations

import heapq
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from models.records import EventRecord

RECENT_EVENTS = 20
# What one entry of the window costs besides its strings, in bytes (CPython 3.11, measured).
VISITOR_BYTES = 220  # per visitor: _Visitor, its OrderedDict slot and key, page counters
SESSION_BYTES = 110  # per session (tab): OrderedDict slot, key and timestamp
MINUTE_VISITOR_BYTES = 145  # per distinct visitor in each minute of the 30-minute chart
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
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
    overflow: int = 0  # visitors counted, not remembered (the budget was spent)
    bytes: int = 0


def _visitor_bytes(visitor_id: str, visitor: _Visitor) -> int:
    return VISITOR_BYTES + len(visitor_id) + len(visitor.pathname)


def _top(counter: Counter[str], n: int = TOP_N) -> list[tuple[str, int]]:
    return heapq.nlargest(n, counter.items(), key=lambda kv: (kv[1], kv[0]))


class LiveStats:
    """Current visitors, unique visitors, active pages and recent events of one website."""

    def __init__(self, website_id: str, window_ms: int,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.website_id = website_id
        self.window_ms = window_ms
        self.max_bytes = max_bytes
        self.last_id = 0
        self.window_bytes = 0  # estimated bytes of visitors and sessions
        self.history_bytes = 0  # estimated bytes of the per-minute visitor sets
        self.evicted = 0  # visitors and sessions let go early to stay within max_bytes
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
        if session_key not in self._sessions:
            self.window_bytes += SESSION_BYTES + len(session_key)
        self._sessions[session_key] = ts
        self._sessions.move_to_end(session_key)
        visitor = self._visitors.pop(event.visitor_id, None)
        if visitor is not None:
            self._forget(visitor)
            self.window_bytes -= _visitor_bytes(event.visitor_id, visitor)
        visitor = _Visitor(ts, event.pathname, event.source, event.country, event.device)
        self._visitors[event.visitor_id] = visitor
        self.window_bytes += _visitor_bytes(event.visitor_id, visitor)
        self._remember(visitor)
        self._recent.appendleft(event)
        self._count_minute(event)
        if self.window_bytes > self.max_bytes - self.max_bytes // 4:
            self._evict()
        return True

    def _evict(self) -> None:
        """Let the least recently active sessions and visitors go until the window fits."""
        budget = self.max_bytes - self.max_bytes // 4
        while self.window_bytes > budget and (self._sessions or self._visitors):
            if self._sessions:
                key, _ = self._sessions.popitem(last=False)
                self.window_bytes -= SESSION_BYTES + len(key)
                self.evicted += 1
            if self._visitors and (not self._sessions or self.window_bytes > budget):
                visitor_id, visitor = self._visitors.popitem(last=False)
                self._forget(visitor)
                self.window_bytes -= _visitor_bytes(visitor_id, visitor)
                self.evicted += 1

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
                self.history_bytes -= self._minutes.popleft().bytes
        bucket = self._minutes[-1]
        if bucket.minute != minute:  # a late event for an earlier minute
            bucket = next((b for b in reversed(self._minutes) if b.minute == minute), bucket)
            if bucket.minute != minute:
                return
        bucket.events += 1
        if event.event_type == "pageview":
            bucket.pageviews += 1
        if event.visitor_id in bucket.visitors:
            return
        cost = MINUTE_VISITOR_BYTES + len(event.visitor_id)
        if self.history_bytes + cost > self.max_bytes // 4:
            bucket.overflow += 1
            return
        bucket.visitors.add(event.visitor_id)
        bucket.bytes += cost
        self.history_bytes += cost

    def expire(self, now_ms: int) -> bool:
        """Let visitors and sessions idle for longer than the window leave; True if any left."""
        cutoff = now_ms - self.window_ms
        changed = False
        sessions = self._sessions
        while sessions and sessions[next(iter(sessions))] <= cutoff:
            key, _ = sessions.popitem(last=False)
            self.window_bytes -= SESSION_BYTES + len(key)
            changed = True
        visitors = self._visitors
        while visitors and visitors[next(iter(visitors))].last_ts <= cutoff:
            visitor_id, visitor = visitors.popitem(last=False)
            self._forget(visitor)
            self.window_bytes -= _visitor_bytes(visitor_id, visitor)
            changed = True
        minutes = self._minutes
        while minutes and minutes[0].minute <= now_ms // 60_000 - HISTORY_MINUTES:
            self.history_bytes -= minutes.popleft().bytes
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
                "visitors": len(bucket.visitors) + bucket.overflow if bucket else 0,
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
