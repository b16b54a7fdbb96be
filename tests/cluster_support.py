"""A Pulse cluster for tests: real ``app.py serve`` processes on one PostgreSQL database and one
Redis key prefix, each on a port it chose itself (``PULSE_PORT=0``, read back from its log),
and an SSE follower that records every frame."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import BROWSER_UA
from tests.real_services import RedisTarget

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(rb"listening on http://[0-9.]+:([0-9]+)")


@dataclass
class Node:
    """One running ``pulse serve``."""

    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Cluster:
    """Pulse instances sharing a database and a bus."""

    tmp_path: Path
    database_url: str
    redis: RedisTarget | None
    env: dict[str, str] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    website_id: str = ""
    token: str = ""

    def environ(self, **extra: str) -> dict[str, str]:
        environ = {**os.environ, "PULSE_DATA_DIR": str(self.tmp_path / "data"),
                   "PULSE_DATABASE_URL": self.database_url, "PULSE_HOST": "127.0.0.1",
                   "PULSE_SECRET": "cluster-test-secret-" + "x" * 24, "PULSE_RATE_PER_IP": "0",
                   "PULSE_RATE_PER_WEBSITE": "0", **self.env, **extra}
        if self.redis is not None:
            environ |= {"PULSE_REDIS_URL": self.redis.url, "PULSE_REDIS_PREFIX": self.redis.prefix}
        return environ

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """Run one ``app.py`` command against the cluster's database."""
        return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT,
                              check=True, capture_output=True, text=True, input=stdin,
                              env=self.environ()).stdout.strip()

    def setup(self) -> Cluster:
        """An admin, a website and an API token."""
        self.cli("create-user", "admin@example.com", "--password-stdin",
                 stdin="correct horse battery\n")
        self.website_id = self.cli("create-website", "example.com")
        self.token = self.cli("create-token", "admin@example.com")
        return self

    def start(self, *args: str, **extra: str) -> Node:
        """Start one more instance (``serve`` with ``args``) and wait until it answers."""
        index = len(self.nodes)
        log = self.tmp_path / f"node{index}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "serve", *args],
                                    cwd=ROOT, env=self.environ(PULSE_PORT="0", **extra),
                                    stdout=out, stderr=subprocess.STDOUT)
        node = Node(proc, log)
        self.nodes.append(node)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = LISTENING.search(log.read_bytes())
            if found:
                node.port = int(found.group(1))
                try:
                    with urllib.request.urlopen(node.url + "/healthz", timeout=2):
                        return node
                except OSError:
                    pass
            if proc.poll() is not None:
                raise AssertionError(f"instance {index} died:\n{node.output()}")
            time.sleep(0.1)
        raise AssertionError(f"instance {index} did not start:\n{node.output()}")

    def stop(self) -> None:
        """Stop every instance (SIGTERM, then SIGKILL for one that hangs)."""
        for node in self.nodes:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            try:
                node.proc.wait(20)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(5)

    def live_url(self, node: Node) -> str:
        return f"{node.url}/admin/analytics/live?website_id={self.website_id}"


@dataclass
class Follower:
    """Follows one SSE stream and keeps its frames: (type, id, data)."""

    url: str
    token: str
    last_event_id: int | None = None
    frames: list[tuple[str, int | None, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self, session: aiohttp.ClientSession) -> Follower:
        self.task = asyncio.create_task(self._run(session))
        return self

    async def _run(self, session: aiohttp.ClientSession) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        async with session.get(self.url, headers=headers,
                               timeout=aiohttp.ClientTimeout(total=None)) as response:
            assert response.status == 200, await response.text()
            event_id: int | None = None
            async for line in response.content:
                if line.startswith(b"id: "):
                    event_id = int(line[4:])
                elif line.startswith(b"data: "):
                    data = json.loads(line[6:])
                    self.frames.append((data["type"], event_id, data["data"]))
                    event_id = None

    @property
    def ids(self) -> list[int]:
        return [i for kind, i, _ in self.frames if kind == "new_event" and i is not None]

    @property
    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.frames if kind != "stats"]

    async def wait_for(self, condition: Any, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if self.task is not None and self.task.done():
                self.task.result()
                raise AssertionError(f"the stream ended; got {self.kinds[:5]}…")
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting; {len(self.ids)} events: "
                                     f"{self.ids[:5]}…{self.ids[-5:]}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def post(session: aiohttp.ClientSession, node: Node, website_id: str,
               pathname: str) -> int | None:
    """Track one pageview on ``node``; the event's sequence number, or None if not accepted."""
    body = {"website_id": website_id, "event_type": "pageview", "pathname": pathname,
            "visitor_id": "v-" + pathname.strip("/").replace("/", "-")[:40], "session_id": "s1"}
    try:
        async with session.post(node.url + "/web/analytics/track", json=body,
                                headers={"User-Agent": BROWSER_UA}) as response:
            if response.status != 202:
                return None
            return int((await response.json())["id"])
    except (TimeoutError, aiohttp.ClientError):
        return None


def stored(database_url: str, website_id: str) -> list[tuple[int, str]]:
    """(seq, pathname) of the website's events in PostgreSQL, in sequence order."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute('SELECT "seq", "pathname" FROM "event" WHERE "website_id" = %s '
                            'ORDER BY "seq"', (website_id,)).fetchall()
    return [(int(seq), str(pathname)) for seq, pathname in rows]
