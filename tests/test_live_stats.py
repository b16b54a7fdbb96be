"""LiveStats: the live window's rules (the seed's), expiry, and bounded memory."""

from __future__ import annotations

from itertools import count

from backend.live.stats import LiveStats
from models.records import EventRecord

_ids = count(1)
WINDOW_MS = 300_000
T0 = 1_700_000_000_000


def event(visitor: str, path: str, ts: int, session: str | None = None,
          kind: str = "pageview", source: str = "direct") -> EventRecord:
    return EventRecord(next(_ids), "w1", ts, kind, path, visitor, session or visitor, "", source,
                       "", "", None, "desktop", "Chrome", "Linux", "DE", {})


def test_a_visitor_moving_counts_once_on_the_latest_page() -> None:
    stats = LiveStats("w1", WINDOW_MS)
    stats.add(event("alice", "/home", T0))
    stats.add(event("alice", "/products", T0 + 1000))
    assert stats.active_pages() == [{"pathname": "/products", "visitors": 1}]
    assert (stats.current_visitors, stats.unique_visitors) == (1, 1)


def test_two_tabs_of_one_visitor_are_two_current_one_unique() -> None:
    stats = LiveStats("w1", WINDOW_MS)
    stats.add(event("alice", "/a", T0, session="tab-1"))
    stats.add(event("alice", "/b", T0 + 10, session="tab-2"))
    snapshot = stats.snapshot()
    assert snapshot["currentVisitors"] == 2
    assert snapshot["uniqueVisitors"] == 1
    assert snapshot["activePages"] == [{"pathname": "/b", "visitors": 1}]


def test_visitors_leave_after_the_window() -> None:
    stats = LiveStats("w1", WINDOW_MS)
    stats.add(event("alice", "/a", T0))
    stats.add(event("bob", "/b", T0 + 60_000))
    assert not stats.expire(T0 + WINDOW_MS - 1)
    assert stats.expire(T0 + WINDOW_MS)  # alice idle for the whole window
    assert stats.snapshot()["currentVisitors"] == 1
    assert stats.active_pages() == [{"pathname": "/b", "visitors": 1}]
    stats.expire(T0 + 60_000 + WINDOW_MS)
    assert (stats.current_visitors, stats.unique_visitors, stats.active_pages()) == (0, 0, [])


def test_activity_keeps_a_visitor_in_the_window() -> None:
    stats = LiveStats("w1", WINDOW_MS)
    stats.add(event("alice", "/a", T0))
    stats.add(event("bob", "/b", T0 + 1))
    stats.add(event("alice", "/c", T0 + 200_000))
    stats.expire(T0 + WINDOW_MS + 10)
    assert stats.active_pages() == [{"pathname": "/c", "visitors": 1}]


def test_recent_events_are_the_last_twenty_newest_first() -> None:
    stats = LiveStats("w1", WINDOW_MS)
    added = [event(f"v{i}", f"/p{i}", T0 + i) for i in range(25)]
    stats.add_all(added)
    recent = stats.snapshot()["recentEvents"]
    assert len(recent) == 20
    assert [e["id"] for e in recent] == [e.id for e in reversed(added[5:])]


def test_an_event_already_counted_is_ignored() -> None:
    stats = LiveStats("w1", WINDOW_MS)
    first = event("alice", "/a", T0)
    assert stats.add(first)
    assert not stats.add(first)
    assert stats.snapshot()["recentEvents"][0]["id"] == first.id
    assert len(stats.recent_events()) == 1


def test_memory_is_bounded_by_visitors_in_the_window() -> None:
    stats = LiveStats("w1", WINDOW_MS)
    for i in range(10_000):
        stats.add(event(f"v{i}", f"/p{i % 50}", T0 + i * 100))  # 100 ms apart, 1,000 s in all
        stats.expire(T0 + i * 100)
    # Only the last 300 s (3,000 visitors) remain, and only their pages are counted.
    assert stats.unique_visitors == 3000
    assert sum(p["visitors"] for p in stats.active_pages(n=100)) == 3000


def test_top_dimensions_and_per_minute_history() -> None:
    stats = LiveStats("w1", WINDOW_MS)
    stats.add(event("a", "/", T0, source="google"))
    stats.add(event("b", "/", T0 + 61_000, source="google"))
    stats.add(event("c", "/", T0 + 62_000, source="twitter", kind="signup"))
    assert stats.top("source") == [{"name": "google", "visitors": 2},
                                   {"name": "twitter", "visitors": 1}]
    minutes = stats.per_minute(T0 + 62_000)
    assert len(minutes) == 30
    assert sum(m["pageviews"] for m in minutes) == 2
    assert sum(m["visitors"] for m in minutes) == 3


def test_engagement_keeps_a_visitor_current_but_never_shows() -> None:
    stats = LiveStats("w1", WINDOW_MS)
    stats.add(event("alice", "/docs", T0))
    stats.add(event("alice", "/docs", T0 + WINDOW_MS - 1000, kind="engagement"))
    stats.add(event("bob", "/gone", T0 + 1000, kind="engagement"))  # not in the window: ignored
    assert [e.event_type for e in stats.recent_events()] == ["pageview"]
    assert stats.active_pages() == [{"pathname": "/docs", "visitors": 1}]
    assert (stats.current_visitors, stats.unique_visitors) == (1, 1)
    minutes = stats.per_minute(T0 + WINDOW_MS)
    assert sum(row["pageviews"] for row in minutes) == 1
    assert sum(row["visitors"] for row in minutes) == 1  # bob's ping counted nowhere
    stats.expire(T0 + WINDOW_MS + 1)  # the pageview alone would have left the window by now
    assert (stats.current_visitors, stats.unique_visitors) == (1, 1)
