"""Thousands of SSE subscribers from one process, cheap enough not to be the bottleneck.

A raw asyncio protocol per stream (uvloop when installed): it sends a plain HTTP/1.1 GET and
reads the response as bytes. With ``pattern`` set it finds every message's SSE id and send time
(``"st":MICROSECONDS`` in its props, monotonic clock) in the complete frames received, and
records post→receive latency and order (ids increasing) per stream. Chunked transfer framing
sits between frames, never inside one, so the frames can be matched without de-chunking.

Run as a script it holds ``--streams`` subscribers for ``--seconds`` and prints a JSON summary
(used by B1, whose subscribers only need to drain what they are sent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpus, machine_facts, raise_nofile  # noqa: E402

PULSE_PATTERN = re.compile(
    rb'^id: ([\d:]+)\ndata: \{"type":"new_event"[^\n]*?"sq":(\d+),"st":(\d+)', re.M)
PLAIN_PATTERN = re.compile(rb'^id: ([\d:]+)\ndata: [^\n]*?"sq":(\d+),"st":(\d+)', re.M)
# What the subscribers that only count look for: one occurrence per message.
PULSE_NEEDLE = b'\ndata: {"type":"new_event"'
PLAIN_NEEDLE = b'"sq":'



def now_us() -> int:
    """The monotonic clock in µs (system-wide, so comparable across processes)."""
    return time.monotonic_ns() // 1000


@dataclass
class Totals:
    """What all streams of one run saw."""

    connected: int = 0
    refused: int = 0
    closed: int = 0
    messages: int = 0
    bytes: int = 0
    out_of_order: int = 0
    latencies_us: array = field(default_factory=lambda: array("q"))


class SubscriberProtocol(asyncio.Protocol):
    """One SSE subscriber."""

    def __init__(self, request: bytes, totals: Totals, pattern: re.Pattern[bytes] | None,
                 ready: asyncio.Future[None] | None = None, needle: bytes | None = None) -> None:
        self.request = request
        self.totals = totals
        self.pattern = pattern
        self.needle = needle
        self.ready = ready
        self.buffer = b""
        self.headers_done = False
        self.status = 0
        self.last_id: tuple[int, ...] = ()
        self.count = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the GET."""
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        """Count bytes; match complete frames for sequence numbers and send times."""
        now = now_us()
        totals = self.totals
        totals.bytes += len(data)
        if not self.headers_done:
            self.buffer += data
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.status = int(self.buffer[9:12])
            data, self.buffer = self.buffer[end + 4:], b""
            self.headers_done = True
            if self.status == 200:
                totals.connected += 1
            else:
                totals.refused += 1
            if self.ready is not None and not self.ready.done():
                self.ready.set_result(None)
        if self.pattern is None and self.needle is None:
            return
        buf = self.buffer + data if self.buffer else data
        end = buf.rfind(b"\n\n")
        if end < 0:
            self.buffer = buf
            return
        self.buffer = buf[end + 2:]
        if self.pattern is None:  # count only
            count = buf.count(self.needle, 0, end + 1)  # type: ignore[arg-type]
            self.count += count
            totals.messages += count
            return
        latencies = totals.latencies_us
        last = self.last_id
        count = 0
        for match in self.pattern.finditer(buf, 0, end + 1):
            event_id = tuple(map(int, match[1].split(b":")))
            latencies.append(now - int(match[3]))
            if event_id <= last:
                totals.out_of_order += 1
            last = event_id
            count += 1
        self.count += count
        totals.messages += count
        self.last_id = last

    def connection_lost(self, exc: Exception | None) -> None:
        """Count closed streams."""
        self.totals.closed += 1
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(None)

    def close(self) -> None:
        """Hang up."""
        if self.transport is not None:
            self.transport.close()


def build_request(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    """The raw GET request of a subscriber."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream",
             "Cache-Control: no-cache"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_streams(host: str, port: int, path: str, count: int, *,
                       headers: dict[str, str] | None = None,
                       pattern: re.Pattern[bytes] | None = None, totals: Totals | None = None,
                       concurrency: int = 200, timeout: float = 60.0,
                       needle: bytes | None = None, sample: int | None = None,
                       ) -> tuple[list[SubscriberProtocol], Totals]:
    """Open ``count`` subscribers (``concurrency`` at a time) and wait for their headers.

    With ``sample`` set, only that many match ``pattern`` (ids, order, latency); the others
    count ``needle`` occurrences, which is all a delivery count needs and much cheaper.
    """
    loop = asyncio.get_running_loop()
    totals = totals or Totals()
    request = build_request(host, port, path, headers or {})
    streams: list[SubscriberProtocol] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            ready: asyncio.Future[None] = loop.create_future()
            full = sample is None or i < sample
            protocol = SubscriberProtocol(request, totals, pattern if full else None, ready,
                                          None if full else needle)
            streams.append(protocol)
            try:
                await loop.create_connection(lambda: protocol, host, port)
                await ready
            except OSError:
                totals.refused += 1

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), timeout)
    return streams, totals


def close_streams(streams: list[SubscriberProtocol]) -> None:
    """Hang up every stream."""
    for stream in streams:
        stream.close()


def install_uvloop() -> str:
    """Use uvloop when it is installed; return the loop's name."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    return "asyncio"


async def _hold(args: argparse.Namespace) -> dict[str, Any]:
    headers = dict(h.split(": ", 1) for h in args.header)
    started = time.monotonic()
    streams, totals = await open_streams(args.host, args.port, args.path, args.streams,
                                         headers=headers, timeout=args.seconds + 30)
    if args.ready_file:
        Path(args.ready_file).write_text(str(totals.connected))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, args.seconds - (time.monotonic() - started)))
    closed_early = totals.closed
    close_streams(streams)
    return {"streams": args.streams, "connected": totals.connected, "refused": totals.refused,
            "closed_early": closed_early, "bytes": totals.bytes}


def main() -> int:
    """Hold SSE subscribers for a while, draining them; print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--ready-file", help="written with the connected count once all are up")
    args = parser.parse_args()
    raise_nofile(20_000)
    install_uvloop()
    print(json.dumps(asyncio.run(_hold(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def as_load_generator() -> dict[str, Any]:
    """Pin this process to the load generator's core, use uvloop if there, and return the
    machine facts to record with the run."""
    _, load_cpu = cpus()
    if load_cpu is not None:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(0, {int(load_cpu)})
    install_uvloop()
    return machine_facts()
