"""GET /js/pulse.js and /js/pulse.<version>.js: small on the wire, served with caching and CORS
headers, and speaking the track API.
(Its behaviour in a browser is tested in test_e2e_tracker.py.)"""

from __future__ import annotations

import asyncio
import gzip
import re
from pathlib import Path
from typing import Any

import pytest
import rjsmin

from backend.handlers.status import STATIC_DIR
from backend.ingest.validation import KNOWN_FIELDS
from backend.tracker_script import tracker_script

SCRIPT = STATIC_DIR / "pulse.js"
README = Path(__file__).resolve().parent.parent / "README.md"


async def raw_get(base_url: str, path: str, headers: str = "") -> tuple[bytes, bytes]:
    """GET ``path`` over a plain socket: (the header block, the body) exactly as sent."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}"
                 "Connection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.gen_test
async def test_the_tracker_goes_out_minified_and_gzipped_in_at_most_2_kb(
        http_server: Any, base_url: str) -> None:
    head, body = await raw_get(base_url, "/js/pulse.js", "Accept-Encoding: gzip, br\r\n")
    assert b"\r\ncontent-encoding: gzip" in head.lower()
    assert len(body) <= 2048, f"pulse.js is {len(body)} bytes on the wire"
    assert f"content-length: {len(body)}".encode() in head.lower()
    minified = gzip.decompress(body)
    assert minified.decode() == rjsmin.jsmin(SCRIPT.read_text(), keep_bang_comments=True)
    assert len(minified) < 0.7 * len(SCRIPT.read_bytes())
    head, plain = await raw_get(base_url, "/js/pulse.js")  # no Accept-Encoding: identity
    assert b"content-encoding" not in head.lower()
    assert plain == minified


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
    assert {"website-id", "hash", "debug", "allow-localhost", "respect-dnt", "api",
            "persist"} <= names
    readme = README.read_text()
    for name in names:
        assert f"data-{name}" in readme, f"data-{name} is not in README.md"


@pytest.mark.gen_test
async def test_the_plain_url_is_cached_briefly_with_an_etag(http_client: Any,
                                                            base_url: str) -> None:
    response = await http_client.fetch(base_url + "/js/pulse.js",
                                       headers={"Origin": "https://example.com"})
    assert response.code == 200
    assert response.body == tracker_script().plain
    assert response.headers["Content-Type"].startswith("application/javascript")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    assert response.headers["Vary"] == "Accept-Encoding"
    etag = response.headers["Etag"]
    again = await http_client.fetch(base_url + "/js/pulse.js", raise_error=False,
                                    headers={"If-None-Match": etag})
    assert again.code == 304
    other = await http_client.fetch(base_url + "/js/pulse.js", raise_error=False,
                                    headers={"If-None-Match": '"0123456789ab"'})
    assert other.code == 200


@pytest.mark.gen_test
async def test_the_versioned_url_is_immutable(http_client: Any, base_url: str) -> None:
    script = tracker_script()
    assert re.fullmatch(r"/js/pulse\.[0-9a-f]{12}\.js", script.path)
    response = await http_client.fetch(base_url + script.path)
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.body == script.plain
    # A page cached with an older tag still gets the current tracker, but not for a year.
    outdated = await http_client.fetch(base_url + "/js/pulse.0123456789ab.js")
    assert outdated.body == script.plain
    assert outdated.headers["Cache-Control"] == "public, max-age=3600"
    head = await http_client.fetch(base_url + script.path, method="HEAD")
    assert head.code == 200 and head.body == b""


@pytest.mark.gen_test
async def test_only_the_tracker_is_served_from_js(http_client: Any, base_url: str) -> None:
    response = await http_client.fetch(base_url + "/js/other.js", raise_error=False)
    assert response.code == 404
