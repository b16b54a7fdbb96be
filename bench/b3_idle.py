"""B3 — 10,000 idle SSE streams held for 30 s: server memory per stream, Pulse against
nginx + nchan holding the same number of subscribers, in the same run.

RSS (from /proc; nginx: master plus workers) is read once the server is warm (one stream opened
and closed) and again at the end of the hold; growth per stream = (end - start) / streams.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    cpus,
    median,
    nchan_available,
    nchan_server,
    pulse_server,
    raise_nofile,
    report,
)
from bench.sse_load import as_load_generator, close_streams, open_streams  # noqa: E402


async def hold(server: Any, port: int, path: str, headers: dict[str, str],
               args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, read RSS, open the streams, hold them, read RSS again."""
    warm, _ = await open_streams("127.0.0.1", port, path, 1, headers=headers)
    await asyncio.sleep(0.5)
    close_streams(warm)
    await asyncio.sleep(1.0)
    rss_start = server.rss_kb()
    started = time.monotonic()
    streams, totals = await open_streams("127.0.0.1", port, path, args.streams, headers=headers,
                                         concurrency=args.concurrency, timeout=180)
    connect_seconds = time.monotonic() - started
    rss_connected = server.rss_kb()
    peak = rss_connected
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        await asyncio.sleep(1.0)
        peak = max(peak, server.rss_kb())
    rss_end = server.rss_kb()
    closed_early = totals.closed
    close_streams(streams)
    await asyncio.sleep(0.5)
    return {
        "streams": args.streams, "connected": totals.connected, "refused": totals.refused,
        "closed_early": closed_early, "connect_seconds": connect_seconds,
        "rss_start_kb": rss_start, "rss_connected_kb": rss_connected, "rss_end_kb": rss_end,
        "rss_peak_kb": peak,
        "bytes_per_stream": (rss_end - rss_start) * 1024 / max(1, totals.connected),
    }


def one_run(target: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement of ``target``."""
    server_cpu, _ = cpus()
    if target == "pulse":
        with pulse_server(server_cpu) as pulse:
            return asyncio.run(hold(pulse, pulse.port, pulse.live_path,
                                    {"Authorization": f"Bearer {pulse.token}"}, args))
    with nchan_server(server_cpu) as nchan:
        return asyncio.run(hold(nchan, nchan.port, "/sub?id=bench", {}, args))


def main() -> int:
    """Run B3 and print/keep the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--only", choices=["pulse", "nchan"], help="run one side only")
    parser.add_argument("--name", default="b3_idle")
    args = parser.parse_args()
    if not nchan_available() and args.only != "pulse":
        print("nginx or the nchan module is missing: pass --only pulse", file=sys.stderr)
        return 2
    limit = raise_nofile(args.streams + 1000)
    if limit < args.streams + 100:
        print(f"the open-file limit is {limit}: too low for {args.streams} streams",
              file=sys.stderr)
        return 2
    facts = as_load_generator()
    targets = [args.only] if args.only else ["nchan", "pulse"]
    rounds = []
    for r in range(args.rounds):
        row: dict[str, Any] = {}
        for target in (targets if r % 2 == 0 else targets[::-1]):
            res = row[target] = one_run(target, args)
            print(f"round {r + 1} {target}: {res['connected']} connected in "
                  f"{res['connect_seconds']:.1f} s, closed early {res['closed_early']}, RSS "
                  f"{res['rss_start_kb']} → {res['rss_end_kb']} KiB, "
                  f"{res['bytes_per_stream']:.0f} B/stream", flush=True)
        if len(row) == 2 and row["nchan"]["bytes_per_stream"] > 0:
            row["ratio"] = row["pulse"]["bytes_per_stream"] / row["nchan"]["bytes_per_stream"]
        rounds.append(row)
    summary: dict[str, Any] = {
        t: {"bytes_per_stream": median([r[t]["bytes_per_stream"] for r in rounds]),
            "connected_min": min(r[t]["connected"] for r in rounds),
            "closed_early_total": sum(r[t]["closed_early"] for r in rounds)}
        for t in targets}
    if len(targets) == 2:
        summary["ratio_median"] = median([r["ratio"] for r in rounds if "ratio" in r])
    return report(args.name, args, facts, rounds, summary)


if __name__ == "__main__":
    sys.exit(main())
