"""Real servers for tests: a ``pulse serve`` subprocess, or a PulseServer on a background thread,
plus a raw HTTP/1.1 client that sends exactly the bytes it is given."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data_dir: Path, port: int, output: IO[bytes] | int | None = subprocess.PIPE,
                 **env: str) -> subprocess.Popen[bytes]:
    """Start ``app.py serve`` on ``port`` and wait until /healthz answers; rate limits off unless
    ``env`` sets them. The server's output goes to ``output`` (a pipe by default)."""
    environ = {**os.environ, "PULSE_DATA_DIR": str(data_dir), "PULSE_PORT": str(port),
               "PULSE_HOST": "127.0.0.1", "PULSE_RATE_PER_IP": "0",
               "PULSE_RATE_PER_WEBSITE": "0", **env}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "serve"], env=environ,
                            cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                text = proc.stdout.read().decode() if proc.stdout else "died"
                raise AssertionError(text) from None
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server did not start")


def cli(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    """Run one ``app.py`` command on ``data_dir`` and return what it printed."""
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT, check=True,
                          capture_output=True, text=True, input=stdin,
                          env={**os.environ, "PULSE_DATA_DIR": str(data_dir)}).stdout.strip()


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class ThreadedServer:
    """A real PulseServer (the API only, no panel) with its own event loop on a thread."""

    def __init__(self, settings: Any) -> None:
        from backend.server import PulseServer

        self.server = PulseServer(settings)  # opens the database on this thread
        self.services = self.server.services
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pulse-test-server", daemon=True)

    @property
    def port(self) -> int:
        return self.server.port

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.start()
            self._ready.set()
            await self.server.wait()

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by start() and stop()
            self._error = exc
            self._ready.set()

    def start(self) -> ThreadedServer:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def call(self, func: Any, *args: Any) -> Any:
        """Run ``func(*args)`` on the server's loop and return its result."""
        assert self.loop is not None
        async def run() -> Any:
            return func(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.server.request_stop)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the server thread did not stop"
        if self._error is not None:
            raise self._error


@dataclass
class Response:
    """One raw HTTP response."""

    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class RawHTTP:
    """A keep-alive HTTP/1.1 client over one socket that sends requests byte for byte."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._buffer = b""
        self.reconnects = 0

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buffer = b""
            self.reconnects += 1
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, method: str, target: str | bytes, headers: list[tuple[bytes, bytes]],
                body: bytes = b"") -> Response | None:
        """Send one request; the response, or None when the server closed the connection
        without one (which it may do for a malformed request)."""
        if isinstance(target, str):
            target = target.encode()
        head = method.encode() + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        if body or method in ("POST", "PUT"):
            head += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        data = head + b"\r\n" + body
        for attempt in range(2):
            sock = self._connect()
            try:
                sock.sendall(data)
                response = self._read_response(method)
            except (ConnectionError, BrokenPipeError):
                response = None
            if response is None:
                self.close()
                if attempt == 0 and self._buffer == b"":
                    continue  # a kept-alive connection the server had closed: retry once
                return None
            if self.sock is not None and \
                    response.headers.get("connection", "").lower() == "close":
                self.close()
            return response
        return None

    def _read_more(self) -> bool:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self._buffer += chunk
        return True

    def _read_response(self, method: str) -> Response | None:
        while b"\r\n\r\n" not in self._buffer:
            if not self._read_more():
                return None
        raw_head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        _, status, *reason = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if method == "HEAD" or status in ("204", "304"):
            length = 0
        if headers.get("content-type", "").startswith("text/event-stream"):
            # An endless stream: read its first frames, up to ``connected`` (or ``reset``, its
            # form for a Last-Event-ID the server cannot honour), then hang up.
            deadline = time.monotonic() + self.timeout  # heartbeats alone never end the read
            while not re.search(rb'"type":"(?:connected|reset)".*?\n\n', self._buffer, re.S):
                if time.monotonic() > deadline or not self._read_more():
                    break
            body = self._buffer
            self.close()
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            while len(self._buffer) < length:
                if not self._read_more():
                    return None
            body, self._buffer = self._buffer[:length], self._buffer[length:]
        return Response(int(status), reason[0] if reason else "", headers, body)

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self._buffer:
                if not self._read_more():
                    raise ConnectionError("closed inside a chunked body")
            size_line, _, self._buffer = self._buffer.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(self._buffer) < size + 2:
                if not self._read_more():
                    raise ConnectionError("closed inside a chunk")
            body += self._buffer[:size]
            self._buffer = self._buffer[size + 2:]
            if size == 0:
                return body


async def wait_pending(session: Any, port: int, count: int, tries: int) -> None:
    """Poll /healthz (aiohttp ``session``) until ``count`` events wait in the writer, at most
    ``tries`` times, 10 ms apart; fail (saying what it saw) if they never do."""
    seen = None
    for _ in range(tries):
        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
            seen = (await response.json())["pending_events"]
            if seen == count:
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} events never waited in the writer (last seen: {seen})")
