"""The API's limits, each configurable: body and header size, field lengths, events per second
per IP and per website, concurrent live streams per user."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backend.auth import create_user
from backend.settings import Settings
from models.entities import ApiToken, Event, User, Website
from models.websites import create_website
from tests.conftest import BROWSER_UA
from tests.openapi_check import check_response
from tests.server_support import RawHTTP, Response, ThreadedServer

TRACK = "/web/analytics/track"
LIVE = "/admin/analytics/live"


@pytest.fixture
def serve(tmp_path: Any) -> Iterator[Callable[..., ThreadedServer]]:
    """Start a real server (the HTTPServer limits of ``pulse serve``) with settings overrides."""
    servers: list[ThreadedServer] = []

    def start(**overrides: Any) -> ThreadedServer:
        values = {"data_dir": tmp_path, "host": "127.0.0.1", "port": 0,
                  "secret": "limits-" + "s" * 30, "rate_per_ip": 0, "rate_per_website": 0,
                  "trust_proxy": True, **overrides}
        server = ThreadedServer(Settings(**values))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def setup_site(server: ThreadedServer) -> tuple[User, Website]:
    admin = create_user("admin@example.com", "correct horse battery", is_admin=True)
    return admin, create_website("example.com")


def track(client: RawHTTP, body: bytes, ip: str = "203.0.113.10",
          content_type: bytes = b"application/json") -> Response:
    response = client.request("POST", TRACK, [(b"Content-Type", content_type),
                                              (b"User-Agent", BROWSER_UA.encode()),
                                              (b"X-Forwarded-For", ip.encode())], body)
    assert response is not None
    check_response(TRACK, "POST", response)
    return response


def event(website_id: str, **fields: Any) -> bytes:
    return json.dumps({"website_id": website_id, "event_type": "pageview", "pathname": "/",
                       **fields}).encode()


def healthy(port: int) -> bool:
    client = RawHTTP(port)
    try:
        response = client.request("GET", "/healthz", [])
        return response is not None and response.status == 200
    finally:
        client.close()


# -- sizes -----------------------------------------------------------------------------------

def send_raw(port: int, *chunks: bytes) -> bytes:
    """Send ``chunks`` on a fresh connection and return the first bytes of the answer, or b''
    when the server closed the connection instead of answering."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        for chunk in chunks:
            raw.sendall(chunk)
        return raw.recv(65536)
    except ConnectionError:
        return b""
    finally:
        raw.close()


def test_body_size_limit_is_configurable(serve: Any) -> None:
    server = serve(max_body_bytes=1000)
    _, site = setup_site(server)
    server.start()
    client = RawHTTP(server.port)
    base = event(site.id, pad="")  # unknown fields are ignored: they only add bytes
    padded = event(site.id, pad="x" * (1000 - len(base)))
    assert len(padded) == 1000
    assert track(client, padded).status == 202
    too_big = event(site.id, pad="x" * (1001 - len(base)))
    response = track(client, too_big)
    assert response.status == 413
    assert json.loads(response.body) == {"error": "body is larger than 1000 bytes"}
    assert Event.select().count() == 1


def test_default_body_limit_and_a_body_past_the_transport_limit(serve: Any) -> None:
    server = serve()
    _, site = setup_site(server)
    server.start()
    client = RawHTTP(server.port)
    response = track(client, event(site.id, pad="x" * 17_000))
    assert response.status == 413 and "16384" in json.loads(response.body)["error"]
    # Past 1 MiB the HTTP layer refuses to read the body at all: the connection is closed.
    huge = b'{"pad": "' + b"x" * (1_048_576 + 10) + b'"}'
    answer = send_raw(server.port,
                      b"POST /web/analytics/track HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length: " + str(len(huge)).encode()
                      + b"\r\n\r\n", huge)
    assert answer == b"" or answer.split(b" ")[1].startswith(b"4")
    assert healthy(server.port)
    assert Event.select().count() == 0


