"""Live dashboard pages for B4: headless Chromium signs in through the panel and keeps N tabs of
``/websites/<id>/live`` open (each waits until its connection dot says live).

Run as a script it holds the pages until SIGTERM or ``--seconds``; ``live_pages`` runs that
script as a child process (pinned to the load generator's core) for the length of a block.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import EMAIL, PASSWORD, PYTHON, stop_process, taskset  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync",
         "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
         "--disable-backgrounding-occluded-windows"]
PATIENCE_MS = 60_000


def browser_available() -> bool:
    """Whether Chromium and Playwright are installed."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists()


async def hold_pages(base: str, website_id: str, count: int, seconds: float,
                     ready_file: Path | None) -> dict[str, Any]:
    """Sign in, open ``count`` live pages, keep them open; report what they showed."""
    from playwright.async_api import async_playwright

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            page = await context.new_page()
            await page.goto(base + "/login")
            await page.get_by_label("Email").fill(EMAIL)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(base + "/", timeout=PATIENCE_MS)
            pages = [page] + [await context.new_page() for _ in range(count - 1)]
            for tab in pages:
                await tab.goto(f"{base}/websites/{website_id}/live")
            for tab in pages:
                await tab.wait_for_function(
                    "document.documentElement.dataset.pulseLink === 'live'", timeout=PATIENCE_MS)
            if ready_file is not None:
                ready_file.write_text(str(len(pages)))
            samples: list[list[str]] = []  # the link state of every tab, once a second
            deadline = time.monotonic() + seconds
            while not stop.is_set() and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                samples.append([await tab.evaluate("document.documentElement.dataset.pulseLink")
                                for tab in pages])
            states = samples[-1] if samples else []
            live_share = (sum(row.count("live") for row in samples)
                          / max(1, len(samples) * len(pages)))
            current = [await tab.locator('[data-pulse="live-current"]').inner_text()
                       for tab in pages]
        finally:
            await browser.close()
    return {"pages": count, "link_states": states, "link_live_share": live_share,
            "current_visitors_shown": current}


@contextlib.contextmanager
def live_pages(pulse: Any, count: int, cpu: str | None,
               nice: int = 0) -> Iterator[dict[str, Any]]:
    """Keep ``count`` signed-in live pages of ``pulse``'s website open during the block; the
    yielded dict receives what the pages showed at the end. ``nice``: the browser's niceness
    (on a 2-core machine it shares the load generator's core: niced, it renders with what wrk
    and the subscribers leave, as a browser on another machine would not compete with them)."""
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready"
        niced = ["nice", "-n", str(nice)] if nice else []
        proc = subprocess.Popen(
            [*taskset(cpu), *niced, PYTHON, str(Path(__file__)), "--base", pulse.base, "--website",
             pulse.website_id, "--pages", str(count), "--seconds", "600",
             "--ready-file", str(ready)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if not ready.exists():
            stop_process(proc)
            _, err = proc.communicate(timeout=10)
            raise RuntimeError(f"the live pages did not open: {err.strip()[-500:]}")
        summary: dict[str, Any] = {}
        try:
            yield summary
        finally:
            stop_process(proc, timeout=30)
            out, _ = proc.communicate(timeout=10)
            with contextlib.suppress(ValueError, IndexError):
                summary.update(json.loads(out.strip().splitlines()[-1]))


def main() -> int:
    """Hold live pages open until SIGTERM; print what they showed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--website", required=True)
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    ready = Path(args.ready_file) if args.ready_file else None
    shown = asyncio.run(hold_pages(args.base, args.website, args.pages, args.seconds, ready))
    print(json.dumps(shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
