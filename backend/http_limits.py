"""The request line and header limits, answered in HTTP: ``414`` and ``431`` with a JSON error.

Tornado drops a connection whose headers pass its ``max_header_size`` without a word. Pulse lets
Tornado read up to ``READ_CAP`` bytes of headers (the body's own cap), and checks its real,
smaller limits itself, for every request, before any handler sees it: the client gets an answer
it can act on, and no handler ever sees a 20 KB User-Agent.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable

import tornado.httpserver
from tornado import httputil

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
                 connection: httputil.HTTPConnection) -> None:
        self.delegate = delegate
        self.connection = connection
        self.refused: tuple[int, str, str] | None = None

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        """Check the limits; hand a request within them to the application."""
        assert isinstance(start_line, httputil.RequestStartLine)
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
        if self.refused is None:
            self.delegate.on_connection_close()


class LimitedHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTPServer with the request line and header limits answered (414 / 431)."""

    def start_request(self, server_conn: object,
                      request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        """Every request goes through ``HeaderLimits`` first."""
        return HeaderLimits(super().start_request(server_conn, request_conn), request_conn)
