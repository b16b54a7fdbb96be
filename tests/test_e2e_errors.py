"""data-errors in a real browser: uncaught errors become js_error events (message, file, line,
column), each distinct one once per page view, shown in the live stream like any event."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e_support import (
    BROWSER_UA,
    PulseProcess,
    StaticSite,
    chromium,
    pulse_cli,
    require_browser,
)
from tests.sse_client import SSEReader

pytestmark = [pytest.mark.e2e]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Errors</title>
<script defer data-website-id="{website_id}" data-errors data-allow-localhost
  src="{pulse}/js/pulse.js"></script></head>
<body>
<button id="boom" onclick="throw new Error('boom')">Boom</button>
<button id="bang" onclick="undefinedFunction()">Bang</button>
<button id="next" onclick="history.pushState({{}}, '', '/next')">Next</button>
</body></html>"""


@pytest.mark.asyncio
async def test_uncaught_errors_become_js_error_events_once_per_page_view(tmp_path: Path) -> None:
    require_browser()
    data_dir, root = tmp_path / "data", tmp_path / "site"
    root.mkdir()
    with StaticSite(root) as site:
        pulse_cli(data_dir, "create-user", "e2e@example.com", "--password-stdin",
                  stdin="e2e password\n")
        website_id = pulse_cli(data_dir, "create-website", "shop.example", "--origin",
                               site.origin)
        token = pulse_cli(data_dir, "create-token", "e2e@example.com")
        with PulseProcess(data_dir) as pulse:
            (root / "errors.html").write_text(PAGE.format(website_id=website_id,
                                                          pulse=pulse.base_url))
            reader = SSEReader(f"{pulse.base_url}/admin/analytics/live?website_id={website_id}",
                               {"Authorization": f"Bearer {token}"}).start()
            try:
                await reader.wait_for(lambda r: bool(r.of_type("connected")), timeout=30)
                async with chromium() as browser:
                    page = await browser.new_page(user_agent=BROWSER_UA)
                    await page.goto(f"{site.origin}/errors.html")
                    await reader.wait_for(lambda r: len(r.of_type("new_event")) >= 1, 30)
                    for button in ("#boom", "#boom", "#bang", "#next", "#boom"):
                        await page.click(button)
                    await reader.wait_for(lambda r: len(r.of_type("new_event")) >= 5, 30)
                    await page.click("#bang")  # after /next, so once more; the marker below
                    await reader.wait_for(lambda r: len(r.of_type("new_event")) >= 6, 30)
            finally:
                reader.close()
    events = [f.data["data"] for f in reader.of_type("new_event")]
    assert [(e["event_type"], e["pathname"]) for e in events] == [
        ("pageview", "/errors.html"), ("js_error", "/errors.html"),
        ("js_error", "/errors.html"), ("pageview", "/next"), ("js_error", "/next"),
        ("js_error", "/next")]
    boom = events[1]["props"]
    assert boom["message"] == "Uncaught Error: boom"
    assert boom["file"] == f"{site.origin}/errors.html"
    assert boom["line"] > 0 and boom["column"] > 0
    assert set(boom) == {"message", "file", "line", "column"}
    assert "undefinedFunction" in events[2]["props"]["message"]
