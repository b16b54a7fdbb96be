"""Shared helpers for end-to-end tests: a real Pulse server in a subprocess, the ``pulse`` CLI on
the same data directory, a static site on loopback, and headless Chromium through Playwright.

Typical use::

    data_dir = tmp_path / "data"
    pulse_cli(data_dir, "create-user", "a@example.com", "--password-stdin", stdin="pw123456\\n")
    with PulseProcess(data_dir) as pulse:           # `pulse serve` on a free loopback port
        ...pulse.base_url...                         # e.g. http://127.0.0.1:43817

    require_browser()                                # skip (or fail in CI) without Chromium
    async with chromium() as browser:                # Playwright's async API
        page = await browser.new_page(user_agent=BROWSER_UA)

Headless Chromium announces itself as ``HeadlessChrome``, which Pulse drops as a bot: pages that
must be tracked need a context or page opened with ``user_agent=BROWSER_UA``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
BROWSER_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0.0.0 Safari/537.36")
LISTENING = re.compile(r"Pulse listening on http://[^\s:]+:(\d+)")


def require_browser() -> None:
    """Skip the test when Chromium or Playwright is missing; fail instead when
    ``PULSE_REQUIRE_BROWSER=1`` (CI), so browser tests cannot silently stop running."""
    missing = ""
    if not os.path.exists(CHROMIUM):
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is missing (pip install -e '.[test]')"
    if missing:
        if os.environ.get("PULSE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests are required here but {missing}")
        pytest.skip(missing)


def launch_options() -> dict[str, Any]:
    """Keyword arguments for ``playwright.chromium.launch`` (sync or async API)."""
    return {"executable_path": CHROMIUM, "headless": True, "args": list(CHROMIUM_ARGS)}


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium browser (Playwright async API), closed afterwards."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(**launch_options())
        try:
            yield browser
        finally:
            await browser.close()


def pulse_cli(data_dir: Path, *args: str, stdin: str = "",
              env: dict[str, str] | None = None) -> str:
    """Run ``python app.py ARGS`` on ``data_dir``; return its standard output, stripped."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args], input=stdin, capture_output=True,
        text=True, cwd=ROOT, timeout=120, env={**_base_env(data_dir), **(env or {})})
    if result.returncode != 0:
        raise AssertionError(f"pulse {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


def _base_env(data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PULSE_")}
    env.update(PULSE_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    return env


class PulseProcess:
    """``pulse COMMAND`` (``serve`` by default) in a subprocess on a free loopback port.

    The server binds port 0 and the helper reads the port from its log line, so there is no
    race for the port. Its log (stderr) and output (stdout) are collected in ``log`` and
    ``output``; ``stop()`` sends SIGTERM and waits for the orderly shutdown.
    """

    def __init__(self, data_dir: Path, command: Sequence[str] = ("serve",),
                 env: dict[str, str] | None = None, argv: Sequence[str] | None = None,
                 cwd: Path | None = None, start_timeout: float = 90.0) -> None:
        self.data_dir = data_dir
        self.argv = list(argv) if argv is not None else [sys.executable, str(ROOT / "app.py")]
        self.command = [*command, "--host", "127.0.0.1", "--port", "0"]
        self.env = {**_base_env(data_dir), "PULSE_LOG_LEVEL": "INFO", **(env or {})}
        self.cwd = cwd or ROOT
        self.start_timeout = start_timeout
        self.port = 0
        self.log: list[str] = []
        self.output: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._lines = threading.Condition()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PulseProcess:
        """Start the server and wait until it listens and ``/healthz`` answers 200."""
        self.process = subprocess.Popen(
            [*self.argv, *self.command], cwd=self.cwd, env=self.env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        for stream, sink in ((self.process.stderr, self.log), (self.process.stdout, self.output)):
            threading.Thread(target=self._collect, args=(stream, sink), daemon=True).start()
        line = self.wait_for_line(LISTENING, self.start_timeout, in_log=True)
        match = LISTENING.search(line)
        assert match is not None
        self.port = int(match.group(1))
        status, body = http_get(self.base_url + "/healthz")
        if status != 200:
            raise AssertionError(f"/healthz answered {status}: {body}")
        return self

    def _collect(self, stream: Any, sink: list[str]) -> None:
        for line in stream:
            with self._lines:
                sink.append(line.rstrip("\n"))
                self._lines.notify_all()
        with self._lines:
            self._lines.notify_all()

    def wait_for_line(self, pattern: re.Pattern[str] | str, timeout: float = 30.0,
                      *, in_log: bool = False) -> str:
        """The first line of the output (or log) matching ``pattern``, waiting for it."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        sink = self.log if in_log else self.output
        deadline = time.monotonic() + timeout
        with self._lines:
            while True:
                for line in sink:
                    if regex.search(line):
                        return line
                exited = self.process is not None and self.process.poll() is not None
                left = deadline - time.monotonic()
                if left <= 0 or exited:
                    if exited:  # let the collectors finish reading what it wrote
                        self._lines.wait(0.2)
                        for line in sink:
                            if regex.search(line):
                                return line
                    raise AssertionError(
                        f"no line matching {regex.pattern!r} "
                        f"({'exited' if exited else 'timed out'}); log:\n" + "\n".join(self.log)
                        + "\noutput:\n" + "\n".join(self.output))
                self._lines.wait(min(left, 0.5))

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit; return the exit status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def __enter__(self) -> PulseProcess:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_get(url: str, headers: dict[str, str] | None = None,
             timeout: float = 30.0) -> tuple[int, str]:
    """(status, body) of a GET; HTTP errors are answers too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Keep test output clean."""


class StaticSite:
    """Serves a directory over HTTP on a free loopback port, in a background thread."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> StaticSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def static_site(directory: Path) -> Iterator[StaticSite]:
    """``with static_site(path) as site:`` — ``site.origin`` serves ``path``."""
    with StaticSite(directory) as site:
        yield site
