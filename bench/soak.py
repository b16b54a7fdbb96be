"""Soak: a Pulse server under steady load for a bounded time; its memory must stay flat and every
live subscriber must receive every event.

    .venv/bin/python bench/soak.py                       # 10 min, 1,000 events/s, 200 SSE clients
    .venv/bin/python bench/soak.py --duration 60 --rate 200 --subscribers 20   # a quick look

One process posts events at a fixed rate (paced every 10 ms, at most ``--concurrency`` in
flight; an event due while that many wait is skipped and counted) and records the id of every
202; another follows the live stream with N raw HTTP/1.0 connections and records, per
connection, how many ``new_event`` ids arrived, whether they always increased, and their sum.
The server's RSS is sampled every few seconds from /proc. Everything runs on 127.0.0.1 in a
temporary directory and stops by itself. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0.0.0 Safari/537.36")
PAGES = ["/", "/products", "/pricing", "/blog", "/docs", "/about", "/cart", "/checkout"]
_ID = re.compile(rb"(?m)^id: (\d+)$")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used by ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """Run one ``app.py`` command and return what it printed."""
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT, env=env,
                          check=True, capture_output=True, text=True, input=stdin).stdout.strip()


# -- the posting process ---------------------------------------------------------------------

async def _post_all(port: int, website_id: str, rate: float, duration: float,
                    concurrency: int) -> dict[str, Any]:
    import aiohttp

    url = f"http://127.0.0.1:{port}/web/analytics/track"
    ids: list[int] = []
    errors: dict[str, int] = {}
    late = 0

    async def one(n: int) -> None:
        body = {"website_id": website_id, "event_type": "pageview" if n % 10 else "signup",
                "pathname": PAGES[n % len(PAGES)], "visitor_id": f"v{n % 5000}",
                "session_id": f"s{n % 7000}", "referrer": "https://www.google.com/",
                "title": "Soak", "screen_width": 1280}
        try:
            async with session.post(url, json=body,
                                    headers={"User-Agent": USER_AGENT}) as response:
                if response.status == 202:
                    ids.append((await response.json())["id"])
                else:
                    errors[str(response.status)] = errors.get(str(response.status), 0) + 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        sent = 0
        total = int(rate * duration)
        deadline = started + duration
        while sent + late < total and time.monotonic() < deadline:
            due = min(total, int((time.monotonic() - started) * rate) + 1)
            while sent + late < due:
                if len(tasks) >= concurrency:  # the server (or this client) is behind: skip
                    late += due - sent - late
                    break
                task = asyncio.create_task(one(sent))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
    return {"sent": sent, "acknowledged": len(ids), "id_sum": sum(ids),
            "min_id": min(ids, default=0), "max_id": max(ids, default=0), "errors": errors,
            "skipped_late": late, "elapsed": elapsed}


def poster(port: int, website_id: str, rate: float, duration: float, concurrency: int,
           results: Any) -> None:
    """Process entry: post for ``duration`` seconds, then put the summary on ``results``."""
    results.put(("poster", asyncio.run(_post_all(port, website_id, rate, duration,
                                                 concurrency))))


# -- the subscribing process -----------------------------------------------------------------

async def _follow(port: int, website_id: str, token: str, stop: Any,
                  connected: Any) -> dict[str, Any]:
    """One subscriber as EventSource behaves: when the server ends the stream (this client fell
    too far behind, say), reconnect with Last-Event-ID and carry on from the replay."""
    count = id_sum = last = reconnects = 0
    ordered = True
    status = 0
    while not stop.is_set():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        resume = f"Last-Event-ID: {last}\r\n" if last else ""
        writer.write(f"GET /admin/analytics/live?website_id={website_id} HTTP/1.0\r\n"
                     f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n{resume}\r\n"
                     .encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            break
        tail = b""
        while True:
            try:
                data = await asyncio.wait_for(reader.read(1 << 20), timeout=1.0)
            except TimeoutError:
                if stop.is_set():
                    break
                continue
            if not data:
                break
            data = tail + data
            cut = data.rfind(b"\n\n")
            complete, tail = (data[:cut + 2], data[cut + 2:]) if cut >= 0 else (b"", data)
            if b'"type":"connected"' in complete and not reconnects and not count:
                connected.release()
            for raw in _ID.findall(complete):
                event_id = int(raw)
                ordered = ordered and event_id > last
                last = event_id
                count += 1
                id_sum += event_id
            if stop.is_set():
                break
            await asyncio.sleep(0.05)  # read in bigger gulps: 200 streams cost less CPU
        writer.close()
        if not stop.is_set():
            reconnects += 1
    return {"status": status, "count": count, "id_sum": id_sum, "ordered": ordered,
            "last": last, "reconnects": reconnects}


def subscribers(port: int, website_id: str, token: str, n: int, stop: Any, connected: Any,
                results: Any) -> None:
    """Process entry: follow ``n`` live streams until ``stop`` is set."""

    async def main() -> list[dict[str, Any]]:
        tasks = [asyncio.create_task(_follow(port, website_id, token, stop, connected))
                 for _ in range(n)]
        while not stop.is_set():
            await asyncio.sleep(0.2)
        await asyncio.sleep(0)  # let every stream read what is already there
        done, pending = await asyncio.wait(tasks, timeout=30)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return [t.result() if not t.cancelled() and t.exception() is None
                else {"status": 0, "count": 0, "id_sum": 0, "ordered": False,
                      "error": repr(t.exception()) if not t.cancelled() else "cancelled"}
                for t in tasks]

    results.put(("subscribers", asyncio.run(main())))


# -- the run ---------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start a server, soak it, stop it; return the figures."""
    data_dir = Path(tempfile.mkdtemp(prefix="pulse-soak-"))
    port = free_port()
    env = {**os.environ, "PULSE_DATA_DIR": str(data_dir), "PULSE_HOST": "127.0.0.1",
           "PULSE_PORT": str(port), "PULSE_RATE_PER_IP": "0", "PULSE_RATE_PER_WEBSITE": "0",
           "PULSE_SSE_MAX_PER_USER": str(args.subscribers + 10), "PULSE_LOG_LEVEL": "WARNING",
           # The subscribers share one Python process on a shared machine: give them room to
           # lag (8 MiB) and, if one is dropped all the same, a replay that fits in that room
           # (10,000 frames of ~600 bytes). A replay larger than the backlog bound could never
           # be delivered: the stream would be dropped again on every reconnect.
           "PULSE_SSE_MAX_BACKLOG": str(8 << 20), "PULSE_REPLAY_LIMIT": "10000"}
    cli(env, "create-user", "soak@example.com", "--password-stdin", stdin="soak-password-123\n")
    website_id = cli(env, "create-website", "soak.example.com")
    token = cli(env, "create-token", "soak@example.com")
    log_path = data_dir / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "serve"], cwd=ROOT,
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start: "
                                     + log_path.read_text()) from None
                time.sleep(0.1)
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        stop = ctx.Event()
        connected = ctx.Semaphore(0)
        follow = ctx.Process(target=subscribers, args=(port, website_id, token,
                                                       args.subscribers, stop, connected,
                                                       results))
        follow.start()
        for _ in range(args.subscribers):
            if not connected.acquire(timeout=60):
                raise SystemExit("the subscribers did not connect")
        samples: list[tuple[float, float]] = []
        cpu_before = cpu_seconds(server.pid)
        post = ctx.Process(target=poster, args=(port, website_id, args.rate, args.duration,
                                                args.concurrency, results))
        started = time.monotonic()
        post.start()
        samples.append((0.0, rss_mib(server.pid)))
        while post.is_alive():
            post.join(timeout=args.sample_every)
            samples.append((time.monotonic() - started, rss_mib(server.pid)))
            if args.verbose:
                print(f"{samples[-1][0]:7.1f}s  RSS {samples[-1][1]:7.1f} MiB", flush=True)
        cpu_used = cpu_seconds(server.pid) - cpu_before
        elapsed = time.monotonic() - started
        time.sleep(2)  # the last frames reach the subscribers
        stop.set()
        collected = dict(results.get(timeout=120) for _ in range(2))
        follow.join(timeout=60)
        samples.append((time.monotonic() - started, rss_mib(server.pid)))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    posted = collected["poster"]
    followed = collected["subscribers"]
    complete = [s for s in followed if s["count"] == posted["acknowledged"]
                and s["id_sum"] == posted["id_sum"] and s["ordered"]]
    rss = [r for _, r in samples]
    half = [r for t, r in samples if t >= elapsed / 2]
    last = [r for t, r in samples if t >= elapsed - args.flat_window]
    return {
        "duration_s": round(elapsed, 1), "target_rate": args.rate,
        "achieved_rate": round(posted["acknowledged"] / posted["elapsed"], 1),
        "sent": posted["sent"], "acknowledged": posted["acknowledged"],
        "post_errors": posted["errors"],
        "skipped_late": posted["skipped_late"], "subscribers": args.subscribers,
        "subscribers_complete": len(complete),
        "incomplete": [s for s in followed if s not in complete][:5],
        "frames_delivered": sum(s["count"] for s in followed),
        "reconnects": sum(s.get("reconnects", 0) for s in followed),
        "rss_mib_start": round(rss[0], 1), "rss_mib_max": round(max(rss), 1),
        "rss_mib_end": round(rss[-1], 1),
        "rss_mib_second_half_min": round(min(half), 1) if half else None,
        "rss_mib_second_half_max": round(max(half), 1) if half else None,
        "flat_window_s": args.flat_window,
        "rss_mib_last_window_min": round(min(last), 1) if last else None,
        "rss_mib_last_window_max": round(max(last), 1) if last else None,
        # the spread of the last window around its middle: ±x % of (max + min) / 2
        "rss_last_window_spread_pct": (
            round(100 * (max(last) - min(last)) / (max(last) + min(last)), 2) if last else None),
        "rss_samples": [(round(t, 1), round(r, 1)) for t, r in samples],
        "server_cpu_s": round(cpu_used, 1),
        "server_log_warnings": sum(1 for line in log_path.read_text().splitlines()
                                   if " WARNING " in line or " ERROR " in line),
    }


