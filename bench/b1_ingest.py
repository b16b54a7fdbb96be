"""B1 — tracking ingest: wrk POSTs a ~300-byte event, 50 connections; Pulse (with 100 SSE
subscribers on the website) against a bare Tornado handler, in the same run.

Servers are pinned to the first core, wrk and the subscribers to the last one. Each round runs
the baseline and Pulse back to back; the ratio is Pulse's req/s over the baseline's.
``--panels N`` (B4) additionally opens N signed-in live dashboard pages in headless Chromium.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    BENCH,
    PYTHON,
    cpus,
    free_port,
    machine_busy,
    machine_facts,
    machine_ticks,
    median,
    pulse_server,
    py_spy,
    report,
    run_wrk,
    stop_process,
    taskset,
    wait_http,
)

LUA = BENCH / "post_event.lua"


@contextlib.contextmanager
def baseline_server(cpu: str | None) -> Iterator[str]:
    """The bare Tornado handler on a free port; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen([*taskset(cpu), PYTHON, str(BENCH / "baseline_server.py"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 30, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@contextlib.contextmanager
def subscribers(port: int, path: str, token: str, count: int, seconds: float,
                cpu: str | None) -> Iterator[subprocess.Popen[str]]:
    """A subprocess holding ``count`` SSE subscribers for ``seconds``; waits until all are up."""
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready"
        proc = subprocess.Popen(
            [*taskset(cpu), PYTHON, str(BENCH / "sse_load.py"), "--port", str(port), "--path",
             path, "--header", f"Authorization: Bearer {token}", "--streams", str(count),
             "--seconds", str(seconds), "--ready-file", str(ready)],
            stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if not ready.exists():
            stop_process(proc)
            raise RuntimeError("the SSE subscribers did not connect in time")
        try:
            yield proc
        finally:
            stop_process(proc, timeout=seconds + 30)


# Client IPs of eight countries (iptocc: DE, BR, US, JP, SE, FR, IN, AU) for --countries.
COUNTRY_IPS = "85.214.0.1,200.147.1.1,8.8.8.8,133.1.1.1,2.2.2.2,90.0.0.1,117.192.0.1,1.120.0.1"


def wrk_env(website_id: str, visitors: int, countries: bool = False) -> dict[str, str]:
    """The variables post_event.lua reads."""
    env = {"BENCH_WEBSITE_ID": website_id, "BENCH_VISITORS": str(visitors)}
    if countries:
        env["BENCH_FORWARDED_FOR"] = COUNTRY_IPS
    return env


def run_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """One baseline measurement."""
    server_cpu, load_cpu = cpus()
    with baseline_server(server_cpu) as base:
        url = base + "/web/analytics/track"
        run_wrk(url, LUA, connections=args.connections, seconds=args.warmup, threads=1,
                cpu=load_cpu, env=wrk_env("baseline", args.visitors))
        result = run_wrk(url, LUA, connections=args.connections, seconds=args.seconds,
                         threads=1, cpu=load_cpu, env=wrk_env("baseline", args.visitors))
    return {"rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
            "non_2xx": result.non_2xx, "socket_errors": result.socket_errors,
            "requests": result.requests}


def run_pulse(args: argparse.Namespace, panels: int = 0) -> dict[str, Any]:
    """One Pulse measurement, with SSE subscribers (and ``panels`` dashboard pages) open."""
    server_cpu, load_cpu = cpus()
    hold = args.warmup + args.seconds + 15
    proxied = {"PULSE_TRUST_PROXY": "1"} if args.countries else {}
    with pulse_server(server_cpu, **proxied) as pulse, \
            subscribers(pulse.port, pulse.live_path, pulse.token, args.subscribers, hold,
                        load_cpu) as subs, \
            open_panels(pulse, panels, load_cpu, args.panels_nice) as shown:
        url = pulse.base + "/web/analytics/track"
        env = wrk_env(pulse.website_id, args.visitors, args.countries)
        run_wrk(url, LUA, connections=args.connections, seconds=args.warmup, threads=1,
                cpu=load_cpu, env=env)
        profile = Path(args.profile) if args.profile else None
        cpu_before, ticks = pulse.cpu_seconds(), (machine_ticks(server_cpu),
                                                   machine_ticks(load_cpu))
        with py_spy(pulse.proc.pid, profile):
            result = run_wrk(url, LUA, connections=args.connections, seconds=args.seconds,
                             threads=1, cpu=load_cpu, env=env)
        server_cpu_s = pulse.cpu_seconds() - cpu_before
        busy = [machine_busy(before, machine_ticks(core))
                for before, core in zip(ticks, (server_cpu, load_cpu), strict=True)]
        rss = pulse.rss_kb()
        subs.terminate()
        summary_text, _ = subs.communicate(timeout=30)
    summary = json.loads(summary_text.strip().splitlines()[-1]) if summary_text.strip() else {}
    return {"rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
            "non_2xx": result.non_2xx, "socket_errors": result.socket_errors,
            "requests": result.requests, "rss_kb": rss, "subscribers": summary,
            "panels": shown,
            # where the time went: Pulse's CPU per answered request, and how busy the server's
            # core and the load generators' core were (a load core at 100 % caps the req/s)
            "server_cpu_us_per_request": (1e6 * server_cpu_s / result.requests
                                          if result.requests else 0.0),
            "server_core_busy": busy[0], "load_core_busy": busy[1]}


@contextlib.contextmanager
def open_panels(pulse: Any, count: int, cpu: str | None,
                nice: int = 0) -> Iterator[dict[str, Any]]:
    """Open ``count`` signed-in live pages in headless Chromium (B4); nothing for 0."""
    if count <= 0:
        yield {}
        return
    from bench.panels import live_pages

    with live_pages(pulse, count, cpu, nice) as shown:
        yield shown


def main() -> int:
    """Run B1 (or B4 with ``--panels``) and print/keep the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--visitors", type=int, default=5000)
    parser.add_argument("--panels", type=int, default=0,
                        help="B4: live dashboard pages open; the baseline is then Pulse with none")
    parser.add_argument("--panels-nice", type=int, default=0,
                        help="B4: run the browser niced (e.g. 19): on 2 cores it shares the load "
                             "generator's core, and at full priority it starves wrk")
    parser.add_argument("--countries", action="store_true",
                        help="events from eight countries (X-Forwarded-For, trusted): the live "
                             "pages' world map then changes under load")
    parser.add_argument("--profile", help="py-spy Pulse during the measured runs, into this file")
    parser.add_argument("--name", default="", help="results file name (default b1 / b4)")
    args = parser.parse_args()

    name = args.name or ("b4_dashboards" if args.panels else "b1_ingest")
    facts = machine_facts()
    rounds = []
    for i in range(args.rounds):
        if args.panels:
            base = run_pulse(args, 0)
            pulse = run_pulse(args, args.panels)
        else:
            base = run_baseline(args)
            pulse = run_pulse(args)
        ratio = pulse["rps"] / base["rps"] if base["rps"] else 0.0
        rounds.append({"baseline": base, "pulse": pulse, "ratio": ratio})
        print(f"round {i + 1}: baseline {base['rps']:.0f} req/s p99 {base['p99_ms']:.1f} ms | "
              f"pulse {pulse['rps']:.0f} req/s p99 {pulse['p99_ms']:.1f} ms "
              f"non-2xx {pulse['non_2xx']} | ratio {ratio:.3f}", flush=True)
        for side, figures in (("baseline", base), ("pulse", pulse)):
            if "server_cpu_us_per_request" in figures:
                print(f"  {side}: Pulse CPU {figures['server_cpu_us_per_request']:.0f} µs per "
                      f"request, server core {figures['server_core_busy']:.0%} busy, load core "
                      f"{figures['load_core_busy']:.0%}", flush=True)
    summary = {
        "ratio_median": median([r["ratio"] for r in rounds]),
        "baseline_rps_median": median([r["baseline"]["rps"] for r in rounds]),
        "pulse_rps_median": median([r["pulse"]["rps"] for r in rounds]),
        "pulse_p99_ms_median": median([r["pulse"]["p99_ms"] for r in rounds]),
        "pulse_non_2xx_total": sum(r["pulse"]["non_2xx"] for r in rounds),
        "pulse_cpu_us_per_request_median": median(
            [r["pulse"]["server_cpu_us_per_request"] for r in rounds]),
    }
    return report(name, args, facts, rounds, summary)


if __name__ == "__main__":
    sys.exit(main())
