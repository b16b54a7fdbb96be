"""The request line and header limits, answered in HTTP: ``414`` and ``431`` with a JSON error.

Tornado drops a connection whose headers pass its ``max_header_size`` without a word. Pulse lets
Tornado read up to ``READ_CAP`` bytes of headers (the body's own cap), and checks its real,
smaller limits itself, for every request, before any handler sees it: the client gets an answer
it can act on, and no handler ever sees a 20 KB User-Agent.

It also bounds the time a client may take to send a request's body. Tornado's own
``body_timeout`` wraps every body read in a timeout of its own (a future, a timer added and
removed per request: ~34 µs of the ingest path's CPU); here a request whose body is still being
read is one entry in a dict, and one sweep a second closes the connections past their deadline.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable
from typing import Any

import tornado.httpserver
from tornado import httputil
from tornado.ioloop import PeriodicCallback

log = logging.getLogger("pulse.http")

MAX_REQUEST_LINE = 8_192  # bytes of "METHOD /path?query HTTP/1.1"
MAX_HEADER_BYTES = 16_384  # bytes of all header lines ("Name: value\r\n" each)
READ_CAP = 1_048_576  # past this Tornado still closes the connection (like a body past 1 MiB)


def refusal(start_line: httputil.RequestStartLine,
            headers: httputil.HTTPHeaders) -> tuple[int, str, str] | None:
    """(status, reason, message) when the request passes a limit, else None."""
    line = len(start_line.method) + len(start_line.path) + len(start_line.version) + 2
    if line > MAX_REQUEST_LINE:
        return (414, "URI Too Long",
                f"the request line is longer than {MAX_REQUEST_LINE} bytes")
    size = sum(len(name) + len(value) + 4 for name, value in headers.get_all())
    if size > MAX_HEADER_BYTES:
        return (431, "Request Header Fields Too Large",
                f"the request headers are larger than {MAX_HEADER_BYTES} bytes")
    return None


class HeaderLimits(httputil.HTTPMessageDelegate):
    """Passes a request on to ``delegate``, or, past a limit, reads and drops its body, answers
    the refusal and closes the connection."""

    def __init__(self, delegate: httputil.HTTPMessageDelegate,
                 connection: httputil.HTTPConnection,
                 reading: dict[HeaderLimits, float], body_timeout: float) -> None:
        self.delegate = delegate
        self.connection = connection
        self.refused: tuple[int, str, str] | None = None
        self.reading = reading  # the server's requests whose body is being read: deadlines
        self.body_timeout = body_timeout

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        """Check the limits; hand a request within them to the application."""
        assert isinstance(start_line, httputil.RequestStartLine)
        self.reading[self] = time.monotonic() + self.body_timeout
        self.refused = refusal(start_line, headers)
        if self.refused is None:
            return self.delegate.headers_received(start_line, headers)
        return None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        """Body bytes: the application's, or dropped for a refused request."""
        if self.refused is None:
            return self.delegate.data_received(chunk)
        return None

    def finish(self) -> None:
        """The request was read: let the application answer, or answer the refusal."""
        self.reading.pop(self, None)
        if self.refused is None:
            self.delegate.finish()
            return
        status, reason, message = self.refused
        body = json.dumps({"error": message}).encode()
        headers = httputil.HTTPHeaders({
            "Content-Type": "application/json; charset=utf-8",
            "Content-Length": str(len(body)),
            "Connection": "close",
        })
        written = self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", status, reason), headers, body)
        self.connection.finish()
        close = getattr(self.connection, "close", None)
        if close is not None:
            written.add_done_callback(lambda _: close())

    def on_connection_close(self) -> None:
        """The client left before the request was complete."""
        self.reading.pop(self, None)
        if self.refused is None:
            self.delegate.on_connection_close()

    def expire(self) -> None:
        """The body did not arrive in time: close the connection (as Tornado's body_timeout)."""
        self.reading.pop(self, None)
        log.info("closing a connection whose request body took over %s s", self.body_timeout)
        close = getattr(self.connection, "close", None)
        if close is not None:
            close()


class LimitedHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTPServer with the request line and header limits answered (414 / 431), and
    ``body_timeout`` enforced by a sweep once a second instead of a timer per request."""

    SWEEP_SECONDS = 1.0

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        """Tornado's parameters; ``body_timeout`` (seconds) is kept here, not given to it."""
        self.body_timeout = float(kwargs.pop("body_timeout", None) or 3600)
        super().initialize(*args, **kwargs)
        self.reading: dict[HeaderLimits, float] = {}
        self.sweeper: PeriodicCallback | None = None

    def start_request(self, server_conn: object,
                      request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        """Every request goes through ``HeaderLimits`` first."""
        if self.sweeper is None:  # on the loop now: the sweep can start
            self.sweeper = PeriodicCallback(self.sweep, self.SWEEP_SECONDS * 1000)
            self.sweeper.start()
        return HeaderLimits(super().start_request(server_conn, request_conn), request_conn,
                            self.reading, self.body_timeout)

    def sweep(self) -> None:
        """Close the connections whose request body is overdue."""
        now = time.monotonic()
        for request in [r for r, deadline in self.reading.items() if deadline < now]:
            request.expire()

    def stop(self) -> None:
        """Stop listening, and sweeping."""
        if self.sweeper is not None:
            self.sweeper.stop()
        super().stop()
