"""A small SSE reader for tests: parses frames from a streaming Tornado fetch."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tornado.iostream import IOStream, StreamClosedError
from tornado.tcpclient import TCPClient


@dataclass
class Frame:
    """One parsed SSE frame."""

    id: int | None = None
    data: Any = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def type(self) -> str | None:
        return self.data.get("type") if isinstance(self.data, dict) else None


def parse_frames(text: str) -> list[Frame]:
    """Parse complete SSE frames (separated by blank lines)."""
    frames = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        frame = Frame()
        data_lines = []
        for line in block.split("\n"):
            if line.startswith(":"):
                frame.comments.append(line[1:].strip())
            elif line.startswith("id:"):
                frame.id = int(line[3:].strip())
            elif line.startswith("retry:"):
                frame.retry = int(line[6:].strip())
            elif line.startswith("data:"):
                data_lines.append(line[5:].lstrip(" "))
        if data_lines:
            frame.data = json.loads("\n".join(data_lines))
        frames.append(frame)
    return frames


class SSEReader:
    """Follows one SSE stream in the background over a raw HTTP/1.0 connection (no chunking,
    and closing it really closes the socket) and collects its frames."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.frames: list[Frame] = []
        self.status: int | None = None
        self.response_headers: dict[str, str] = {}
        self._buffer = ""
        self._stream: IOStream | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> SSEReader:
        self.task = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        parts = urlsplit(self.url)
        self._stream = await TCPClient().connect(parts.hostname or "127.0.0.1", parts.port or 80)
        target = parts.path + ("?" + parts.query if parts.query else "")
        head = f"GET {target} HTTP/1.0\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        await self._stream.write((head + "\r\n").encode())
        raw_head = await self._stream.read_until(b"\r\n\r\n", max_bytes=65536)
        lines = raw_head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            if ":" in line:
                key, _, value = line.partition(":")
                self.response_headers[key.strip().lower()] = value.strip()
        try:
            while True:
                chunk = await self._stream.read_bytes(65536, partial=True)
                self._on_chunk(chunk)
        except StreamClosedError:
            pass

    def _on_chunk(self, chunk: bytes) -> None:
        self._buffer += chunk.decode()
        complete, sep, rest = self._buffer.rpartition("\n\n")
        if sep:
            self.frames.extend(parse_frames(complete + sep))
            self._buffer = rest

    def of_type(self, kind: str) -> list[Frame]:
        return [f for f in self.frames if f.type == kind]

    @property
    def ended(self) -> bool:
        return self.task is not None and self.task.done()

    async def wait_for(self, predicate: Callable[[SSEReader], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; frames so far: {self.frames!r}")
            if self.ended:
                if self.task is not None and self.task.exception() is not None:
                    raise AssertionError("stream failed") from self.task.exception()
                raise AssertionError(f"stream ended; frames so far: {self.frames!r}")
            await asyncio.sleep(0.01)

    async def wait_ended(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ended:
            if time.monotonic() > deadline:
                raise AssertionError("the stream did not end")
            await asyncio.sleep(0.01)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        if self.task is not None and not self.task.done():
            self.task.cancel()
