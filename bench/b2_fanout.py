"""B2 — fan-out: 1,000 SSE subscribers on one website, 200 events/s for 20 s; Pulse against
nginx + nchan publishing the same ~300-byte messages to 1,000 SSE subscribers, in the same run.

Each message carries its sequence number and send time (``"sq":N,"st":µs``, monotonic clock) in
its props; every subscriber checks that it receives all of them, in order, and records
post→receive latency. Pulse gets its events through the real tracking endpoint (validation,
enrichment, group commit, publish); nchan through its publisher location. The servers run on the
first core; the subscribers (this process) and the publisher (a process of its own) on the last
one. So that one Python process can follow 200,000 messages a second, only ``--sample``
subscribers parse every message (ids, order, latency); the others count theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import sys
import time
import urllib.request
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    USER_AGENT,
    cpus,
    median,
    nchan_available,
    nchan_server,
    percentile,
    pulse_server,
    py_spy,
    raise_nofile,
    report,
)
from bench.sse_load import (  # noqa: E402
    PLAIN_NEEDLE,
    PLAIN_PATTERN,
    PULSE_NEEDLE,
    PULSE_PATTERN,
    Totals,
    as_load_generator,
    close_streams,
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
    durations: list[float] = []
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(seq: int) -> None:
            nonlocal errors
            try:
                sent = time.monotonic()
                async with session.post(url, data=event_body(website_id, seq, rng),
                                        headers=headers) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                durations.append(time.monotonic() - sent)
            except aiohttp.ClientError:
                errors += 1

        started = time.monotonic()
        tasks = []
        for seq in range(total):
            delay = started + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(seq)))
        _, late = await asyncio.wait(tasks, timeout=30)
        for task in late:  # the server fell too far behind: count them as failed
            task.cancel()
            errors += 1
        elapsed = time.monotonic() - started
    return {"posted": total, "post_errors": errors, "statuses": statuses,
            "publish_seconds": elapsed, "post_p50_ms": percentile(durations, 50) * 1000,
            "post_p99_ms": percentile(durations, 99) * 1000}


def warm_up(url: str, website_id: str, headers: dict[str, str], count: int = 50) -> None:
    """A few events before the measurement, so that first-use costs (regex compilation, caches)
    are not measured."""
    rng = random.Random(1)
    for seq in range(count):
        body = event_body(website_id, 1_000_000 + seq, rng)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def publisher_process(url: str, website_id: str, rate: float, seconds: float,
                      headers: dict[str, str], conn: Connection, cpu: str | None) -> None:
    """The publisher, in a process of its own so that the subscribers never delay it."""
    if cpu is not None:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(0, {int(cpu)})
    conn.send(asyncio.run(publish(url, website_id, rate, seconds, headers)))
    conn.close()


async def run_publisher(url: str, website_id: str, args: argparse.Namespace,
                        headers: dict[str, str]) -> dict[str, Any]:
    """Start the publisher process and wait for its counts while this loop serves the
    subscribers."""
    _, load_cpu = cpus()
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=publisher_process, daemon=True,
                       args=(url, website_id, args.rate, args.seconds, headers, sender, load_cpu))
    proc.start()
    deadline = time.monotonic() + args.seconds + 60
    try:
        while not receiver.poll() and time.monotonic() < deadline and proc.is_alive():
            await asyncio.sleep(0.05)
        if not receiver.poll():
            raise RuntimeError("the publisher did not finish in time")
        return receiver.recv()  # type: ignore[no-any-return]
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()


async def one_run(target: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement of ``target`` (``pulse`` or ``nchan``)."""
    server_cpu, _ = cpus()
    with _server(target, server_cpu, args) as (server, port, path, pub_url, headers, website_id):
        pattern = PULSE_PATTERN if target == "pulse" else PLAIN_PATTERN
        needle = PULSE_NEEDLE if target == "pulse" else PLAIN_NEEDLE
        pub_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        # nchan would replay a channel's buffered messages to new subscribers: warm up another.
        warm_up(pub_url if target == "pulse" else pub_url + "-warmup", website_id, pub_headers)
        totals = Totals()
        streams, _ = await open_streams("127.0.0.1", port, path, args.subscribers,
                                        headers=headers, pattern=pattern, totals=totals,
                                        needle=needle, sample=args.sample)
        await asyncio.sleep(1.0)
        rss_before = server.rss_kb()
        profile = Path(args.profile) if args.profile and target == "pulse" else None
        server_cpu0, client_cpu0 = server.cpu_seconds(), time.process_time()
        wall0 = time.monotonic()
        with py_spy(server.proc.pid, profile):
            outcome = await run_publisher(pub_url, website_id, args, pub_headers)
        expected = outcome["posted"] * args.subscribers
        deadline = time.monotonic() + args.drain
        while totals.messages < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        wall = time.monotonic() - wall0
        server_cpu = (server.cpu_seconds() - server_cpu0) / wall
        client_cpu = (time.process_time() - client_cpu0) / wall
        complete = sum(1 for s in streams if s.count == outcome["posted"])
        sampled = [s for s in streams if s.pattern is not None]
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
        "order_checked_subscribers": len(sampled),
        "p50_ms": percentile(latencies, 50) / 1000, "p99_ms": percentile(latencies, 99) / 1000,
        "max_ms": (max(latencies) / 1000) if latencies else 0.0,
        "server_rss_kb_before": rss_before,
        "server_cpu_share": server_cpu, "client_cpu_share": client_cpu,
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
    parser.add_argument("--sample", type=int, default=200,
                        help="subscribers that check ids, order and latency (the rest count)")
    parser.add_argument("--drain", type=float, default=15, help="seconds to wait for stragglers")
    parser.add_argument("--only", choices=["pulse", "nchan"], help="run one side only")
    parser.add_argument("--profile", help="py-spy Pulse while publishing, into this file")
    parser.add_argument("--name", default="b2_fanout")
    args = parser.parse_args()
    if not nchan_available() and args.only != "pulse":
        print("nginx or the nchan module is missing: pass --only pulse", file=sys.stderr)
        return 2
    raise_nofile(20_000)
    facts = as_load_generator()
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
                  f"closed {res['closed_early']} | POST p99 {res['post_p99_ms']:.1f} ms | "
                  f"CPU server {res['server_cpu_share']:.0%} "
                  f"client {res['client_cpu_share']:.0%}", flush=True)
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
    return report(args.name, args, facts, rounds, summary)


if __name__ == "__main__":
    sys.exit(main())
