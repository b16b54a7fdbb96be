"""POST /web/analytics/track: good and bad bodies, enrichment, CORS, bots."""

from __future__ import annotations

import json
from typing import Any

import pytest

from models.entities import Event
from tests.conftest import BROWSER_UA, event_body, post_event

GOOD = {"event_type": "pageview", "pathname": "/products"}

CASES: list[tuple[str, Any, int, str]] = [
    # (name, body (dict merged into a valid one, or raw bytes), status, error fragment)
    ("minimal pageview", {}, 202, ""),
    ("custom event with props", {"event_type": "signup", "props": {"plan": "pro", "n": 3}},
     202, ""),
    ("all optional fields", {"referrer": "https://www.google.com/", "hostname": "example.com",
                             "title": "Home", "screen_width": 1280}, 202, ""),
    ("empty body", b"", 400, "body: is empty"),
    ("not json", b"{nope", 400, "body: is not valid JSON"),
    ("json array", b"[1, 2]", 400, "body: must be a JSON object"),
    ("missing website_id", {"website_id": None}, 400, "website_id: is required"),
    ("missing event_type", {"event_type": ""}, 400, "event_type: is required"),
    ("missing pathname", {"pathname": None}, 400, "pathname: is required"),
    ("pathname without slash", {"pathname": "products"}, 400, "pathname: must start with /"),
    ("pathname too long", {"pathname": "/" + "a" * 2048}, 400, "pathname: is longer than 2048"),
    ("pathname with control chars", {"pathname": "/a\nb"}, 400, "pathname: must not contain"),
    ("event_type too long", {"event_type": "e" * 65}, 400, "event_type: is longer than 64"),
    ("event_type with markup", {"event_type": "<script>"}, 400, "event_type: may only hold"),
    ("pathname not a string", {"pathname": 42}, 400, "pathname: must be a string"),
    ("visitor_id bad chars", {"visitor_id": "a b/c"}, 400, "visitor_id: may only hold"),
    ("screen_width negative", {"screen_width": -5}, 400, "screen_width: must be a whole number"),
    ("screen_width string", {"screen_width": "wide"}, 400, "screen_width: must be a whole"),
    ("props not object", {"props": [1]}, 400, "props: must be an object"),
    ("too many props", {"props": {f"k{i}": i for i in range(31)}}, 400,
     "props: has more than 30 keys"),
    ("prop value too long", {"props": {"k": "v" * 501}}, 400, "props.k: must be at most 500"),
    ("nested prop", {"props": {"k": {"deep": 1}}}, 400, "props.k: must be a string, number"),
    ("NUL in title", {"title": "a\x00b"}, 400, "title: must not contain NUL"),
    ("unknown website", {"website_id": "00000000-0000-0000-0000-000000000000"}, 404,
     "website_id: no such website"),
]


@pytest.mark.parametrize(("name", "body", "status", "error"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.gen_test
async def test_bodies(http_client: Any, base_url: str, website: Any, name: str, body: Any,
                      status: int, error: str) -> None:
    if isinstance(body, bytes):
        raw = body
    else:
        merged = {"website_id": website.id, **GOOD, **body}
        raw = json.dumps({k: v for k, v in merged.items() if v is not None}).encode()
    response = await http_client.fetch(
        base_url + "/web/analytics/track", method="POST", body=raw, raise_error=False,
        headers={"Content-Type": "application/json", "User-Agent": BROWSER_UA})
    assert response.code == status, response.body
    payload = json.loads(response.body)
    if status == 202:
        assert payload["ok"] is True
        assert Event.get(website=website.id, seq=payload["id"]).pathname.startswith("/")
    else:
        assert error in payload["error"]
        assert Event.select().count() == 0


@pytest.mark.gen_test
async def test_text_plain_from_send_beacon_is_accepted(http_client: Any, base_url: str,
                                                       website: Any) -> None:
    response = await post_event(http_client, base_url, event_body(website.id),
                                Content_Type="text/plain;charset=UTF-8")
    assert response.code == 202


@pytest.mark.gen_test
async def test_wrong_content_type_and_oversized_body(http_client: Any, base_url: str,
                                                     website: Any) -> None:
    url = base_url + "/web/analytics/track"
    response = await http_client.fetch(url, method="POST", body=event_body(website.id),
                                       headers={"Content-Type": "application/xml"},
                                       raise_error=False)
    assert response.code == 415
    response = await post_event(http_client, base_url, event_body(website.id, title="x" * 17_000))
    assert response.code == 413
    assert "larger than 16384" in json.loads(response.body)["error"]


@pytest.mark.gen_test
async def test_enrichment_from_headers(http_client: Any, base_url: str, website: Any) -> None:
    iphone = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")
    response = await post_event(
        http_client, base_url,
        event_body(website.id, referrer="https://t.co/abc", visitor_id=None), User_Agent=iphone)
    stored = Event.get(website=website.id, seq=json.loads(response.body)["id"])
    assert (stored.browser, stored.os, stored.device) == ("Mobile Safari", "iOS", "mobile")
    assert stored.source == "twitter"
    assert stored.visitor_id.startswith("h-")  # derived: no visitor_id was sent


@pytest.mark.gen_test
async def test_bots_are_dropped_with_a_header(http_client: Any, base_url: str,
                                              website: Any) -> None:
    for agent in ("Googlebot/2.1 (+http://www.google.com/bot.html)", ""):
        response = await post_event(http_client, base_url, event_body(website.id),
                                    User_Agent=agent)
        assert response.code == 202
        assert response.headers["X-Pulse-Dropped"] == "bot"
    assert Event.select().count() == 0
    metrics = (await http_client.fetch(base_url + "/metrics")).body.decode()
    assert 'pulse_events_dropped_total{reason="bot"} 2.0' in metrics


@pytest.mark.gen_test
async def test_cors_allows_only_the_websites_origins(http_client: Any, base_url: str,
                                                     website: Any) -> None:
    url = base_url + "/web/analytics/track"
    for origin, allowed in (("https://example.com", True), ("https://blog.example.com", True),
                            ("http://localhost:3000", True), ("https://evil.test", False)):
        pre = await http_client.fetch(url, method="OPTIONS", raise_error=False,
                                      headers={"Origin": origin,
                                               "Access-Control-Request-Method": "POST"})
        assert (pre.code == 204) is allowed
        assert (pre.headers.get("Access-Control-Allow-Origin") == origin) is allowed
        post = await post_event(http_client, base_url, event_body(website.id), Origin=origin)
        assert post.code == (202 if allowed else 403)
        assert (post.headers.get("Access-Control-Allow-Origin") == origin) is allowed


@pytest.mark.gen_test
async def test_rate_limit_per_ip_answers_429(http_client: Any, base_url: str, website: Any,
                                            services: Any) -> None:
    from backend.ingest.limits import RateLimiter
    services.ip_limiter = RateLimiter(rate=1, burst=2)
    codes = []
    for _ in range(4):
        response = await post_event(http_client, base_url, event_body(website.id))
        codes.append(response.code)
    assert codes[:2] == [202, 202]
    assert 429 in codes[2:]
    limited = [c for c in codes if c == 429]
    assert len(limited) + Event.select().count() == 4
