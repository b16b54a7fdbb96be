"""POST /api/event (Plausible's Events API) and POST /api/send (Umami's): their bodies and
answers, stored as our own events and published live."""

from __future__ import annotations

import json
from typing import Any

import pytest

from backend.services import Services
from backend.settings import Settings
from models.entities import Event, Website
from models.websites import create_website
from tests.conftest import BROWSER_UA
from tests.openapi_check import check_response
from tests.server_support import RawHTTP, ThreadedServer

PAGE = "https://www.example.com/pricing?utm_source=news&plan=pro#faq"


async def plausible(http_client: Any, base_url: str, body: Any, **headers: str) -> Any:
    """POST ``body`` (a dict as JSON, or raw bytes) to /api/event as Plausible's tracker does."""
    sent = {"Content-Type": "text/plain", "User-Agent": BROWSER_UA}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http_client.fetch(base_url + "/api/event", method="POST", body=raw,
                                   headers=sent, raise_error=False)


async def umami(http_client: Any, base_url: str, body: Any, **headers: str) -> Any:
    """POST ``body`` to /api/send as Umami's tracker does."""
    sent = {"Content-Type": "application/json", "User-Agent": BROWSER_UA}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http_client.fetch(base_url + "/api/send", method="POST", body=raw,
                                   headers=sent, raise_error=False)


def stored() -> list[Event]:
    """Every stored event, oldest first."""
    return list(Event.select().order_by(Event.id))


@pytest.mark.gen_test
async def test_a_plausible_pageview_is_stored_for_the_website_of_its_domain(
        http_client: Any, base_url: str, website: Website, services: Services) -> None:
    seen: list[Any] = []
    services.hub.subscribe(website.id, lambda message: seen.append(message))
    response = await plausible(http_client, base_url, {
        "n": "pageview", "u": PAGE, "d": "example.com", "r": "https://news.ycombinator.com/",
        "v": 36})
    assert response.code == 202
    assert response.body == b"ok"
    assert "X-Plausible-Dropped" not in response.headers
    [event] = stored()
    assert (event.website_id, event.event_type, event.pathname, event.hostname) == (
        website.id, "pageview", "/pricing", "www.example.com")
    assert event.referrer == "https://news.ycombinator.com/"
    assert event.source == "news"  # utm_source from the page URL's query string
    assert event.browser == "Chrome" and event.interactive is True
    assert event.revenue_amount is None
    assert event.visitor_id.startswith("h-") and event.session_id.startswith("s-")
    published = [e for m in seen if m.kind == "events" for e in m.events]
    assert [e.id for e in published] == [event.id]


@pytest.mark.gen_test
async def test_plausible_long_names_props_revenue_and_non_interactive_events(
        http_client: Any, base_url: str, website: Website) -> None:
    response = await plausible(http_client, base_url, {
        "name": "Purchase", "url": "https://example.com/checkout", "domain": "Example.com",
        "props": json.dumps({"plan": "pro", "seats": 3, "empty": "", "gone": None,
                             "nested": {"a": 1}}),
        "revenue": {"amount": "15.99", "currency": "eur"}, "interactive": False},
        Content_Type="application/json")
    assert response.code == 202, response.body
    [event] = stored()
    assert event.event_type == "Purchase"
    assert event.props_dict() == {"plan": "pro", "seats": 3}  # as Plausible: empties dropped
    assert event.interactive is False
    assert (str(event.revenue_amount), event.revenue_currency) == ("15.99", "EUR")


BAD_REVENUE = [
    {"amount": "lots", "currency": "EUR"},
    {"amount": 10, "currency": "EURO"},
    {"amount": 10},
    "not an object",
    {"amount": "NaN", "currency": "USD"},
]


@pytest.mark.parametrize("money", BAD_REVENUE, ids=[str(m) for m in BAD_REVENUE])
@pytest.mark.gen_test
async def test_a_bad_revenue_is_dropped_and_the_event_kept(
        http_client: Any, base_url: str, website: Website, money: Any) -> None:
    response = await plausible(http_client, base_url, {
        "n": "Purchase", "u": "https://example.com/", "$": money})
    assert response.code == 202
    [event] = stored()
    assert event.revenue_amount is None and event.revenue_currency is None


@pytest.mark.gen_test
async def test_hash_mode_keeps_the_fragment_and_the_domain_defaults_to_the_url_host(
        http_client: Any, base_url: str, website: Website) -> None:
    response = await plausible(http_client, base_url, {"n": "pageview", "u": PAGE, "h": 1})
    assert response.code == 202
    [event] = stored()
    assert event.pathname == "/pricing#faq"


@pytest.mark.gen_test
async def test_one_event_counts_once_for_each_listed_website(
        http_client: Any, base_url: str, website: Website) -> None:
    rollup = create_website("rollup.example", name="All sites")
    response = await plausible(http_client, base_url, {
        "n": "pageview", "u": "https://example.com/",
        "d": "example.com, rollup.example,unknown.example"})
    assert response.code == 202
    assert "X-Plausible-Dropped" not in response.headers
    assert sorted(e.website_id for e in stored()) == sorted([website.id, rollup.id])


