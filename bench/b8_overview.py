"""B8 — an agency's account: 1,000 websites. How long the all-websites view (/overview) takes
to appear and the longest stall of the server's event loop meanwhile, against the websites list
(/, one live counter per website) in the same run.

A probe in this process sends GET /healthz every 20 ms throughout; a probe request's time is how
long the loop could not answer (the issue's "a /healthz probe waited 881 ms"). The idle probe,
with no page loading, is the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import EMAIL, PASSWORD, cpus, median, pulse_server, report  # noqa: E402
from bench.panels import CHROMIUM, FLAGS, PATIENCE_MS  # noqa: E402
from bench.sse_load import as_load_generator  # noqa: E402


def create_websites(base: str, token: str, count: int) -> None:
    """``count`` websites named "Site N" through the management API."""
    def one(n: int) -> None:
        request = urllib.request.Request(
            base + "/api/v1/websites", method="POST",
            data=json.dumps({"domain": f"site{n}.example", "name": f"Site {n}"}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(2, count + 1)))


async def probe(base: str, stop: asyncio.Event, every: float = 0.02) -> list[float]:
    """GET /healthz every ``every`` s until ``stop``; each request's time in ms."""
    import aiohttp

    times: list[float] = []
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            started = time.perf_counter()
            async with session.get(base + "/healthz") as response:
                await response.read()
            times.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(every)
    return times


async def wait_idle(base: str, fast_ms: float = 30.0, needed: int = 25,
                    timeout: float = 120.0) -> None:
    """Wait until the server answers ``needed`` probes in a row within ``fast_ms`` (what an
    earlier page left running, e.g. the list rendered after sign-in, must not be measured)."""
    import aiohttp

    deadline = time.monotonic() + timeout
    streak = 0
    async with aiohttp.ClientSession() as session:
        while streak < needed and time.monotonic() < deadline:
            started = time.perf_counter()
            async with session.get(base + "/healthz") as response:
                await response.read()
            streak = streak + 1 if (time.perf_counter() - started) * 1000 < fast_ms else 0
            await asyncio.sleep(0.02)


async def open_view(page: Any, base: str, path: str, count: int) -> dict[str, Any]:
    """Open ``path``; time until "COUNT websites" shows; the probe's worst wait meanwhile."""
    await wait_idle(base)
    stop = asyncio.Event()
    probing = asyncio.create_task(probe(base, stop))
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    await page.goto(base + path, timeout=PATIENCE_MS)
    await page.get_by_text(re.compile(rf"^{count} websites")).first.wait_for(
        timeout=PATIENCE_MS)
    shown_ms = (time.perf_counter() - started) * 1000
    await asyncio.sleep(2.0)  # what the page does right after it appeared counts too
    stop.set()
    times = await probing
    await page.goto("about:blank")
    await asyncio.sleep(2.0)  # the hub drops windows nobody watches
    return {"shown_ms": shown_ms, "probe_max_ms": max(times), "probes": len(times)}


async def measure(pulse: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Sign in; idle probe; then each view, alternating, ``rounds`` times."""
    from playwright.async_api import async_playwright

    rounds = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await (await browser.new_context(
                viewport={"width": 1400, "height": 1000})).new_page()
            await page.goto(pulse.base + "/login")
            await page.get_by_label("Email").fill(EMAIL)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(pulse.base + "/", timeout=PATIENCE_MS)
            await page.goto("about:blank")
            await asyncio.sleep(2.0)
            for r in range(args.rounds):
                await wait_idle(pulse.base)
                stop = asyncio.Event()
                idle = asyncio.create_task(probe(pulse.base, stop))
                await asyncio.sleep(3.0)
                stop.set()
                row: dict[str, Any] = {"idle_probe_max_ms": max(await idle)}
                for name, path in (("overview", "/overview"), ("list", "/"))[::1 - 2 * (r % 2)]:
                    row[name] = await open_view(page, pulse.base, path, args.websites)
                print(f"round {r + 1}: idle probe max {row['idle_probe_max_ms']:.0f} ms; "
                      f"/overview {row['overview']['shown_ms']:.0f} ms "
                      f"(probe max {row['overview']['probe_max_ms']:.0f} ms); "
                      f"/ {row['list']['shown_ms']:.0f} ms "
                      f"(probe max {row['list']['probe_max_ms']:.0f} ms)", flush=True)
                rounds.append(row)
        finally:
            await browser.close()
    return rounds


def main() -> int:
    """Run B8 and print/keep the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--websites", type=int, default=1000)
    parser.add_argument("--no-pin", action="store_true",
                        help="leave the server unpinned (both cores), as a deployment would")
    parser.add_argument("--name", default="b8_overview")
    args = parser.parse_args()
    facts = as_load_generator()
    server_cpu = None if args.no_pin else cpus()[0]
    with pulse_server(server_cpu) as pulse:
        create_websites(pulse.base, pulse.token, args.websites)
        rounds = asyncio.run(measure(pulse, args))
    summary = {
        f"{view}_{key}": median([r[view][key] for r in rounds])
        for view in ("overview", "list") for key in ("shown_ms", "probe_max_ms")}
    summary["idle_probe_max_ms"] = median([r["idle_probe_max_ms"] for r in rounds])
    return report(args.name, args, facts, rounds, summary)


if __name__ == "__main__":
    sys.exit(main())
