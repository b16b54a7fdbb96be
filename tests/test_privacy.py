"""Privacy on the API side: credentials are stored only as hashes; no IP address and no full
User-Agent is stored or logged anywhere, even at DEBUG."""

from __future__ import annotations

import json
import signal
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from backend.auth import create_user
from models.db import database
from models.entities import ApiToken, User, hash_token
from models.websites import create_website
from tests.conftest import sqlite_only
from tests.server_support import cli, free_port, start_server
from tests.sse_client import SSEReader

PASSWORD = "Distinctive-Passw0rd-5521"
PROXY_IP = "203.0.113.77"  # TEST-NET-3: the visitor, as a reverse proxy reports it
SOCKET_IP = "127.0.0.77"  # a loopback address of its own: the visitor's socket, no proxy
MARKER = "PrivacyProbe-7731"
PROBE_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/126.0.0.0 Safari/537.36 {MARKER}")


def files_of(data_dir: Path) -> dict[str, bytes]:
    """Every file under the data dir (the database, its -wal and -shm, the secret)."""
    return {str(p): p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}


@sqlite_only  # it scans the SQLite file and its WAL in the data dir
def test_tokens_and_passwords_are_stored_only_as_hashes(services: Any, tmp_path: Path) -> None:
    user = create_user("hashes@example.com", PASSWORD)
    record, token = ApiToken.issue(user, "probe")
    assert record.token_hash == hash_token(token)
    assert user.password_hash.startswith("$argon2id$")
    stored = b"".join(files_of(tmp_path).values())
    assert b"hashes@example.com" in stored  # the scan sees what the database holds
    assert record.token_hash.encode() in stored
    assert PASSWORD.encode() not in stored
    assert token.encode() not in stored
    assert token[len("pulse_"):].encode() not in stored
    database.obj.close()
    stored = b"".join(files_of(tmp_path).values())
    assert PASSWORD.encode() not in stored and token.encode() not in stored


def request(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"",
            source: str = "127.0.0.1", read_all: bool = True) -> bytes:
    """One HTTP/1.0 request from the ``source`` address; the raw answer (the head for streams)."""
    sock = socket.socket()
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    head = f"{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    sock.sendall(head.encode() + b"\r\n" + body)
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
            if not read_all and b"\r\n\r\n" in answer:
                break
    except TimeoutError:
        pass
    sock.close()
    return answer