DROPS = {
    "unknown domain": ({"d": "nobody.example"}, {}),
    "bot": ({}, {"User_Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}),
    "no user agent": ({}, {"User_Agent": ""}),
    "origin the website does not allow": ({}, {"Origin": "https://evil.example"}),
}


@pytest.mark.parametrize("case", list(DROPS))
@pytest.mark.gen_test
async def test_plausible_drops_answer_202_with_the_dropped_header(
        http_client: Any, base_url: str, website: Website, case: str) -> None:
    fields, headers = DROPS[case]
    body = {"n": "pageview", "u": "https://example.com/", "d": "example.com", **fields}
    response = await plausible(http_client, base_url, body, **headers)
    assert response.code == 202
    assert response.headers["X-Plausible-Dropped"] == "1"
    assert stored() == []


@pytest.mark.gen_test
async def test_a_throttled_site_is_dropped_like_plausible(
        http_client: Any, base_url: str, website: Website, services: Services) -> None:
    services.website_limiter.rate, services.website_limiter.burst = 0.001, 1.0
    body = {"n": "pageview", "u": "https://example.com/"}
    first = await plausible(http_client, base_url, body)
    second = await plausible(http_client, base_url, body)
    assert first.code == second.code == 202
    assert "X-Plausible-Dropped" not in first.headers
    assert second.headers["X-Plausible-Dropped"] == "1"
    assert len(stored()) == 1


PLAUSIBLE_ERRORS = [
    (b"{nope", "request", "Unable to parse request body as json"),
    ({"u": "https://example.com/"}, "name", "is required"),
    ({"n": "pageview"}, "url", "is required"),
    ({"n": "pageview", "u": 42}, "url", "is required"),
    ({"n": "pageview", "u": "data:text/html,hi", "d": "example.com"}, "url",
     "scheme is not allowed"),
    ({"n": "pageview", "u": "https://example.com/", "d": ""}, "domain", "can't be blank"),
    ({"n": "pageview", "u": "https://example.com/", "d": "\ud800"}, "domain", "host names"),
    ({"n": "pageview", "u": "https://example.com/", "d": "a" * 254}, "domain", "host names"),
    ({"n": "<script>", "u": "https://example.com/"}, "name", "must be at most 64"),
    ({"n": "x", "u": "https://example.com/", "p": {f"k{i}": "v" for i in range(31)}}, "props",
     "at most 30 keys"),
    ({"n": "x", "u": "https://example.com/", "p": {"k": "v" * 2001}}, "props",
     "at most 2000 bytes"),
    ({"n": "x", "u": "https://example.com/", "p": {"k" * 301: "v"}}, "props", "1–300 bytes"),
    ({"n": "engagement", "u": "https://example.com/", "sd": "deep"}, "sd", "whole number"),
]


@pytest.mark.parametrize(("body", "field", "message"), PLAUSIBLE_ERRORS,
                         ids=[f"{e[1]}: {e[2]}" for e in PLAUSIBLE_ERRORS])
@pytest.mark.gen_test
async def test_plausible_errors_name_the_field(http_client: Any, base_url: str, website: Website,
                                               body: Any, field: str, message: str) -> None:
    response = await plausible(http_client, base_url, body)
    assert response.code == 400
    errors = json.loads(response.body)["errors"]
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert stored() == []


@pytest.mark.gen_test
async def test_engagement_is_stored_but_stays_out_of_the_live_feed(
        http_client: Any, base_url: str, website: Website, services: Services) -> None:
    page = {"u": "https://example.com/docs", "d": "example.com"}
    assert (await plausible(http_client, base_url, {"n": "pageview", **page})).code == 202
    response = await plausible(http_client, base_url, {
        "n": "engagement", "sd": 64, "e": 12345, "p": {"ignored": "yes"}, **page})
    assert response.code == 202
    pageview, engagement = stored()
    assert engagement.event_type == "engagement"
    assert engagement.props_dict() == {"sd": 64, "e": 12345}
    assert engagement.interactive is False
    assert engagement.session_id == pageview.session_id
    stats = services.hub.stats(website.id)
    assert [e.event_type for e in stats.recent_events()] == ["pageview"]
    assert stats.active_pages() == [{"pathname": "/docs", "visitors": 1}]
    assert stats.current_visitors == 1
    assert sum(row["pageviews"] for row in stats.per_minute(pageview.ts)) == 1


@pytest.mark.gen_test
async def test_an_umami_pageview_and_custom_event(http_client: Any, base_url: str,
                                                  website: Website) -> None:
    base = {"website": website.id, "hostname": "example.com", "language": "en-US",
            "screen": "1920x1080", "title": "Pricing%20%E2%80%94%20Example",
            "url": "/pricing?utm_source=newsletter", "referrer": "https://duckduckgo.com/"}
    response = await umami(http_client, base_url, {"type": "event", "payload": base})
    assert response.code == 200, response.body
    answer = json.loads(response.body)
    assert answer["cache"] == "" and answer["sessionId"]
    response = await umami(http_client, base_url, {"type": "event", "payload": {
        **base, "name": "signup", "data": {"plan": "pro", "cart": {"items": 2}}}},
        X_Umami_Cache=response.body.decode())
    assert response.code == 200
    pageview, signup = stored()
    assert (pageview.event_type, pageview.pathname, pageview.title) == (
        "pageview", "/pricing", "Pricing — Example")
    assert pageview.source == "newsletter" and pageview.screen_width == 1920
    assert pageview.hostname == "example.com"
    assert signup.event_type == "signup"
    assert signup.props_dict() == {"plan": "pro", "cart.items": 2}
    assert signup.session_id == pageview.session_id == answer["sessionId"]


UMAMI_ERRORS = [
    ({"type": "event"}, 400, "payload: must be an object"),
    ({"type": "bogus", "payload": {}}, 400, "type: must be"),
    ({"type": "event", "payload": {"url": "/"}}, 400, "website: is required"),
    ({"type": "event", "payload": {"website": "00000000-0000-0000-0000-000000000000",
                                   "hostname": "nobody.example", "url": "/"}}, 400,
     "website: not found"),
    ({"type": "event", "payload": {"website": "{id}", "url": "/", "data": [1]}}, 400,
     "data: must be an object"),
    ({"type": "event", "payload": {"website": "{id}", "url": "/", "name": "a/b"}}, 400,
     "name: must be at most 64"),
]


@pytest.mark.parametrize(("body", "status", "message"), UMAMI_ERRORS,
                         ids=[e[2] for e in UMAMI_ERRORS])
@pytest.mark.gen_test
async def test_umami_errors(http_client: Any, base_url: str, website: Website, body: Any,
                            status: int, message: str) -> None:
    raw = json.dumps(body).replace("{id}", website.id).encode()
    response = await umami(http_client, base_url, raw)
    assert response.code == status
    assert message in json.loads(response.body)["error"]
    assert stored() == []


@pytest.mark.gen_test
async def test_an_umami_website_id_unknown_here_is_found_by_the_hostname(
        http_client: Any, base_url: str, website: Website) -> None:
    response = await umami(http_client, base_url, {"type": "event", "payload": {
        "website": "6e9fb5c4-0000-4000-8000-000000000001", "hostname": "www.example.com",
        "url": "/"}})
    assert response.code == 200
    assert [e.website_id for e in stored()] == [website.id]


@pytest.mark.gen_test
async def test_umami_bots_get_beep_boop_and_identify_is_accepted(
        http_client: Any, base_url: str, website: Website) -> None:
    body = {"type": "event", "payload": {"website": website.id, "url": "/"}}
    response = await umami(http_client, base_url, body, User_Agent="curl/8.5.0")
    assert response.code == 200
    assert json.loads(response.body) == {"beep": "boop"}
    response = await umami(http_client, base_url, {"type": "identify", "payload": {
        "website": website.id, "data": {"plan": "pro"}}})
    assert response.code == 200
    assert stored() == []


@pytest.mark.gen_test
async def test_cors_preflight_allows_umamis_cache_header(http_client: Any, base_url: str,
                                                         website: Website) -> None:
    response = await http_client.fetch(
        base_url + "/api/send", method="OPTIONS", raise_error=False,
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
    assert response.code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "x-umami-cache" in response.headers["Access-Control-Allow-Headers"].lower()
    response = await umami(http_client, base_url, {"type": "event", "payload": {
        "website": website.id, "url": "/"}}, Origin="https://evil.example")
    assert response.code == 403


@pytest.mark.parametrize("trust_proxy", [True, False], ids=["trusted proxy", "direct"])
def test_events_from_a_backend_carry_the_visitors_user_agent_and_ip(
        tmp_path: Any, trust_proxy: bool) -> None:
    server = ThreadedServer(Settings(
        data_dir=tmp_path, host="127.0.0.1", port=0, secret="compat-" + "s" * 30,
        rate_per_ip=0, rate_per_website=0, trust_proxy=trust_proxy))
    try:
        create_website("example.com")
        server.start()
        client = RawHTTP(server.port)
        body = json.dumps({"name": "Purchase", "url": "https://example.com/checkout",
                           "domain": "example.com", "props": {"plan": "pro"},
                           "revenue": {"amount": "15.99", "currency": "EUR"}}).encode()
        for ip in ("81.169.145.1", "81.169.145.1", "2.16.0.1"):  # two visitors: DE, then NL
            response = client.request("POST", "/api/event", [
                (b"Content-Type", b"application/json"), (b"User-Agent", BROWSER_UA.encode()),
                (b"X-Forwarded-For", ip.encode())], body)
            assert response is not None and response.status == 202
            check_response("/api/event", "POST", response)
        events = server.call(stored)
    finally:
        server.stop()
    visitors = [e.visitor_id for e in events]
    if trust_proxy:  # the visitor's IP makes the visitor id and the country
        assert visitors[0] == visitors[1] != visitors[2]
        assert [e.country for e in events] == ["DE", "DE", "NL"]
    else:  # the header is ignored: every event is the backend's own (loopback)
        assert len(set(visitors)) == 1
        assert [e.country for e in events] == ["", "", ""]
    assert str(events[0].revenue_amount) == "15.99"
