"""B2 — fan-out: 1,000 SSE subscribers on one website, 200 events/s for 20 s; Pulse against
nginx + nchan publishing the same ~300-byte messages to 1,000 SSE subscribers, in the same run.

Each message carries its sequence number and send time (``"sq":N,"st":µs``, monotonic clock) in
its props; every subscriber checks that it receives all of them, in order, and records
post→receive latency. Pulse gets its events through the real tracking endpoint (validation,
enrichment, group commit, publish); nchan through its publisher location. The servers run on the
first core, this process (publisher and subscribers) on the last one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    USER_AGENT,
    cpus,
    machine_facts,
    median,
    nchan_available,
    nchan_server,
    percentile,
    pulse_server,
    raise_nofile,
    write_json,
)
from bench.sse_load import (  # noqa: E402
    PLAIN_PATTERN,
    PULSE_PATTERN,
    Totals,
    close_streams,
    install_uvloop,
    now_us,
    open_streams,
)


def event_body(website_id: str, seq: int, rng: random.Random) -> bytes:
    """A ~300-byte tracking event whose props hold its sequence number and send time."""
    v = rng.randrange(500)
    body = {
        "website_id": website_id, "event_type": "pageview",
        "pathname": f"/products/blue-widget-{seq % 40}", "visitor_id": f"v{v:07d}",
        "session_id": f"s{v:07d}", "referrer": "https://news.ycombinator.com/",
        "hostname": "bench.example.com", "title": "Pulse fan-out benchmark page",
        "screen_width": 1440, "props": {"sq": seq, "st": now_us()},
    }
    return json.dumps(body, separators=(",", ":")).encode()


async def publish(url: str, website_id: str, rate: float, seconds: float,
                  headers: dict[str, str]) -> dict[str, Any]:
    """POST ``rate`` events per second for ``seconds``, paced; return counts."""
    rng = random.Random(7)
    total = int(rate * seconds)
    errors = 0
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(seq: int) -> None:
            nonlocal errors
            try:
                async with session.post(url, data=event_body(website_id, seq, rng),
                                        headers=headers) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
            except aiohttp.ClientError:
                errors += 1

        started = time.monotonic()
        tasks = []
        for seq in range(total):
            delay = started + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(seq)))
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        elapsed = time.monotonic() - started
    return {"posted": total, "post_errors": errors, "statuses": statuses,
            "publish_seconds": elapsed}


async def one_run(target: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement of ``target`` (``pulse`` or ``nchan``)."""
    server_cpu, _ = cpus()
    with _server(target, server_cpu, args) as (server, port, path, pub_url, headers, website_id):
        pattern = PULSE_PATTERN if target == "pulse" else PLAIN_PATTERN
        totals = Totals()
        streams, _ = await open_streams("127.0.0.1", port, path, args.subscribers,
                                        headers=headers, pattern=pattern, totals=totals)
        await asyncio.sleep(1.0)
        rss_before = server.rss_kb()
        pub_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        outcome = await publish(pub_url, website_id, args.rate, args.seconds, pub_headers)
        expected = outcome["posted"] * args.subscribers
        deadline = time.monotonic() + args.drain
        while totals.messages < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        complete = sum(1 for s in streams if s.count == outcome["posted"])
        closed_early = totals.closed
        close_streams(streams)
    latencies = totals.latencies_us
    return {
        **outcome,
        "subscribers": args.subscribers, "connected": totals.connected,
        "refused": totals.refused, "closed_early": closed_early,
        "delivered": totals.messages, "expected": expected,
        "delivered_pct": 100.0 * totals.messages / expected if expected else 0.0,
        "complete_subscribers": complete, "out_of_order": totals.out_of_order,
        "p50_ms": percentile(latencies, 50) / 1000, "p99_ms": percentile(latencies, 99) / 1000,
        "max_ms": (max(latencies) / 1000) if latencies else 0.0,
        "server_rss_kb_before": rss_before,
    }


@contextlib.contextmanager
def _server(target: str, cpu: str,
            args: argparse.Namespace) -> Iterator[tuple[Any, int, str, str, dict[str, str], str]]:
    """The server under test: (server, port, SSE path, publish URL, headers, website id)."""
    if target == "pulse":
        with pulse_server(cpu) as pulse:
            yield (pulse, pulse.port, pulse.live_path, pulse.base + "/web/analytics/track",
                   {"Authorization": f"Bearer {pulse.token}"}, pulse.website_id)
    else:
        with nchan_server(cpu) as nchan:
            yield nchan, nchan.port, "/sub?id=bench", nchan.base + "/pub?id=bench", {}, "bench"


def main() -> int:
    """Run B2 and print/keep the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--drain", type=float, default=15, help="seconds to wait for stragglers")
    parser.add_argument("--only", choices=["pulse", "nchan"], help="run one side only")
    parser.add_argument("--name", default="b2_fanout")
    args = parser.parse_args()
    if not nchan_available() and args.only != "pulse":
        print("nginx or the nchan module is missing: pass --only pulse", file=sys.stderr)
        return 2
    raise_nofile(20_000)
    _, load_cpu = cpus()
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {int(load_cpu)})
    install_uvloop()
    facts = machine_facts()
    targets = [args.only] if args.only else ["nchan", "pulse"]
    rounds = []
    for r in range(args.rounds):
        row = {}
        for target in (targets if r % 2 == 0 else targets[::-1]):
            row[target] = asyncio.run(one_run(target, args))
            res = row[target]
            print(f"round {r + 1} {target}: delivered {res['delivered_pct']:.2f}% "
                  f"out-of-order {res['out_of_order']} p50 {res['p50_ms']:.1f} ms "
                  f"p99 {res['p99_ms']:.1f} ms max {res['max_ms']:.1f} ms "
                  f"closed {res['closed_early']}", flush=True)
        if "pulse" in row and "nchan" in row and row["nchan"]["p99_ms"]:
            row["p99_ratio"] = row["pulse"]["p99_ms"] / row["nchan"]["p99_ms"]
        rounds.append(row)
    summary: dict[str, Any] = {}
    for target in targets:
        summary[target] = {k: median([r[target][k] for r in rounds])
                           for k in ("delivered_pct", "p50_ms", "p99_ms", "max_ms")}
        summary[target]["out_of_order_total"] = sum(r[target]["out_of_order"] for r in rounds)
    if len(targets) == 2:
        summary["p99_ratio_median"] = median([r["p99_ratio"] for r in rounds if "p99_ratio" in r])
    payload = {"scenario": args.name, "machine": facts, "command": " ".join(sys.argv),
               "args": vars(args), "rounds": rounds, "summary": summary}
    path = write_json(args.name, payload)
    print(json.dumps(summary, indent=2))
    print(f"raw figures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
