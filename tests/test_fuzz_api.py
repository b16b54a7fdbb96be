"""Property-based fuzzing of every public endpoint through a real socket.

Generated bodies, headers and query strings go to a real PulseServer (on a thread, the same
HTTPServer limits as ``pulse serve``). Every answer must be one docs/openapi.yaml declares, never a
5xx; a tracking request gets exactly the status an oracle built from the spec's request schema
predicts, and afterwards the database holds exactly the events answered 202 with an id.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.auth import create_user
from backend.settings import Settings
from models.entities import ApiToken, Event, Website
from models.websites import create_website
from tests.conftest import BROWSER_UA
from tests.openapi_check import check_response, is_http_layer_400, validator
from tests.server_support import RawHTTP, Response, ThreadedServer

FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture,
                                       HealthCheck.filter_too_much])
pytestmark = [pytest.mark.fuzz]

TRACK = "/web/analytics/track"
LIVE = "/admin/analytics/live"
MAX_BODY = 16_384
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")  # Tornado parses them
REQUEST_SCHEMA = validator("#/components/schemas/TrackRequest")
LIVE_FRAME = validator("#/components/schemas/LiveFrame")
MOBILE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
             "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")


@dataclass
class Target:
    """The server under fuzz and what the oracle needs to know about it."""

    server: ThreadedServer
    sites: dict[str, Website]
    token: str
    revoked: str
    stranger_token: str
    requests: int = 0
    # (website id, event id) → stored pathname, since the test began (see last_event_id)
    acknowledged: dict[tuple[str, int], str] = field(default_factory=dict)
    client: RawHTTP | None = None

    def send(self, method: str, target: str | bytes, headers: list[tuple[bytes, bytes]],
             body: bytes = b"", *, stream: bool = False) -> Response | None:
        if self.client is None:
            self.client = RawHTTP(self.server.port)
        self.requests += 1
        if stream:
            return sse_request(self.server.port, method, target, headers)
        return self.client.request(method, target, headers, body)

    def stored_since(self, first_id: int) -> dict[tuple[str, int], str]:
        return {(e.website_id, e.seq): e.pathname
                for e in Event.select(Event.website, Event.seq, Event.pathname)
                .where(Event.id > first_id)}


@pytest.fixture(scope="module")
def target(tmp_path_factory: Any, request: Any) -> Iterator[Target]:
    """One server for the whole module: two websites, an admin with a token, rate limits off."""
    data_dir = tmp_path_factory.mktemp("fuzz")
    config = Settings(data_dir=data_dir, host="127.0.0.1", port=0, secret="fuzz-" + "s" * 30,
                      rate_per_ip=0, rate_per_website=0, trust_proxy=True, batch_delay_ms=0.5,
                      sse_max_per_user=10_000)
    server = ThreadedServer(config)
    admin = create_user("admin@example.com", "correct horse battery", is_admin=True)
    stranger = create_user("stranger@example.com", "another password")
    sites = {
        "main": create_website("example.com", origins=["http://localhost:3000"]),
        "other": create_website("other.org"),
        "foreign": create_website("foreign.net", owner=stranger),
    }
    token = ApiToken.issue(admin, "fuzz")[1]
    record, revoked = ApiToken.issue(admin, "revoked")
    record.revoke()
    fuzz = Target(server.start(), sites, token, revoked, ApiToken.issue(stranger)[1])
    yield fuzz
    if fuzz.client is not None:
        fuzz.client.close()
    server.stop()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    line = f"fuzz: {fuzz.requests} requests sent to the public endpoints, none answered 5xx"
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n" + line)


def sse_request(port: int, method: str, target: str | bytes,
                headers: list[tuple[bytes, bytes]]) -> Response | None:
    """One request on its own connection; a stream is read up to its ``connected`` frame."""
    client = RawHTTP(port)
    try:
        return client.request(method, target, headers)
    finally:
        client.close()


# -- strategies ------------------------------------------------------------------------------

NASTY = [
    "", " ", "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "../../etc/passwd",
    "..\\..\\windows\\win.ini", "/..%2f..%2fetc%2fpasswd", "%00", "\x00", "a\x00b", "\u202e",
    "\ufeff", "\ud800", "\udfff", "a\ud83d", "😀" * 10, "𝕏", "e\u0301", "İ" * 40, "\r\n",
    "\n", "pageview\n", "\t", "\x7f", "\x1b[31m", "' OR 1=1 --", "${jndi:ldap://x/a}",
    "{{7*7}}", "%s%s%s%n", "null", "true", "0", "-1", "1e309", "A" * 65, "A" * 257,
    "/" + "a" * 2048, "/" + "a" * 2047, "https://" + "x" * 2050, "x" * 501, "\\", "/\\",
    "//evil.com", "javascript:alert(1)", "file:///etc/passwd", "/?utm_source=x&ref=y#frag",
    "/#", "/?", "/a?b#c", "ｆｕｌｌ", "\u0000\u0001", "\u2028\u2029", "\U0010ffff",
]
nasty_text = st.sampled_from(NASTY)
text = st.text(max_size=80) | nasty_text
numbers = (st.integers(min_value=-(10**20), max_value=10**20) | st.floats()
           | st.sampled_from([0, 1, -1, 100_000, 100_001, 1280.0, 1e15, -1e15, 1e16, 2**63]))
leaves = st.none() | st.booleans() | numbers | text
json_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
identifier = st.from_regex(r"[A-Za-z0-9_\-.:]{1,64}", fullmatch=True)


# Website ids are known only once the server runs: bodies name them by placeholder.
SITE_KEYS = ["@main", "@other", "@foreign", "@unknown"]
prop_values = (st.text(max_size=40) | st.booleans() | st.none()
               | st.integers(min_value=-10**15, max_value=10**15)
               | st.floats(min_value=-1e15, max_value=1e15))
valid_fields = st.fixed_dictionaries(
    {
        "website_id": st.sampled_from(SITE_KEYS),
        "event_type": st.sampled_from(["pageview", "signup", "click: buy", "a.b-c_d"])
        | st.from_regex(r"[A-Za-z0-9_.:\- ]{1,64}", fullmatch=True),
        "pathname": st.builds(lambda p: "/" + p, st.text(max_size=60))
        | st.sampled_from(["/", "/products?utm_source=news", "/a#top", "/ünï/cödé"]),
    },
    optional={
        "visitor_id": identifier | st.none() | st.just(""),
        "session_id": identifier | st.none(),
        "referrer": st.sampled_from(["https://www.google.com/", "https://t.co/x", "",
                                     "not a url", "android-app://x"]) | st.text(max_size=50),
        "hostname": st.text(max_size=30) | st.sampled_from(["example.com", "EXAMPLE.COM"]),
        "title": st.text(max_size=100),
        "screen_width": st.integers(min_value=1, max_value=100_000) | st.none()
        | st.just(1280.0),
        "props": st.dictionaries(st.text(min_size=1, max_size=20), prop_values, max_size=8)
        | st.none(),
        "extra": json_values,
    },
)
FIELDS = ["website_id", "event_type", "pathname", "visitor_id", "session_id", "referrer",
          "hostname", "title", "screen_width", "props"]
breakages = st.lists(st.tuples(st.sampled_from(FIELDS),
                               st.sampled_from(["drop", "nasty", "any", "long"]),
                               nasty_text, json_values,
                               st.sampled_from(["/", "x", "1"]),
                               st.sampled_from([64, 65, 253, 254, 500, 501, 2048, 2049])),
                     min_size=1, max_size=3)


@st.composite
def broken_bodies(draw: Any) -> dict[str, Any]:
    """A valid body with one to three fields dropped or replaced by something wrong."""
    body = draw(valid_fields)
    for name, action, nasty, anything, char, length in draw(breakages):
        if action == "drop":
            body.pop(name, None)
        elif action == "nasty":
            body[name] = nasty
        elif action == "long":
            body[name] = char * length
        else:
            body[name] = anything
    return body


track_bodies = valid_fields | broken_bodies() | json_values


@st.composite
def encoded_bodies(draw: Any) -> bytes:
    """A body as bytes: ASCII or raw UTF-8 (surrogates as invalid UTF-8), sometimes cut short,
    deeply nested, padded past the size limit, or raw bytes; website ids still placeholders."""
    how = draw(st.sampled_from(["json"] * 6 + ["utf8", "truncated", "nested", "huge", "bytes",
                                               "constants"]))
    if how == "bytes":
        return draw(st.binary(max_size=300))
    body = draw(track_bodies)
    if how == "utf8":
        return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    raw = json.dumps(body).encode()
    if how == "truncated":
        return raw[: draw(st.integers(min_value=0, max_value=max(0, len(raw) - 1)))]
    if how == "nested":
        depth = draw(st.sampled_from([10, 500, 1000, 5000, 8000]))
        if isinstance(body, dict):
            raw = json.dumps({**body, "props": "@@"}).encode()
            return raw.replace(b'"@@"', b"[" * depth + b"]" * depth)
        return b"[" * depth + b"]" * depth
    if how == "huge":
        if isinstance(body, dict):
            return json.dumps({**body, "pad": "x" * draw(st.sampled_from(
                [MAX_BODY - len(raw) - 10, MAX_BODY, 40_000]))}).encode()
        return b" " * MAX_BODY + raw
    if how == "constants" and isinstance(body, dict):
        return json.dumps({**body, "extra": draw(st.sampled_from(
            [float("nan"), float("inf"), float("-inf")]))}).encode()
    return raw


def with_site_ids(target: Target, raw: bytes) -> bytes:
    """Replace website placeholders by the real ids (an unknown one stays unknown)."""
    for key in SITE_KEYS:
        site = target.sites.get(key[1:])
        real = site.id if site is not None else "00000000-0000-4000-8000-000000000000"
        raw = raw.replace(f'"{key}"'.encode(), f'"{real}"'.encode())
    return raw


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def expected_track_status(target: Target, body: bytes, content_type: str | None,
                          origin: str | None) -> int:
    """What the spec says ``POST /web/analytics/track`` answers (rate limits are off)."""
    if len(body) > MAX_BODY:
        return 413
    if (content_type or "").split(";")[0].strip().lower() not in ("application/json",
                                                                   "text/plain", ""):
        return 415

    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return 400
    if not isinstance(data, dict) or not REQUEST_SCHEMA.is_valid(data):
        return 400
    site = next((s for s in target.sites.values() if s.id == data["website_id"]), None)
    if site is None:
        return 404
    if origin and not origin_allowed(site, origin):
        return 403
    return 202


# The oracle's own reading of the documented rules, not the code under test's: a browser may
# post from the website's domain, its subdomains, and the extra origins it lists.
_ORIGIN = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)")


def origin_host(origin: str) -> str:
    """The host of an origin (``scheme://[user@]host[:port]``), lower-case; '' if none."""
    match = _ORIGIN.match(origin)
    if match is None:
        return ""
    authority = match["authority"].rpartition("@")[2]
    if authority.startswith("["):  # an IPv6 literal
        return authority[1:authority.find("]")].lower() if "]" in authority else ""
    return authority.split(":", 1)[0].lower()


def origin_allowed(site: Website, origin: str) -> bool:
    """Whether the rules let a browser at ``origin`` post for ``site``."""
    origin = origin.rstrip("/")
    extra = [line.strip().rstrip("/") for line in site.allowed_origins.split("\n")]
    if origin in [o for o in extra if o]:
        return True
    host, domain = origin_host(origin), site.domain.lower()
    return host != "" and (host == domain or host.endswith("." + domain))


# Verdicts the oracle knows for the sampled User-Agents; for generated text it knows only the
# obvious (an empty one) and checks that the answer has one of the two documented shapes.
KNOWN_BOTS = {
    BROWSER_UA: False, MOBILE_UA: False, BROWSER_UA + " ünïcödé": False, "": True,
    "Googlebot/2.1 (+http://www.google.com/bot.html)": True, "curl/8.4.0": True,
    "Mozilla/5.0 HeadlessChrome/126": True,
}


def expected_bot(user_agent: str) -> bool | None:
    """True/False where the rules decide, None where only the crawler list can."""
    if user_agent in KNOWN_BOTS:
        return KNOWN_BOTS[user_agent]
    if not user_agent.strip():
        return True  # no User-Agent at all: never a visitor's browser
    return None


def stored_pathname(body: bytes) -> str:
    pathname = json.loads(body)["pathname"]
    return pathname.partition("?")[0].split("#", 1)[0] or "/"


def header_value(value: str) -> bytes:
    """A header value as it can travel in HTTP/1.1 (CR and LF would end the header)."""
    return value.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")


content_types = st.sampled_from([None, "application/json", "application/json; charset=utf-8",
                                 "text/plain;charset=UTF-8", "TEXT/PLAIN", "", "text/html",
                                 "application/x-www-form-urlencoded", "multipart/form-data",
                                 "multipart/form-data; boundary=x", "application/xml",
                                 "application/json\x00", "application/jsonp", ";", "*/*"]) \
    | st.text(max_size=40)
origins = st.sampled_from([None, None, None, "http://localhost:3000", "https://example.com",
                           "https://www.example.com", "https://other.org", "https://evil.test",
                           "null", "", "http://localhost:3000/", "https://example.com.evil.test",
                           "file://", "http://[::1]:80"]) | st.text(max_size=30)
user_agents = st.sampled_from([BROWSER_UA, BROWSER_UA, MOBILE_UA, "",
                               "Googlebot/2.1 (+http://www.google.com/bot.html)", "curl/8.4.0",
                               "Mozilla/5.0 HeadlessChrome/126", BROWSER_UA + " ünïcödé",
                               "A" * 4000]) | st.text(max_size=100)
forwarded = st.sampled_from([None, "203.0.113.7", "203.0.113.7, 10.0.0.1", "::1", "garbage",
                             "999.999.999.999", "", ",", "2001:db8::1", "1.2.3.4:80",
                             "\u0130" * 10]) | st.text(max_size=40)


def track_headers(content_type: str | None, origin: str | None, ua: str,
                  xff: str | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"User-Agent", header_value(ua))]
    if content_type is not None:
        headers.append((b"Content-Type", header_value(content_type)))
    if origin is not None:
        headers.append((b"Origin", header_value(origin)))
    if xff is not None:
        headers.append((b"X-Forwarded-For", header_value(xff)))
    return headers