def main() -> int:
    """Parse flags, soak, print the figures; exit 1 if an event was lost or memory grew."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds (default 600)")
    parser.add_argument("--rate", type=float, default=1000, help="events/s (default 1000)")
    parser.add_argument("--subscribers", type=int, default=200, help="SSE clients (default 200)")
    parser.add_argument("--concurrency", type=int, default=64, help="posts in flight at most")
    parser.add_argument("--sample-every", type=float, default=5, help="RSS sample period (s)")
    parser.add_argument("--max-growth-mib", type=float, default=32,
                        help="largest RSS rise allowed over the second half (default 32)")
    parser.add_argument("--flat-window", type=float, default=900,
                        help="the closing stretch whose RSS must stay flat, s (default 900)")
    parser.add_argument("--flat-pct", type=float, default=5,
                        help="how flat: ± this % around its middle (default 5)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--verbose", action="store_true", help="print every RSS sample")
    args = parser.parse_args()
    figures = run(args)
    shown = {k: v for k, v in figures.items() if k != "rss_samples"}
    print(json.dumps(shown, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    lost = (figures["subscribers_complete"] != args.subscribers or figures["post_errors"]
            or figures["acknowledged"] != figures["sent"])
    second_half = figures["rss_mib_second_half_max"] or 0
    grew = (second_half - (figures["rss_mib_second_half_min"] or 0) > args.max_growth_mib
            or (figures["rss_last_window_spread_pct"] or 0) > args.flat_pct)
    if lost:
        print("FAIL: an event was not acknowledged or not delivered to every subscriber")
    if grew:
        print("FAIL: memory grew during the second half")
    return 1 if lost or grew else 0


if __name__ == "__main__":
    sys.exit(main())
