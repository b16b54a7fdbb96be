"""The embeddable live counter: off until an owner turns it on (404), then only the count, pushed
to every open counter once per change (coalesced), from any origin."""

from __future__ import annotations

import json
from typing import Any

import pytest

from models.alerts import set_counter
from models.websites import create_website
from tests.conftest import event_body, post_event
from tests.sse_client import SSEReader


def counts(reader: SSEReader) -> list[int]:
    return [f.data["count"] for f in reader.frames if isinstance(f.data, dict)]


@pytest.mark.gen_test
async def test_a_counter_that_is_off_is_404_everywhere(http_client: Any, base_url: str,
                                                       website: Any) -> None:
    other = create_website("on.example")
    set_counter(other, True)
    set_counter(website, False)
    for path in ("", "/count", "/count.json", "/counter.js"):
        response = await http_client.fetch(f"{base_url}/embed/{website.id}{path}",
                                           raise_error=False)
        assert response.code == 404, path
        assert json.loads(response.body) == {"error": "no such live counter"}
    response = await http_client.fetch(f"{base_url}/embed/no-such-site/count.json",
                                       raise_error=False)
    assert response.code == 404


@pytest.mark.gen_test
async def test_the_count_is_pushed_once_per_change(http_client: Any, base_url: str,
                                                   website: Any, services: Any) -> None:
    set_counter(website, True)
    url = f"{base_url}/embed/{website.id}"
    first = SSEReader(url + "/count", {"Origin": "https://elsewhere.example"}).start()
    second = SSEReader(url + "/count").start()
    try:
        await first.wait_for(lambda r: counts(r) == [0])
        await second.wait_for(lambda r: counts(r) == [0])
        assert first.status == 200
        assert first.response_headers["access-control-allow-origin"] == "*"
        assert first.response_headers["content-type"].startswith("text/event-stream")
        for n in range(3):  # three visitors arrive between two flushes: one frame, 3
            response = await post_event(http_client, base_url,
                                        event_body(website.id, visitor_id=f"v{n}",
                                                   session_id=f"s{n}"))
            assert response.code == 202
        services.counters.flush()  # the once-a-second job
        await first.wait_for(lambda r: counts(r) == [0, 3])
        await second.wait_for(lambda r: counts(r) == [0, 3])
        frame = first.frames[-1]
        assert frame.data == {"count": 3}  # nothing but the count
        services.counters.flush()  # nothing changed: nothing sent
        response = await http_client.fetch(url + "/count.json")
        assert json.loads(response.body) == {"count": 3}
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        await post_event(http_client, base_url, event_body(website.id, visitor_id="v9",
                                                           session_id="s9"))
        services.counters.flush()
        await first.wait_for(lambda r: counts(r) == [0, 3, 4])  # and no repeated 3 before it

        set_counter(website, False)  # turned off: open counters end
        services.counters.close_website(website.id)
        await first.wait_ended()
        await second.wait_ended()
        assert services.counters.stream_count() == 0
    finally:
        first.close()
        second.close()


@pytest.mark.gen_test
async def test_the_script_and_the_frame(http_client: Any, base_url: str, website: Any) -> None:
    set_counter(website, True)
    script = await http_client.fetch(f"{base_url}/embed/{website.id}/counter.js")
    assert script.headers["Content-Type"].startswith("application/javascript")
    assert b"EventSource" in script.body
    dark = await http_client.fetch(f"{base_url}/embed/{website.id}?theme=dark")
    assert dark.headers["Content-Type"].startswith("text/html")
    assert b"#1e293b" in dark.body
    assert f"/embed/{website.id}/count".encode() in dark.body


@pytest.mark.gen_test
async def test_the_counter_answers_as_documented(http_client: Any, base_url: str,
                                                 website: Any) -> None:
    from tests.openapi_check import check_response
    from tests.server_support import Response

    for enabled in (False, True):
        set_counter(website, enabled)
        for path, template in (("/count.json", "/embed/{website_id}/count.json"),
                               ("/counter.js", "/embed/{website_id}/counter.js"),
                               ("", "/embed/{website_id}")):
            response = await http_client.fetch(f"{base_url}/embed/{website.id}{path}",
                                               raise_error=False)
            check_response(template, "GET", Response(
                response.code, response.reason or "",
                {k.lower(): v for k, v in response.headers.get_all()}, response.body or b""))
