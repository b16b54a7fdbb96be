"""B7 — cross-instance latency: two Pulse instances on PostgreSQL + Redis, events posted to A,
200 SSE subscribers on B, 200 events/s; against one Pulse on PostgreSQL with the in-process bus
(posts and subscribers on the same instance), in the same run.

Each event carries its sequence number and send time (``"sq":N,"st":µs``, monotonic clock) in
its props; every subscriber checks that it gets all of them, in order, and records
post→receive latency. The servers run on the first core, the publisher (a process of its own)
and the subscribers (this process) on the last one. Target: cluster p99 ≤ single p99 + 10 ms,
100 % delivered in order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.b2_fanout import run_publisher, warm_up  # noqa: E402
from bench.common import (  # noqa: E402
    EMAIL,
    PASSWORD,
    PYTHON,
    ROOT,
    USER_AGENT,
    _cli,
    cpus,
    free_port,
    median,
    percentile,
    pulse_env,
    raise_nofile,
    report,
    stop_process,
    taskset,
    wait_http,
)
from bench.sse_load import (  # noqa: E402
    PULSE_NEEDLE,
    PULSE_PATTERN,
    Totals,
    as_load_generator,
    close_streams,
    open_streams,
)

POSTGRES = os.environ.get("PULSE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("PULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    import psycopg

    name = "pulse_bench_" + secrets.token_hex(4)
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(POSTGRES)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def instances(count: int, cpu: str | None, redis: bool, serve_args: tuple[str, ...] = (),
              sqlite: bool = False) -> Iterator[tuple[list[int], str, str]]:
    """``count`` Pulse instances (``serve *serve_args``) on one fresh PostgreSQL database (or
    SQLite file), with a Redis prefix when ``redis``: (their ports, website id, token)."""
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        extra = {"PULSE_DATABASE_URL": f"sqlite:///{tmp}/pulse.db" if sqlite
                 else stack.enter_context(postgres_database())}
        prefix = f"pulse-bench-{secrets.token_hex(4)}:"
        if redis:
            extra |= {"PULSE_REDIS_URL": REDIS, "PULSE_REDIS_PREFIX": prefix}
        env = pulse_env(Path(tmp), 0, **extra)
        _cli(env, "create-user", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
        website_id = _cli(env, "create-website", "bench.example.com").splitlines()[-1]
        token = _cli(env, "create-token", EMAIL, "--name", "bench").splitlines()[-1]
        procs, ports = [], []
        try:
            for i in range(count):
                port = free_port()
                proc = subprocess.Popen(
                    [*taskset(cpu), PYTHON, str(ROOT / "app.py"), "serve", *serve_args],
                    cwd=ROOT,
                    env=pulse_env(Path(tmp) / f"n{i}", port, **extra),
                    stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / f"n{i}.log", "wb"),
                    preexec_fn=lambda: raise_nofile(20_000))
                procs.append(proc)
                wait_http(f"http://127.0.0.1:{port}/healthz", 60, proc)
                ports.append(port)
            yield ports, website_id, token
        finally:
            for proc in procs:
                stop_process(proc)
            if redis:
                import redis as redis_py

                client = redis_py.Redis.from_url(REDIS)
                keys = list(client.scan_iter(match=prefix + "*"))
                if keys:
                    client.delete(*keys)
                client.close()


async def one_run(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """``single``: one instance, in-process bus; ``cluster``: post to A, subscribe on B."""
    server_cpu, _ = cpus()
    cluster = mode == "cluster"
    with instances(2 if cluster else 1, server_cpu, redis=cluster) as (ports, website_id, token):
        post_port, sub_port = ports[0], ports[-1]
        pub_url = f"http://127.0.0.1:{post_port}/web/analytics/track"
        pub_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        warm_up(pub_url, website_id, pub_headers)
        await asyncio.sleep(1.5)  # every instance has the warm-up events
        totals = Totals()
        streams, _ = await open_streams(
            "127.0.0.1", sub_port, f"/admin/analytics/live?website_id={website_id}",
            args.subscribers, headers={"Authorization": f"Bearer {token}"},
            pattern=PULSE_PATTERN, totals=totals, needle=PULSE_NEEDLE)
        await asyncio.sleep(1.0)
        outcome = await run_publisher(pub_url, website_id, args, pub_headers)
        expected = outcome["posted"] * args.subscribers
        deadline = time.monotonic() + args.drain
        while totals.messages < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        closed_early = totals.closed
        close_streams(streams)
    latencies = totals.latencies_us
    return {
        **outcome, "mode": mode, "subscribers": args.subscribers,
        "connected": totals.connected, "closed_early": closed_early,
        "delivered": totals.messages, "expected": expected,
        "delivered_pct": 100.0 * totals.messages / expected if expected else 0.0,
        "out_of_order": totals.out_of_order,
        "p50_ms": percentile(latencies, 50) / 1000, "p99_ms": percentile(latencies, 99) / 1000,
        "max_ms": (max(latencies) / 1000) if latencies else 0.0,
    }


def main() -> int:
    """Run B7 and print/keep the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--drain", type=float, default=10, help="seconds to wait for stragglers")
    parser.add_argument("--name", default="b7_cross_instance")
    args = parser.parse_args()
    raise_nofile(20_000)
    facts = as_load_generator()
    rounds = []
    for r in range(args.rounds):
        row: dict[str, Any] = {}
        for mode in (("single", "cluster") if r % 2 == 0 else ("cluster", "single")):
            row[mode] = res = asyncio.run(one_run(mode, args))
            print(f"round {r + 1} {mode}: delivered {res['delivered_pct']:.2f}% "
                  f"out-of-order {res['out_of_order']} p50 {res['p50_ms']:.1f} ms "
                  f"p99 {res['p99_ms']:.1f} ms max {res['max_ms']:.1f} ms "
                  f"| POST p99 {res['post_p99_ms']:.1f} ms", flush=True)
        row["p99_extra_ms"] = row["cluster"]["p99_ms"] - row["single"]["p99_ms"]
        rounds.append(row)
    summary: dict[str, Any] = {
        mode: {k: median([r[mode][k] for r in rounds])
               for k in ("delivered_pct", "p50_ms", "p99_ms", "max_ms")}
        for mode in ("single", "cluster")}
    for mode in ("single", "cluster"):
        summary[mode]["out_of_order_total"] = sum(r[mode]["out_of_order"] for r in rounds)
    summary["p99_extra_ms_median"] = median([r["p99_extra_ms"] for r in rounds])
    return report(args.name, args, facts, rounds, summary)


if __name__ == "__main__":
    sys.exit(main())
