"""Checks every panel page must pass in a real browser: it fits a phone screen (nothing scrolls
sideways) and axe-core finds no serious or critical accessibility violation.

One line per page in a browser test (Playwright's async API, see tests/e2e_support.py)::

    await assert_page_for_everyone(page)   # the page as it is now, at 390 × 844, light and dark

axe-core is installed from the npm registry into a cache folder the first time (never into the
repository); without ``npm`` or the registry the test skips, or fails under
``PULSE_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

AXE_VERSION = "4.10.3"
CACHE = Path(os.environ.get("PULSE_TEST_CACHE", Path.home() / ".cache" / "pulse-tests"))
PHONE = {"width": 390, "height": 844}
BLOCKING = ("serious", "critical")
PATIENCE_MS = 60_000  # how long the browser may take on a busy machine (a bound, not a speed)


def _missing(reason: str) -> None:
    if os.environ.get("PULSE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required here but {reason}")
    pytest.skip(reason)


@lru_cache(maxsize=1)
def _axe_source() -> str:
    folder = CACHE / f"axe-core-{AXE_VERSION}"
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise FileNotFoundError("npm is missing (apt-get install npm)")
        folder.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(folder),
             f"axe-core@{AXE_VERSION}"], capture_output=True, text=True, timeout=300)
        if result.returncode != 0 or not script.exists():
            raise FileNotFoundError(f"npm could not install axe-core: {result.stderr[-500:]}")
    return script.read_text()


def axe_source() -> str:
    """axe.min.js (installed into the cache on first use)."""
    try:
        return _axe_source()
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        _missing(str(exc))
        raise  # not reached: _missing skips or fails


@dataclass
class PageReport:
    """What a phone user would meet on one page."""

    url: str
    overflow_px: int
    violations: list[dict[str, Any]] = field(default_factory=list)
    headings: int = 1  # h1 elements shown (a page has exactly one)
    has_main: bool = True  # a <main> landmark holds the page's content

    @property
    def ok(self) -> bool:
        """Fits the screen, one h1 and a main landmark, no serious or critical violation."""
        return (self.overflow_px == 0 and not self.blocking and self.headings == 1
                and self.has_main)

    @property
    def blocking(self) -> list[dict[str, Any]]:
        """The serious and critical violations."""
        return [v for v in self.violations if v.get("impact") in BLOCKING]

    def summary(self) -> str:
        """'url: N px wider, rule ×count, …' for a failure message or a table."""
        rules = ", ".join(f"{v['id']} ×{len(v['nodes'])}" for v in self.blocking) or "none"
        return (f"{self.url}: {self.overflow_px} px wider than the screen; axe: {rules}; "
                f"{self.headings} h1; {'a' if self.has_main else 'no'} main landmark")

    def details(self) -> str:
        """Each blocking violation with the elements it was found on."""
        lines = []
        for violation in self.blocking:
            lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
            for node in violation["nodes"][:6]:
                lines.append(f"    {node['target']}: {node.get('failureSummary', '')[:300]}")
        return "\n".join(lines)


async def page_report(page: Any) -> PageReport:
    """Measure the page as it is now: sideways overflow and axe-core's violations."""
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - window.innerWidth")
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(content=axe_source())
    result = await page.evaluate(
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => ({target: n.target.join(' '),"
        " failureSummary: n.failureSummary}))})))")
    headings = await page.evaluate(
        "[...document.querySelectorAll('h1')].filter(h => h.offsetParent !== null).length")
    has_main = await page.evaluate("document.querySelector('main, [role=main]') !== null")
    return PageReport(page.url, max(0, int(overflow)), result, int(headings), bool(has_main))


async def reports_in_both_schemes(page: Any) -> list[tuple[str, PageReport]]:
    """The page as it is now, on a phone screen, in light and in dark mode (the system's
    preference, which the panel follows). Reduced motion is on, so colours do not fade while
    axe-core reads them."""
    await page.set_viewport_size(PHONE)
    reports = []
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
        dark = str(scheme == "dark").lower()
        # Quasar marks <body> first and its components (cards, menus) a render later; a page
        # of plain HTML (the share link's password form) follows the media query at once.
        await page.wait_for_function(
            f"typeof window.Quasar === 'undefined' || "
            f"document.body.classList.contains('body--dark') === {dark} && [...document"
            f".querySelectorAll('.q-card')].every(c => c.classList.contains('q-dark') === {dark})",
            timeout=PATIENCE_MS)
        await page.evaluate("new Promise(r => requestAnimationFrame(() => "
                            "requestAnimationFrame(r)))")
        reports.append((scheme, await page_report(page)))
    return reports


async def assert_page_for_everyone(page: Any) -> None:
    """Fail unless the page, on a phone screen in light and in dark mode, fits the screen, has
    one h1 and a main landmark and no serious or critical axe-core violation."""
    failing = [(scheme, r) for scheme, r in await reports_in_both_schemes(page) if not r.ok]
    assert not failing, "\n".join(f"[{scheme}] {r.summary()}\n{r.details()}"
                                  for scheme, r in failing)
