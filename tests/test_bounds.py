"""Memory bounded in bytes: the live window under a traffic spike, and the bot-detection cache
under 16 KB User-Agents. Measured with tracemalloc (allocations, not timing)."""

from __future__ import annotations

import time
import tracemalloc

from backend.ingest.enrichment import BOT_AGENT_CHARS, BotVerdicts, _crawlers, is_bot
from backend.live.stats import LiveStats
from models.records import EventRecord

T0 = int(time.time() * 1000)
MIB = 1024 * 1024


def visit(event_id: int, visitor: int, path: str) -> EventRecord:
    return EventRecord(event_id, "w1", T0 + event_id, "pageview", path, f"visitor-{visitor:09d}",
                       f"session-{visitor:09d}", "", "google", "", "", None, "desktop", "Chrome",
                       "Linux", "DE", {})


def test_a_spike_of_new_visitors_cannot_grow_the_window_past_its_budget() -> None:
    budget = MIB
    stats = LiveStats("w1", 300_000, max_bytes=budget)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(12_000):  # ~30 MiB of visitors and 2 KB pages if nothing were bounded
            stats.add(visit(i + 1, i, "/" + "p" * 2_000 + str(i)))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert stats.window_bytes <= budget - budget // 4
    assert stats.history_bytes <= budget // 4
    assert stats.evicted > 0 and stats.current_visitors > 0
    # What the window really holds stays near its estimate (20 recent events of ~2 KB aside).
    assert grown <= budget * 1.25 + 20 * 4_000, grown
    # The chart still counts every visitor of the minute, remembered or not.
    assert sum(row["visitors"] for row in stats.per_minute(T0 + 12_001)) == 12_000


def test_within_its_budget_the_window_lets_nobody_go_early() -> None:
    stats = LiveStats("w1", 300_000)
    for i in range(5_000):
        stats.add(visit(i + 1, i, f"/page/{i % 50}"))
    assert stats.evicted == 0
    assert (stats.current_visitors, stats.unique_visitors) == (5_000, 5_000)
    assert 0 < stats.window_bytes < 5_000 * 600


def test_bot_verdicts_are_bounded_however_long_the_user_agents() -> None:
    verdicts = BotVerdicts(entries=100)

    def long_agent(i: int) -> str:  # a long run of letters took seconds of regex before
        return f"Mozilla/5.0 ({i}) " + "x" * 16_000

    for i in range(100):
        assert verdicts.verdict(long_agent(i)) is False
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(100, 300):  # full: each new verdict replaces the oldest
            assert verdicts.verdict(long_agent(i)) is False
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, grown  # not the 3 MB of User-Agents sent meanwhile
    assert len(verdicts) == 100
    assert verdicts.largest_key() <= BOT_AGENT_CHARS
    # A crawler naming itself in the first 256 characters is caught whatever follows.
    assert verdicts.verdict("Googlebot/2.1 (+http://www.google.com/bot.html) " + "x" * 9_000)
    assert verdicts.verdict("Mozilla/5.0 " + "y" * 100 + " bingbot/2.0 " + "z" * 9_000)
    assert _crawlers.CACHE_SIZE == 0  # crawlerdetect keeps no whole User-Agents of its own
    assert is_bot("") and not is_bot("Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0")
