"""B5 — the live window with 1k, 10k and 100k distinct visitors inside it: µs per event
(LiveStats.add alone, and the hub's whole publish path without listeners) and the time to
compute a website's stats (snapshot, the tick's change key, and the panel's breakdowns).

In-process: the window's cost is pure Python work on one core, no I/O. The baseline is the
window with 1,000 visitors, measured in the same run; the ratio is cost(N) / cost(1k).
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.live.hub import Hub  # noqa: E402
from backend.live.stats import DIMENSIONS, LiveStats  # noqa: E402
from bench.common import machine_facts, median, report  # noqa: E402
from models.records import EventRecord  # noqa: E402

WEBSITE = "b5site"
PAGES = [f"/products/item-{i}" for i in range(1000)]
SOURCES = ["direct", "google", "news.ycombinator.com", "duckduckgo", "twitter.com"]
COUNTRIES = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "NL", "SE", "CA"]
DEVICES = ["desktop", "mobile", "tablet"]


def make_events(visitors: int, count: int, start_id: int, start_ts: int,
                rng: random.Random) -> list[EventRecord]:
    """``count`` pageviews by visitors drawn from ``visitors`` distinct ids, 1 ms apart."""
    events = []
    for i in range(count):
        v = rng.randrange(visitors)
        events.append(EventRecord(
            start_id + i, WEBSITE, start_ts + i, "pageview", rng.choice(PAGES), f"v{v:07d}",
            f"s{v:07d}", "", SOURCES[v % len(SOURCES)], "bench.example.com", "A page", 1440,
            DEVICES[v % len(DEVICES)], "Chrome", "Linux", COUNTRIES[v % len(COUNTRIES)],
            {"plan": "pro"}))
    return events


def fill(visitors: int, now: int) -> list[EventRecord]:
    """One event for each visitor, spread over the last four minutes of a 5-minute window."""
    step = max(1, 240_000 // visitors)
    return [EventRecord(
        i + 1, WEBSITE, now - 240_000 + i * step, "pageview", PAGES[i % len(PAGES)],
        f"v{i:07d}", f"s{i:07d}", "", SOURCES[i % len(SOURCES)], "bench.example.com", "A page",
        1440, DEVICES[i % len(DEVICES)], "Chrome", "Linux", COUNTRIES[i % len(COUNTRIES)],
        {"plan": "pro"}) for i in range(visitors)]


def timed(fn: Any, repeat: int) -> float:
    """Median seconds of ``repeat`` calls of ``fn``."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return median(samples)


def measure(visitors: int, events: int, seed: int) -> dict[str, float]:
    """Per-event and per-stats costs with ``visitors`` distinct visitors in the window."""
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    seed_events = fill(visitors, now)
    stream = make_events(visitors, events, visitors + 1, now - 10_000, rng)

    stats = LiveStats(WEBSITE, 300_000)
    stats.add_all(seed_events)
    gc.collect()
    started = time.perf_counter()
    for event in stream:
        stats.add(event)
    add_us = (time.perf_counter() - started) / events * 1e6
    assert stats.unique_visitors == visitors, stats.unique_visitors

    hub = Hub(window_seconds=300)
    hub.stats(WEBSITE).add_all(seed_events)
    batches = [stream[i:i + 20] for i in range(0, len(stream), 20)]
    gc.collect()
    started = time.perf_counter()
    for batch in batches:
        hub.publish(batch)
    publish_us = (time.perf_counter() - started) / events * 1e6

    snapshot_ms = timed(stats.snapshot, 50) * 1000
    key_ms = timed(stats.key, 50) * 1000
    breakdown_ms = timed(lambda: [stats.top(d) for d in DIMENSIONS], 50) * 1000
    tick_ms = timed(lambda: hub.tick(now), 50) * 1000
    return {"add_us": add_us, "publish_us": publish_us, "snapshot_ms": snapshot_ms,
            "key_ms": key_ms, "breakdowns_ms": breakdown_ms, "tick_ms": tick_ms,
            "stats_ms": snapshot_ms + key_ms + breakdown_ms}


def main() -> int:
    """Run B5 and print/keep the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--name", default="b5_window")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    facts = machine_facts()
    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        row = {str(n): measure(n, args.events, seed=r) for n in sizes}
        rounds.append(row)
        print(f"round {r + 1}: " + " | ".join(
            f"{n}: add {row[str(n)]['add_us']:.2f} µs, publish {row[str(n)]['publish_us']:.2f} µs"
            f", stats {row[str(n)]['stats_ms']:.3f} ms" for n in sizes), flush=True)
    keys = rounds[0][str(sizes[0])].keys()
    summary: dict[str, Any] = {str(n): {k: median([r[str(n)][k] for r in rounds]) for k in keys}
                               for n in sizes}
    base = summary[str(sizes[0])]
    for n in sizes:
        summary[str(n)]["add_ratio"] = summary[str(n)]["add_us"] / base["add_us"]
        summary[str(n)]["publish_ratio"] = summary[str(n)]["publish_us"] / base["publish_us"]
    return report(args.name, args, facts, rounds, summary)


if __name__ == "__main__":
    sys.exit(main())