def answer_of(raw: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    """(status, headers, JSON body) of a whole HTTP answer read off a raw socket."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in headers.items()}, \
        json.loads(body)


def send_and_read_all(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        raw.sendall(data)
        received = b""
        while chunk := raw.recv(65536):
            received += chunk
        return received
    finally:
        raw.close()


@pytest.mark.parametrize("header", [b"User-Agent: " + b"M" * 20_000,
                                    b"X-Forwarded-For: " + b"203.0.113.7, " * 1_300,
                                    b"X-Big: " + b"a" * 70_000,
                                    b"X-Big: " + b"a" * 1_000_000])
def test_headers_past_16_kib_get_431_with_a_json_error(serve: Any, header: bytes) -> None:
    server = serve()
    _, site = setup_site(server)
    server.start()
    body = event(site.id)
    raw = send_and_read_all(server.port, b"POST /web/analytics/track HTTP/1.1\r\nHost: x\r\n"
                            + header + b"\r\nContent-Type: application/json\r\n"
                            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    status, headers, error = answer_of(raw)  # the whole answer, then the server closed
    assert status == 431
    assert headers["content-type"].startswith("application/json")
    assert headers["connection"] == "close"
    assert error == {"error": "the request headers are larger than 16384 bytes"}
    assert Event.select().count() == 0
    assert healthy(server.port)


def test_a_request_line_past_8_kib_gets_414_with_a_json_error(serve: Any) -> None:
    server = serve()
    server.start()
    raw = send_and_read_all(server.port, b"GET /healthz?" + b"q" * 9_000
                            + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, error = answer_of(raw)
    assert status == 414
    assert error == {"error": "the request line is longer than 8192 bytes"}
    # Just under the limit is an ordinary request.
    raw = send_and_read_all(server.port, b"GET /healthz?" + b"q" * 8_000
                            + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer_of(raw)[0] == 200


def test_headers_past_the_read_cap_close_the_connection_without_harm(serve: Any) -> None:
    server = serve()
    server.start()
    answer = send_raw(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
                      + b"a" * 1_100_000 + b"\r\n\r\n")
    # Past 1 MiB (as for bodies) Tornado stops reading: closed, or a 4xx, never a 5xx.
    assert answer == b"" or answer.split(b" ")[1].startswith(b"4"), answer[:200]
    assert healthy(server.port)


def test_headers_just_under_the_limit_are_fine(serve: Any) -> None:
    server = serve()
    _, site = setup_site(server)
    server.start()
    # Headers just under the limit are fine.
    client = RawHTTP(server.port)
    response = client.request("POST", TRACK, [(b"Content-Type", b"application/json"),
                                              (b"User-Agent", BROWSER_UA.encode()),
                                              (b"X-Padding", b"p" * 15_000)], event(site.id))
    assert response is not None and response.status == 202


@pytest.mark.parametrize(("field", "limit", "filler"), [
    ("pathname", 2048, "/"), ("event_type", 64, "e"), ("visitor_id", 64, "v"),
    ("session_id", 64, "s"), ("referrer", 2048, "r"), ("hostname", 253, "h"),
    ("title", 500, "t"),
])
def test_field_length_limits(serve: Any, field: str, limit: int, filler: str) -> None:
    server = serve()
    _, site = setup_site(server)
    server.start()
    client = RawHTTP(server.port)
    assert track(client, event(site.id, **{field: filler * limit})).status == 202
    response = track(client, event(site.id, **{field: filler * (limit + 1)}))
    assert response.status == 400
    assert json.loads(response.body)["error"] == f"{field}: is longer than {limit} characters"


def test_props_limits(serve: Any) -> None:
    server = serve()
    _, site = setup_site(server)
    server.start()
    client = RawHTTP(server.port)
    ok = {"props": {f"k{i}": "v" * 500 for i in range(30)}}
    assert track(client, event(site.id, **ok)).status == 202
    for props in ({f"k{i}": 1 for i in range(31)}, {"k" * 65: 1}, {"k": "v" * 501}):
        assert track(client, event(site.id, props=props)).status == 400


# -- rates -----------------------------------------------------------------------------------

def test_events_per_ip_are_limited_with_retry_after(serve: Any) -> None:
    # 0.01 events/s: a burst of one, then the next token is 100 s away (no timing in the test).
    server = serve(rate_per_ip=0.01)
    _, site = setup_site(server)
    server.start()
    client = RawHTTP(server.port)
    assert track(client, event(site.id), ip="203.0.113.10").status == 202
    limited = track(client, event(site.id), ip="203.0.113.10")
    assert limited.status == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 101
    assert json.loads(limited.body)["error"] == "too many events, slow down"
    assert track(client, event(site.id), ip="203.0.113.11").status == 202  # another visitor
    assert Event.select().count() == 2


def test_events_per_website_are_limited_with_retry_after(serve: Any) -> None:
    server = serve(rate_per_website=0.01)
    _, site = setup_site(server)
    other = create_website("other.org")
    server.start()
    client = RawHTTP(server.port)
    assert track(client, event(site.id), ip="203.0.113.10").status == 202
    limited = track(client, event(site.id), ip="203.0.113.99")  # a new IP does not help
    assert limited.status == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert track(client, event(other.id), ip="203.0.113.10").status == 202  # another website
    assert Event.select().count() == 2


def test_rate_limits_default_on_and_zero_turns_them_off() -> None:
    defaults = Settings()
    assert defaults.rate_per_ip > 0 and defaults.rate_per_website > 0
    assert defaults.max_body_bytes == 16_384 and defaults.sse_max_per_user > 0
    env = Settings.from_env({"PULSE_RATE_PER_IP": "0", "PULSE_MAX_BODY_BYTES": "2048",
                             "PULSE_SSE_MAX_PER_USER": "3", "PULSE_RATE_PER_WEBSITE": "7.5"})
    assert (env.rate_per_ip, env.max_body_bytes, env.sse_max_per_user,
            env.rate_per_website) == (0, 2048, 3, 7.5)


# -- live streams ----------------------------------------------------------------------------

def open_stream(port: int, token: str, website_id: str) -> tuple[socket.socket, bytes]:
    """Open a live stream on a raw socket; return it with what arrived up to ``connected``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET {LIVE}?website_id={website_id} HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {token}\r\n\r\n".encode())
    data = b""
    while b'"type":"connected"' not in data and b"\r\n\r\n{" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return sock, data


def test_live_streams_per_user_are_limited(serve: Any) -> None:
    server = serve(sse_max_per_user=2)
    other = create_user("viewer@example.com", "another password", is_admin=True)
    admin, site = setup_site(server)
    token = ApiToken.issue(admin)[1]
    other_token = ApiToken.issue(other)[1]
    server.start()
    first, head = open_stream(server.port, token, site.id)
    second, _ = open_stream(server.port, token, site.id)
    assert head.startswith(b"HTTP/1.1 200")
    client = RawHTTP(server.port)
    refused = client.request("GET", f"{LIVE}?website_id={site.id}",
                             [(b"Authorization", f"Bearer {token}".encode())])
    assert refused is not None and refused.status == 429
    check_response(LIVE, "GET", refused)
    assert int(refused.headers["retry-after"]) >= 1
    third, head = open_stream(server.port, other_token, site.id)  # someone else: not limited
    assert head.startswith(b"HTTP/1.1 200")
    first.close()
    deadline = time.monotonic() + 10  # the server notices the closed stream and frees its slot
    while server.call(server.services.streams.count_for_user, admin.id) > 1:
        assert time.monotonic() < deadline, "the closed stream was never released"
        time.sleep(0.05)
    again, head = open_stream(server.port, token, site.id)
    assert head.startswith(b"HTTP/1.1 200")
    for sock in (second, third, again):
        sock.close()