@pytest.mark.slow
def test_no_ip_address_or_user_agent_is_stored_or_logged(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log_path = tmp_path / "server.log"
    cli(data_dir, "create-user", "admin@example.com", "--password-stdin",
        stdin=PASSWORD + "\n")
    website_id = cli(data_dir, "create-website", "example.com")
    token = cli(data_dir, "create-token", "admin@example.com")
    port = free_port()
    with open(log_path, "wb") as log:
        proc = start_server(data_dir, port, output=log, PULSE_TRUST_PROXY="1",
                            PULSE_LOG_LEVEL="DEBUG", PULSE_RATE_PER_IP="0.1")
    try:
        proxied = {"User-Agent": PROBE_UA, "X-Forwarded-For": f"{PROXY_IP}, 10.0.0.1",
                   "X-Real-IP": PROXY_IP, "Content-Type": "application/json",
                   "Origin": "https://example.com", "Referer": f"https://example.com/?{MARKER}"}
        direct = {k: v for k, v in proxied.items() if not k.startswith("X-")}

        def event(pathname: str, **extra: Any) -> bytes:
            return json.dumps({"website_id": website_id, "event_type": "pageview",
                               "pathname": pathname, **extra}).encode()

        answers = []
        for i in range(3):  # past the per-IP rate (a burst of one): a 202, then 429s
            answers.append(request(port, "POST", "/web/analytics/track", proxied,
                                   event(f"/privacy-probe-page/{i}")))
            answers.append(request(port, "POST", "/web/analytics/track", direct,
                                   event(f"/privacy-probe-direct/{i}"), source=SOCKET_IP))
        answers.append(request(port, "POST", "/web/analytics/track", proxied, b"{bad json"))
        answers.append(request(port, "POST", "/web/analytics/track", proxied,
                               event("no-slash")))
        answers.append(request(port, "POST", "/web/analytics/track",
                               {**proxied, "User-Agent": f"Googlebot/2.1 {MARKER}"},
                               event("/bot")))
        answers.append(request(port, "POST", "/web/analytics/track",
                               {**proxied, "Origin": "https://evil.test"}, event("/x")))
        answers.append(request(port, "OPTIONS", "/web/analytics/track", proxied))
        answers.append(request(port, "GET", f"/admin/analytics/live?website_id={website_id}",
                               proxied))
        answers.append(request(port, "GET", f"/admin/analytics/live?website_id={website_id}",
                               {**proxied, "Authorization": f"Bearer {token}"},
                               read_all=False))
        answers.append(request(port, "GET", "/healthz", proxied, source=SOCKET_IP))
        answers.append(request(port, "GET", "/nope-not-here", proxied, source=SOCKET_IP))
        answers.append(request(port, "GET", "/", proxied, source=SOCKET_IP))
        # Not HTTP at all, and a body cut short: Tornado's own log lines name the peer.
        answers.append(request(port, "GET /\x01 HTTP/1.1", "", {}, source=SOCKET_IP))
        answers.append(request(port, "POST", "/web/analytics/track",
                               {**direct, "Content-Length": "x"}, b"{}", source=SOCKET_IP))
        statuses = [a.split(b" ", 2)[1] for a in answers if a.startswith(b"HTTP/")]
        assert b"202" in statuses and b"429" in statuses and b"401" in statuses
        assert b"200" in statuses and b"400" in statuses
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            assert PROXY_IP.encode() not in page.read()
        running = files_of(data_dir)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    stopped = files_of(data_dir)
    logged = log_path.read_bytes()
    assert b"/privacy-probe-page/0" in b"".join(running.values())  # what was scanned is real
    assert b"202 POST /web/analytics/track" in logged  # DEBUG access lines were written
    for name, content in [*running.items(), *stopped.items(), ("server log", logged)]:
        for secret in (PROXY_IP, SOCKET_IP, MARKER, PROBE_UA[:60]):
            assert secret.encode() not in content, f"{secret!r} found in {name}"


async def live_status(http_client: Any, base_url: str, website_id: str,
                      headers: dict[str, str]) -> int:
    response = await http_client.fetch(
        f"{base_url}/admin/analytics/live?website_id={website_id}", headers=headers,
        raise_error=False, request_timeout=10)
    return response.code


@pytest.mark.gen_test
async def test_the_live_stream_shows_nobody_what_is_not_theirs(http_client: Any, base_url: str,
                                                                website: Any, token: str) -> None:
    """Forged cookies, tokens of removed users, tokens revoked after use, other users'
    websites: all refused before a single frame."""
    assert await live_status(http_client, base_url, "nope", {}) == 401
    for cookie in ("session=forged", "session=" + "A" * 4000, "pulse_session=1|2|3",
                   "session=eyJhIjoxfQ==.Zm9v.YmFy"):
        assert await live_status(http_client, base_url, website.id, {"Cookie": cookie}) == 401
    for header in (f"Bearer {token}x", f"Bearer {token[:-1]}", f"bearer{token}",
                   f"Token {token}", "Bearer " + "x" * 300, "Bearer "):
        assert await live_status(http_client, base_url, website.id,
                                 {"Authorization": header}) == 401
    stranger = create_user("stranger@example.com", "another password")
    record, stranger_token = ApiToken.issue(stranger)
    own = create_website("stranger.example.org", owner=stranger)
    as_stranger = {"Authorization": f"Bearer {stranger_token}"}
    assert await live_status(http_client, base_url, website.id, as_stranger) == 403
    # The stranger's own website is theirs (a short-lived stream: its head says 200).
    reader = SSEReader(f"{base_url}/admin/analytics/live?website_id={own.id}",
                       as_stranger).start()
    try:
        await reader.wait_for(lambda r: r.of_type("connected"))
        assert reader.status == 200
    finally:
        reader.close()
    record.revoke()
    assert await live_status(http_client, base_url, own.id, as_stranger) == 401
    _, gone_token = ApiToken.issue(stranger)
    User.delete().where(User.id == stranger.id).execute()
    assert await live_status(http_client, base_url, own.id,
                             {"Authorization": f"Bearer {gone_token}"}) == 401