def refused_by_http_layer(response: Response, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether Tornado refused the message itself, which it may only do for a header value with
    a control character in it (HTTP forbids them)."""
    if not is_http_layer_400(response):
        return False
    assert any(re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", v) for _, v in headers), headers
    return True


def post_and_check(target: Target, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """POST ``body``; the answer must be the oracle's and the spec's."""
    sent = {name.decode().lower(): value.decode("latin-1") for name, value in headers}
    response = target.send("POST", TRACK, headers, body)
    assert response is not None, "the server closed the connection without an answer"
    if refused_by_http_layer(response, headers):
        return
    check_response(TRACK, "POST", response)
    expected = expected_track_status(target, body, sent.get("content-type"),
                                     sent.get("origin"))
    if expected == 415 and sent.get("content-type", "").startswith(FORM_TYPES):
        expected = response.status if response.status == 400 else 415  # not a valid form
    assert response.status == expected, (response.status, expected, response.body[:300], body)
    if response.status == 202:
        answer = json.loads(response.body)
        bot = expected_bot(sent.get("user-agent", ""))
        if bot is None:
            bot = answer.get("dropped") == "bot"
        if bot:
            assert answer == {"ok": True, "dropped": "bot"}, answer
            assert response.headers.get("x-pulse-dropped") == "bot"
        else:
            assert answer["ok"] is True and "dropped" not in answer, answer
            key = (json.loads(body)["website_id"], answer["id"])
            target.acknowledged[key] = stored_pathname(body)


def last_event_id(target: Target) -> int:
    """The newest stored row (event ids are per website; the row id orders them all), and
    a fresh start for what the test acknowledges."""
    target.acknowledged.clear()
    return Event.select(Event.id).order_by(Event.id.desc()).scalar() or 0


def assert_database_holds_the_acknowledged(target: Target, first_id: int) -> None:
    stored = target.stored_since(first_id)
    assert stored == target.acknowledged


# -- tracking --------------------------------------------------------------------------------

def test_track_bodies(target: Target) -> None:
    """Generated bodies, as JSON: exactly the valid ones are stored."""
    first = last_event_id(target)

    @settings(FUZZ, max_examples=4000)
    @given(body=track_bodies, content_type=st.sampled_from(
        ["application/json", "text/plain;charset=UTF-8", None]))
    def run(body: Any, content_type: str | None) -> None:
        raw = with_site_ids(target, json.dumps(body, ensure_ascii=False).encode(
            "utf-8", "surrogatepass"))
        post_and_check(target, raw, track_headers(content_type, None, BROWSER_UA, None))

    run()
    assert_database_holds_the_acknowledged(target, first)
    assert len(target.acknowledged) > 500  # the fuzz reached the store


def test_track_raw_bodies(target: Target) -> None:
    """Truncated, nested, huge, mis-encoded and non-JSON bodies."""
    first = last_event_id(target)

    @settings(FUZZ, max_examples=1500)
    @given(body=encoded_bodies())
    def run(body: bytes) -> None:
        body = with_site_ids(target, body)
        post_and_check(target, body, track_headers("application/json", None, BROWSER_UA, None))

    run()
    assert_database_holds_the_acknowledged(target, first)


def test_track_headers(target: Target) -> None:
    """Content types, origins, User-Agents, X-Forwarded-For and stray headers."""
    first = last_event_id(target)
    stray = st.lists(st.tuples(st.sampled_from([b"X-Real-IP", b"Cookie", b"Accept", b"Referer",
                                                b"Content-Encoding", b"Transfer-Encoding-X",
                                                b"Authorization", b"X-" + b"a" * 100]),
                               st.text(max_size=60).map(header_value)), max_size=3)

    @settings(FUZZ, max_examples=2000)
    @given(body=valid_fields | track_bodies, content_type=content_types,
           origin=origins, ua=user_agents, xff=forwarded, extra=stray)
    def run(body: Any, content_type: str | None, origin: str | None, ua: str,
            xff: str | None, extra: list[tuple[bytes, bytes]]) -> None:
        raw = with_site_ids(target, json.dumps(body).encode())
        post_and_check(target, raw, track_headers(content_type, origin, ua, xff) + extra)

    run()
    assert_database_holds_the_acknowledged(target, first)


def test_track_preflight(target: Target) -> None:
    """OPTIONS with any Origin: 204 with CORS headers for a known origin, else 403."""

    @settings(FUZZ, max_examples=400)
    @given(origin=origins, method=st.sampled_from([b"POST", b"GET", b"PUT", b"X"]))
    def run(origin: str | None, method: bytes) -> None:
        headers = [(b"Access-Control-Request-Method", method)]
        if origin is not None:
            headers.append((b"Origin", header_value(origin)))
        response = target.send("OPTIONS", TRACK, headers)
        assert response is not None
        if refused_by_http_layer(response, headers):
            return
        check_response(TRACK, "OPTIONS", response)
        sent = header_value(origin).decode("latin-1") if origin is not None else ""
        known = bool(sent) and any(origin_allowed(s, sent) for s in target.sites.values())
        assert response.status == (204 if known else 403), (origin, response.status)
        if known:
            assert response.headers["access-control-allow-origin"] == sent

    run()


# -- the live stream -------------------------------------------------------------------------

def test_live_stream_queries_and_headers(target: Target) -> None:
    """The SSE endpoint with fuzzed query strings, credentials and Last-Event-ID."""
    main, foreign = target.sites["main"].id, target.sites["foreign"].id
    credentials = st.sampled_from(["valid", "valid", "valid", "none", "revoked", "garbage",
                                   "basic", "stranger", "text", "cookie"])
    website = st.sampled_from([main, main, foreign, "", "nope",
                               "00000000-0000-4000-8000-000000000000", " " + main, "x" * 65])
    website |= text
    event_ids = st.sampled_from([None, None, "", "0", "1", "  7 ", "abc", "-1", "²", "1" * 19,
                                 "9" * 18, "1e3", "0x10", "\u0661"]) | st.text(max_size=20)

    @settings(FUZZ, max_examples=1500)
    @given(cred=credentials, website_id=website, header_id=event_ids, query_id=event_ids,
           extra_query=st.lists(st.tuples(st.text(max_size=10), st.text(max_size=20)),
                                max_size=3),
           raw_query=st.none() | st.binary(max_size=40), cookie=st.none() | text)
    def run(cred: str, website_id: str, header_id: str | None, query_id: str | None,
            extra_query: list[tuple[str, str]], raw_query: bytes | None,
            cookie: str | None) -> None:
        params = [("website_id", website_id)] + extra_query
        if query_id is not None:
            params.append(("last_event_id", query_id))
        query = urllib.parse.urlencode(
            [(k.encode("utf-8", "surrogatepass"), v.encode("utf-8", "surrogatepass"))
             for k, v in params]).encode()
        if raw_query is not None:  # bytes as they are, percent-escaping only what HTTP forbids
            query += b"&" + urllib.parse.quote_from_bytes(raw_query, safe="=&%+").encode()
        headers = [(b"Accept", b"text/event-stream")]
        auth = {"valid": "Bearer " + target.token, "revoked": "Bearer " + target.revoked,
                "garbage": "Bearer pulse_" + "x" * 43, "basic": "Basic YWRtaW46cGFzcw==",
                "stranger": "Bearer " + target.stranger_token,
                "text": str(website_id)}.get(cred)
        if auth is not None:
            headers.append((b"Authorization", header_value(auth)))
        if cred == "cookie" or cookie is not None:
            headers.append((b"Cookie", b"pulse_session=" + header_value(cookie or "2|1:0|x")))
        if header_id is not None:
            headers.append((b"Last-Event-ID", header_value(header_id)))
        response = target.send("GET", LIVE.encode() + b"?" + query, headers, stream=True)
        assert response is not None
        if refused_by_http_layer(response, headers):
            return
        check_response(LIVE, "GET", response)
        authenticated = cred in ("valid", "stranger")
        if not authenticated:
            assert response.status == 401, (cred, response.status, response.body)
            return
        assert response.status != 401, response.body
        wellformed_id = all(v is None or re.fullmatch(r"\s*[0-9]{1,18}\s*", v)
                            or v.strip() == "" for v in (header_id, query_id))
        simple = (not extra_query and raw_query is None and header_id is None
                  and query_id is None)
        if simple and website_id == main:
            assert response.status == (200 if cred == "valid" else 403), response.body
        if simple and website_id == foreign:
            assert response.status == (403 if cred == "valid" else 200), response.body
        if response.status == 200:
            assert wellformed_id or header_id is not None
            complete = response.body.rpartition(b"\n\n")[0]  # the read stopped mid-replay
            frames = [json.loads(line[5:]) for line in complete.decode().split("\n")
                      if line.startswith("data:")]
            # ``reset`` (the connected shape) where the id is ahead of the newest event or
            # too far behind it; ``connected`` otherwise.
            assert frames and frames[0]["type"] in ("connected", "reset"), response.body[:300]
            if all(v is None or v.strip() == "" for v in (header_id, query_id)):
                assert frames[0]["type"] == "connected", response.body[:300]
            for frame in frames:
                LIVE_FRAME.validate(frame)

    run()


# -- health, metrics, the tracker script -----------------------------------------------------

def test_status_endpoints_with_any_query_and_headers(target: Target) -> None:
    """/healthz, /metrics and /js/pulse.js ignore what they do not understand."""
    header_names = st.sampled_from([b"If-None-Match", b"If-Modified-Since", b"Range",
                                    b"Accept-Encoding", b"Cookie", b"Authorization", b"Accept",
                                    b"If-Range", b"X-Forwarded-For", b"Origin", b"Connection-X"])
    header_values = st.sampled_from(["bytes=0-10", "bytes=-5", "bytes=99999-", "bytes=5-1",
                                     "bytes=a-b", "bytes=0-1,2-3", "*", '"abc"', "W/\"x\"",
                                     "Thu, 01 Jan 1970 00:00:00 GMT", "Mon, 99 Foo 2020",
                                     "gzip, br", "", "bytes=0-"]) | text

    @settings(FUZZ, max_examples=1500)
    @given(path=st.sampled_from(["/healthz", "/metrics", "/js/pulse.js"]),
           query=st.none() | st.binary(max_size=60),
           headers=st.lists(st.tuples(header_names, header_values.map(header_value)),
                            max_size=4))
    def run(path: str, query: bytes | None, headers: list[tuple[bytes, bytes]]) -> None:
        url = path.encode()
        if query is not None:
            url += b"?" + urllib.parse.quote_from_bytes(query, safe="=&%+").encode()
        response = target.send("GET", url, headers)
        assert response is not None
        if refused_by_http_layer(response, headers):
            return
        check_response(path, "GET", response)
        if path != "/js/pulse.js":
            assert response.status == 200

    run()


def test_wrong_methods_and_unknown_api_paths(target: Target) -> None:
    """Every method on every API path: 405 or 404, always the JSON error, never a 5xx."""

    @settings(FUZZ, max_examples=500)
    @given(method=st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "HEAD", "TRACE"]),
           path=st.sampled_from([TRACK, "/healthz", "/metrics", LIVE, "/web/x",
                                 "/admin/analytics/../x", "/api/event/..%2f..%2f",
                                 "/web/analytics/track/extra", "/admin/analytics/%00"]),
           body=st.binary(max_size=50))
    def run(method: str, path: str, body: bytes) -> None:
        if method == "GET" and path in ("/healthz", "/metrics", LIVE):
            return  # served: covered above
        response = target.send(method, path, [(b"Content-Type", b"application/json")], body)
        assert response is not None
        assert response.status in (404, 405), (method, path, response.status)
        if method != "HEAD":
            assert json.loads(response.body)["error"]

    run()


def test_malformed_http_is_refused_without_harm(target: Target) -> None:
    """Garbage in the request line and headers: a 4xx or a closed connection, then the server
    still answers."""

    @settings(FUZZ, max_examples=500)
    @given(line=st.sampled_from([b"POST /web/analytics/track HTTP/1.1",
                                 b"GET /admin/analytics/live?website_id=x HTTP/1.1",
                                 b"POST /web/analytics/track HTTP/9.9", b"GET", b"",
                                 b"GET /healthz HTTP/1.1 extra", b"\x00\x01\x02"])
           | st.binary(max_size=60),
           head=st.binary(max_size=200),
           length=st.sampled_from([None, b"5", b"-1", b"abc", b"99999999999999999999",
                                   b"5, 6", b"0x10"]))
    def run(line: bytes, head: bytes, length: bytes | None) -> None:
        target.requests += 1
        client = RawHTTP(target.server.port, timeout=10)
        try:
            sock = client._connect()
            data = line + b"\r\nHost: 127.0.0.1\r\n" + head.replace(b"\r\n\r\n", b"\r\n")
            if length is not None:
                data += b"\r\nContent-Length: " + length
            sock.sendall(data + b"\r\n\r\n" + b"{}")
            sock.shutdown(1)  # no more bytes: a body the server still waits for is truncated
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionError:
            answer = b""
        finally:
            client.close()
        if answer:
            status = int(answer.split(b" ", 2)[1])
            assert status < 500, answer[:300]
        health = RawHTTP(target.server.port)
        try:
            response = health.request("GET", "/healthz", [])
        finally:
            health.close()
        assert response is not None and response.status == 200

    run()


def test_the_spec_is_valid_openapi_and_names_every_public_route() -> None:
    from openapi_spec_validator import validate

    from tests.openapi_check import SPEC

    validate(SPEC)
    from backend.handlers.manage_api import manage_routes

    management = {re.sub(r"\(\[[^)]*\)", "{}", route[0]) for route in manage_routes({})}
    documented = {re.sub(r"\{[a-z_]+\}", "{}", path) for path in SPEC["paths"]}
    assert management <= documented, management - documented
    from backend.handlers.embed import embed_routes

    embeds = {re.sub(r"\(\[[^)]*\)", "{}", route[0]).replace("\\", "")
              for route in embed_routes({})}
    assert embeds <= documented, embeds - documented
    assert "/share/{slug}" in SPEC["paths"]
    issue_11 = ("/api/v1/", "/embed/", "/share/")
    assert {p for p in SPEC["paths"] if not p.startswith(issue_11)} == \
        {TRACK, LIVE, "/js/pulse.js", "/js/pulse.{version}.js", "/api/event", "/api/send",
         "/healthz", "/metrics", "/api/v2/query"}
    assert set(SPEC["paths"][TRACK]) == {"post", "options"}
