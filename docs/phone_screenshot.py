"""Take docs/live-phone-dark.png: the demo's live view on a 390 × 844 phone in dark mode.

    .venv/bin/python docs/phone_screenshot.py    (needs /usr/bin/chromium and Playwright)
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e_support import BROWSER_UA, PulseProcess, chromium  # noqa: E402

OUT = ROOT / "docs" / "live-phone-dark.png"
WARM_UP_MS = 45_000  # let the simulated visitors fill the window, the chart and the feed


async def main() -> None:
    """Start the demo, sign in on a dark phone, wait for visitors, take the picture."""
    with tempfile.TemporaryDirectory() as folder, \
            PulseProcess(Path(folder) / "data", command=("demo", "--rate", "6")) as demo:
        live = re.search(r"Live view: (\S+)", demo.wait_for_line(r"Live view: ", 60))
        login = re.search(r"Sign in:\s+(\S+) / (\S+)", demo.wait_for_line(r"Sign in: ", 60))
        assert live and login
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 390, "height": 844},
                                          device_scale_factor=2, color_scheme="dark",
                                          user_agent=BROWSER_UA)
            await page.goto(demo.base_url + "/login")
            await page.get_by_label("Email").fill(login.group(1))
            await page.get_by_label("Password").fill(login.group(2))
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(demo.base_url + "/")
            await page.wait_for_timeout(WARM_UP_MS)
            path = live.group(1).split("/websites/", 1)[1]
            await page.goto(f"{demo.base_url}/websites/{path}")
            await page.wait_for_function("document.documentElement.dataset.pulseLink === 'live'")
            await page.wait_for_timeout(4_000)
            await page.screenshot(path=str(OUT))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
