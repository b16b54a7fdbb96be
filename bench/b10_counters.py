"""B10 — 10,000 embedded live counters (``GET /embed/{id}/count``): server RSS growth per
counter stream, and server CPU per second while the count changes once a second, against the
same server with no counter open (measured first, in the same run).

Each second one new visitor is tracked, so the website's current visitors (the count) changes
every second. Counters are coalesced by a once-a-second flush, so two changes that land in one
flush interval go out as one frame: "delivered" = frames received / (streams × (1 + changes)) is
therefore a little under 1 by design; what must hold is that every counter got the same frames
(frames_per_stream_min == frames_per_stream_max).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import USER_AGENT, cpus, median, pulse_server, raise_nofile, report  # noqa: E402
from bench.sse_load import as_load_generator, close_streams, open_streams  # noqa: E402

NEEDLE = b'data: {"count":'


def enable_counter(data_dir: Path, website_id: str) -> None:
    """Turn the website's counter on, in the server's database (as the panel's switch does)."""
    from models import setup_database
    from models.alerts import set_counter
    from models.entities import Website

    setup_database(f"sqlite:///{data_dir / 'pulse.db'}")
    set_counter(Website.get_by_id(website_id), True)


def track_every_second(base: str, website_id: str, seconds: float, start: int,
                       stop: threading.Event) -> list[int]:
    """One new visitor per second (a thread: paced independently of the subscribers)."""
    codes = []
    begin = time.monotonic()
    for n in range(int(seconds)):
        body = json.dumps({"website_id": website_id, "event_type": "pageview", "pathname": "/",
                           "visitor_id": f"v{start + n}", "session_id": f"s{start + n}"}).encode()
        request = urllib.request.Request(
            base + "/web/analytics/track", data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=10) as response:
            codes.append(response.status)
        delay = begin + n + 1 - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
    return codes


async def cpu_while_tracking(pulse: Any, seconds: float, start: int) -> tuple[float, list[int]]:
    """Server CPU seconds per second while one visitor a second arrives."""
    stop = threading.Event()
    cpu0 = pulse.cpu_seconds()
    t0 = time.monotonic()
    codes = await asyncio.to_thread(track_every_second, pulse.base, pulse.website_id, seconds,
                                    start, stop)
    await asyncio.sleep(1.5)  # the last change's flush
    elapsed = time.monotonic() - t0
    return (pulse.cpu_seconds() - cpu0) / elapsed, codes


async def measure(pulse: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Baseline (no counters), then the counters."""
    path = f"/embed/{pulse.website_id}/count"
    warm, _ = await open_streams("127.0.0.1", pulse.port, path, 1, needle=NEEDLE, sample=0)
    await asyncio.sleep(0.5)
    close_streams(warm)
    await asyncio.sleep(1.0)
    baseline_cpu, codes0 = await cpu_while_tracking(pulse, args.seconds, 0)
    rss_start = pulse.rss_kb()
    started = time.monotonic()
    streams, totals = await open_streams("127.0.0.1", pulse.port, path, args.streams,
                                         concurrency=args.concurrency, timeout=180,
                                         needle=NEEDLE, sample=0)
    connect_seconds = time.monotonic() - started
    await asyncio.sleep(2.0)
    rss_connected = pulse.rss_kb()
    initial = totals.messages
    counters_cpu, codes1 = await cpu_while_tracking(pulse, args.seconds, 100_000)
    rss_end = pulse.rss_kb()
    changes = len(codes1)
    received = totals.messages
    closed_early = totals.closed
    per_stream = [stream.count for stream in streams if stream.status == 200]

    close_streams(streams)
    await asyncio.sleep(0.5)
    return {
        "streams": args.streams, "connected": totals.connected, "refused": totals.refused,
        "closed_early": closed_early, "connect_seconds": connect_seconds,
        "baseline_cpu_per_s": baseline_cpu, "counters_cpu_per_s": counters_cpu,
        "cpu_ratio": counters_cpu / baseline_cpu if baseline_cpu else None,
        "rss_start_kb": rss_start, "rss_connected_kb": rss_connected, "rss_end_kb": rss_end,
        "bytes_per_stream": (rss_connected - rss_start) * 1024 / max(1, totals.connected),
        "changes": changes, "initial_frames": initial, "frames": received,
        "delivered": received / max(1, totals.connected * (1 + changes)),
        "frames_per_stream_min": min(per_stream, default=0),
        "frames_per_stream_max": max(per_stream, default=0),
        "non_202": sum(1 for c in codes0 + codes1 if c != 202),
    }


def main() -> int:
    """Run B10 and print/keep the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--name", default="b10_counters")
    args = parser.parse_args()
    limit = raise_nofile(args.streams + 1000)
    if limit < args.streams + 100:
        print(f"the open-file limit is {limit}: too low for {args.streams} streams",
              file=sys.stderr)
        return 2
    facts = as_load_generator()
    server_cpu, _ = cpus()
    rounds = []
    for r in range(args.rounds):
        with pulse_server(server_cpu) as pulse:
            enable_counter(pulse.data_dir, pulse.website_id)
            res = asyncio.run(measure(pulse, args))
        rounds.append(res)
        print(f"round {r + 1}: {res['connected']} connected in {res['connect_seconds']:.1f} s, "
              f"{res['bytes_per_stream']:.0f} B/stream, CPU {res['baseline_cpu_per_s']:.3f} → "
              f"{res['counters_cpu_per_s']:.3f} s/s, delivered {res['delivered']:.3f}",
              flush=True)
    summary = {key: median([r[key] for r in rounds]) for key in
               ("bytes_per_stream", "baseline_cpu_per_s", "counters_cpu_per_s", "delivered")}
    summary["cpu_ratio"] = median([r["cpu_ratio"] for r in rounds if r["cpu_ratio"]])
    summary["connected_min"] = min(r["connected"] for r in rounds)
    return report(args.name, args, facts, rounds, summary)


if __name__ == "__main__":
    sys.exit(main())
