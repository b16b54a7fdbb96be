"""Fuzzing POST /api/event (Plausible) and POST /api/send (Umami) on a real server: every answer
is one docs/openapi.yaml declares, never a 5xx, and what is stored follows from the answer —
nothing for a refusal or a drop, one event per website for an acceptance."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.auth import create_user
from backend.settings import Settings
from models.entities import Event, Website
from models.websites import create_website
from tests.conftest import BROWSER_UA
from tests.openapi_check import check_response
from tests.server_support import RawHTTP, ThreadedServer
from tests.test_fuzz_api import FUZZ, json_values, nasty_text, text

EVENT_NAME = re.compile(r"[A-Za-z0-9_.:\- ]{1,64}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: Any) -> Iterator[tuple[ThreadedServer, dict[str, Website]]]:
    """One server for the module: two websites, rate limits off."""
    config = Settings(data_dir=tmp_path_factory.mktemp("fuzz-compat"), host="127.0.0.1", port=0,
                      secret="fuzz-" + "s" * 30, rate_per_ip=0, rate_per_website=0,
                      trust_proxy=True, batch_delay_ms=0.5)
    running = ThreadedServer(config)
    create_user("admin@example.com", "correct horse battery", is_admin=True)
    sites = {"example.com": create_website("example.com"),
             "other.org": create_website("other.org")}
    running.start()
    yield running, sites
    running.stop()


urls = (st.sampled_from(["https://example.com/", "https://www.example.com/a?utm_source=x#f",
                         "https://other.org/b", "http://unknown.example/", "/relative",
                         "data:text/html,x", "https://example.com/" + "a" * 2100,
                         "https://[::1/", "android-app://com.example/"])
        | st.builds(lambda p: "https://example.com/" + p, st.text(max_size=40)) | text)
domains = st.sampled_from(["example.com", "www.Example.com", "other.org", "example.com,other.org",
                           "unknown.example", "", " , ", "example.com," * 20]) | text
good_urls = st.sampled_from(["https://example.com/", "https://www.example.com/a?utm_source=x#f",
                             "https://other.org/b", "https://example.com/ünï?q=1"])
good_plausible = st.fixed_dictionaries(
    {"n": st.sampled_from(["pageview", "signup", "engagement", "Outbound Link: Click"]),
     "u": good_urls},
    optional={"d": st.sampled_from(["example.com", "other.org", "example.com,other.org",
                                    "unknown.example"]),
              "r": st.sampled_from(["https://www.google.com/", "", "not a url"]) | st.none(),
              "p": st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20)
                                   | st.integers(-10, 10) | st.booleans(), max_size=5),
              "$": st.fixed_dictionaries({"amount": st.sampled_from([1, "2.50", "x", -3.5]),
                                          "currency": st.sampled_from(["EUR", "usd", "EURO"])}),
              "i": st.booleans(), "h": st.sampled_from([0, 1]),
              "sd": st.integers(-5, 150), "e": st.integers(-5, 10**8)})
any_plausible = st.fixed_dictionaries(
    {"n": st.sampled_from(["pageview", "signup", "engagement", "Outbound Link: Click"])
     | nasty_text},
    optional={
        "u": urls, "url": urls, "d": domains, "domain": domains, "r": text | st.none(),
        "p": st.dictionaries(st.text(max_size=10), json_values, max_size=6) | text,
        "$": json_values | st.fixed_dictionaries({"amount": json_values,
                                                  "currency": st.sampled_from(["EUR", "usd",
                                                                               "EURO", ""])}),
        "i": json_values, "h": json_values, "sd": json_values, "e": json_values,
    },
) | json_values
plausible_bodies = good_plausible | good_plausible | any_plausible


@st.composite
def umami_bodies(draw: Any) -> Any:
    """Umami bodies whose ``payload.website`` is one of ours, unknown, or anything."""
    if draw(st.booleans()):  # a body Umami's tracker would send
        return {"type": "event", "payload": draw(st.fixed_dictionaries(
            {"website": st.sampled_from(["@example.com", "@other.org"]),
             "url": st.sampled_from(["/", "/a?utm_source=x", "/%C3%BC"]) | good_urls},
            optional={"hostname": st.sampled_from(["example.com", "other.org"]),
                      "title": st.text(max_size=30), "screen": st.sampled_from(["1920x1080"]),
                      "name": st.sampled_from(["signup", "click: buy"]),
                      "data": st.dictionaries(st.text(min_size=1, max_size=10),
                                              json_values, max_size=4)}))}
    payload = draw(st.fixed_dictionaries({}, optional={
        "website": st.sampled_from(["@example.com", "@other.org", "unknown"]) | text,
        "hostname": st.sampled_from(["example.com", "other.org", "nobody.example"]) | text,
        "url": urls, "referrer": text, "title": text, "screen": st.sampled_from(
            ["1920x1080", "x", "99999999x1"]) | text,
        "name": st.sampled_from(["signup", "a/b", ""]) | nasty_text | st.none(),
        "data": st.dictionaries(st.text(max_size=10), json_values, max_size=6) | json_values,
        "language": text,
    }))
    kind = draw(st.sampled_from(["event", "event", "identify", "other"]) | json_values)
    return draw(st.sampled_from([{"type": kind, "payload": payload}, payload,
                                 {"type": kind, "payload": draw(json_values)}]))


def count_events() -> int:
    return Event.select().count()


def test_plausible_event_api_under_fuzz(server: tuple[ThreadedServer, dict[str, Website]]
                                        ) -> None:
    running, sites = server
    client = RawHTTP(running.port)
    ids = {site.id for site in sites.values()}

    @settings(FUZZ, max_examples=400)
    @given(body=plausible_bodies, user_agent=st.sampled_from([BROWSER_UA, "", "Googlebot/2.1"]))
    def run(body: Any, user_agent: str) -> None:
        before = running.call(count_events)
        response = client.request("POST", "/api/event", [
            (b"Content-Type", b"text/plain"), (b"User-Agent", user_agent.encode())],
            json.dumps(body).encode())
        assert response is not None
        check_response("/api/event", "POST", response)
        new = running.call(lambda: list(Event.select().where(Event.id > 0)
                                        .order_by(Event.id.desc()).limit(3)))
        added = running.call(count_events) - before
        if response.status != 202 or "x-plausible-dropped" in response.headers:
            assert added == 0, (response.status, body)
            return
        assert response.body == b"ok"
        assert 1 <= added <= 2
        for event in new[:added]:
            assert event.website_id in ids
            assert event.pathname.startswith("/")
            assert EVENT_NAME.fullmatch(event.event_type)
            assert user_agent == BROWSER_UA

    run()
    client.close()


def test_umami_send_api_under_fuzz(server: tuple[ThreadedServer, dict[str, Website]]) -> None:
    running, sites = server
    client = RawHTTP(running.port)

    @settings(FUZZ, max_examples=400)
    @given(body=umami_bodies())
    def run(body: Any) -> None:
        raw = json.dumps(body)
        for domain, site in sites.items():
            raw = raw.replace(f"@{domain}", site.id)
        before = running.call(count_events)
        response = client.request("POST", "/api/send", [
            (b"Content-Type", b"application/json"), (b"User-Agent", BROWSER_UA.encode())],
            raw.encode())
        assert response is not None
        check_response("/api/send", "POST", response)
        added = running.call(count_events) - before
        answer = json.loads(response.body)
        assert added == (1 if response.status == 200 and "sessionId" in answer else 0), (
            response.status, answer, body)

    run()
    client.close()
