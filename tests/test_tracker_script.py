"""GET /js/pulse.js: small, served with caching and CORS headers, and speaking the track API.
(Its behaviour in a browser is tested in test_e2e_tracker.py.)"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

import pytest
import rjsmin

from backend.handlers.status import STATIC_DIR
from backend.ingest.validation import KNOWN_FIELDS

SCRIPT = STATIC_DIR / "pulse.js"
README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_tracker_is_at_most_2_kb_minified_and_gzipped() -> None:
    minified = rjsmin.jsmin(SCRIPT.read_text())
    assert len(minified) < len(SCRIPT.read_text())
    size = len(gzip.compress(minified.encode(), compresslevel=9))
    assert size <= 2048, f"pulse.js is {size} bytes minified and gzipped"


def test_the_tracker_sends_only_fields_the_track_api_knows() -> None:
    source = SCRIPT.read_text()
    body = re.search(r"JSON\.stringify\(\{(.*?)\}\);", source, re.S)
    assert body is not None
    fields = set(re.findall(r"^\s*(\w+):", body.group(1), re.M))
    assert fields <= KNOWN_FIELDS
    assert {"website_id", "event_type", "pathname", "visitor_id", "session_id",
            "referrer", "hostname", "title", "screen_width", "props"} == fields
    assert "'/web/analytics/track'" in source


def test_every_data_attribute_is_documented() -> None:
    names = set(re.findall(r"(?:attr|flag)\('([a-z-]+)'\)", SCRIPT.read_text()))
    assert {"website-id", "hash", "debug", "allow-localhost", "respect-dnt", "api"} <= names
    readme = README.read_text()
    for name in names:
        assert f"data-{name}" in readme, f"data-{name} is not in README.md"


@pytest.mark.gen_test
async def test_the_script_is_served_cacheable_and_cross_origin(http_client: Any,
                                                               base_url: str) -> None:
    response = await http_client.fetch(base_url + "/js/pulse.js",
                                       headers={"Origin": "https://example.com"})
    assert response.code == 200
    assert response.body.decode() == SCRIPT.read_text()
    assert response.headers["Content-Type"].startswith("application/javascript")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "max-age=" in response.headers["Cache-Control"]
    etag = response.headers["Etag"]
    again = await http_client.fetch(base_url + "/js/pulse.js", raise_error=False,
                                    headers={"If-None-Match": etag})
    assert again.code == 304


@pytest.mark.gen_test
async def test_only_the_tracker_is_served_from_js(http_client: Any, base_url: str) -> None:
    response = await http_client.fetch(base_url + "/js/other.js", raise_error=False)
    assert response.code == 404
