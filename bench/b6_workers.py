"""B6 — scale-up: ``pulse serve --workers 2`` against ``--workers 1``, both on PostgreSQL +
Redis, wrk POSTing as B1 (50 connections) with 100 SSE subscribers, nothing pinned (the workers
share the machine's cores with wrk and the subscribers), back to back in each round; and one
process on SQLite (the default) in the same rounds. Target: ≥ 1.6× the req/s of one worker.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.b1_ingest import LUA, subscribers, wrk_env  # noqa: E402
from bench.b7_cross_instance import instances  # noqa: E402
from bench.b11_alert_latency import call  # noqa: E402
from bench.common import machine_busy, machine_facts, machine_ticks, median, report, run_wrk  # noqa: E402


def run(workers: int, args: argparse.Namespace, sqlite: bool = False) -> dict[str, Any]:
    """One measurement of ``serve --workers N`` (on SQLite alone: one process)."""
    hold = args.warmup + args.seconds + 15
    with instances(1, None, redis=not sqlite, serve_args=("--workers", str(workers)),
                   sqlite=sqlite) as (ports, website_id, token):
        port = ports[0]
        # More websites (--websites): their events do not wait for each other's sequence row.
        sites = [website_id] + [
            call(f"http://127.0.0.1:{port}", "/api/v1/websites", token,
                 {"domain": f"w{n}.bench.example.com"})["id"] for n in range(1, args.websites)]
        path = f"/admin/analytics/live?website_id={website_id}"
        with subscribers(port, path, token, args.subscribers, hold, None) as subs:
            url = f"http://127.0.0.1:{port}/web/analytics/track"
            env = wrk_env(",".join(sites), args.visitors)
            run_wrk(url, LUA, connections=args.connections, seconds=args.warmup, threads=1,
                    env=env)
            ticks = machine_ticks()
            result = run_wrk(url, LUA, connections=args.connections, seconds=args.seconds,
                             threads=1, env=env)
            busy = machine_busy(ticks, machine_ticks())
            subs.terminate()
            summary_text, _ = subs.communicate(timeout=30)
    summary = json.loads(summary_text.strip().splitlines()[-1]) if summary_text.strip() else {}
    return {"workers": workers, "rps": result.rps, "p50_ms": result.p50_ms,
            "p99_ms": result.p99_ms, "non_2xx": result.non_2xx,
            "socket_errors": result.socket_errors, "requests": result.requests,
            "machine_busy": busy, "subscribers": summary}


def main() -> int:
    """Run B6 and print/keep the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--visitors", type=int, default=5000)
    parser.add_argument("--websites", type=int, default=1,
                        help="spread the events over this many websites (B6 itself: 1)")
    parser.add_argument("--name", default="b6_workers")
    args = parser.parse_args()
    facts = machine_facts()
    rounds = []
    for i in range(args.rounds):
        order = (1, 2) if i % 2 == 0 else (2, 1)
        row = {f"w{n}": run(n, args) for n in order}
        row["sqlite"] = run(1, args, sqlite=True)
        row["ratio"] = row["w2"]["rps"] / row["w1"]["rps"] if row["w1"]["rps"] else 0.0
        row["postgres_vs_sqlite"] = row["w1"]["rps"] / row["sqlite"]["rps"] \
            if row["sqlite"]["rps"] else 0.0
        rounds.append(row)
        w1, w2, lite = row["w1"], row["w2"], row["sqlite"]
        print(f"round {i + 1}: --workers 1 {w1['rps']:.0f} req/s p99 {w1['p99_ms']:.1f} ms "
              f"non-2xx {w1['non_2xx']} cores busy {w1['machine_busy']:.0%} | --workers 2 "
              f"{w2['rps']:.0f} req/s p99 {w2['p99_ms']:.1f} ms non-2xx {w2['non_2xx']} "
              f"cores busy {w2['machine_busy']:.0%} | ratio {row['ratio']:.2f} | SQLite, one "
              f"process {lite['rps']:.0f} req/s p99 {lite['p99_ms']:.1f} ms",
              flush=True)
    summary = {
        "ratio_median": median([r["ratio"] for r in rounds]),
        "w1_rps_median": median([r["w1"]["rps"] for r in rounds]),
        "w2_rps_median": median([r["w2"]["rps"] for r in rounds]),
        "sqlite_rps_median": median([r["sqlite"]["rps"] for r in rounds]),
        "postgres_vs_sqlite_median": median([r["postgres_vs_sqlite"] for r in rounds]),
        "w1_machine_busy_median": median([r["w1"]["machine_busy"] for r in rounds]),
        "w2_machine_busy_median": median([r["w2"]["machine_busy"] for r in rounds]),
        "non_2xx_total": sum(r[k]["non_2xx"] for r in rounds for k in ("w1", "w2")),
    }
    return report(args.name, args, facts, rounds, summary)


if __name__ == "__main__":
    sys.exit(main())
