"""The request body deadline: ``LimitedHTTPServer`` closes a connection whose body does not
arrive in time (one sweep a second instead of Tornado's timer per request), and leaves
complete requests, keep-alive connections and long responses alone."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tornado.netutil
import tornado.web
from tornado.iostream import IOStream

from backend.http_limits import LimitedHTTPServer


class Echo(tornado.web.RequestHandler):
    def post(self) -> None:
        self.write(b"got " + str(len(self.request.body)).encode())


@contextlib.asynccontextmanager
async def serving(body_timeout: float) -> AsyncIterator[tuple[LimitedHTTPServer, int]]:
    """The echo server on a free loopback port, stopped afterwards."""
    server = LimitedHTTPServer(tornado.web.Application([(r"/", Echo)]),
                               body_timeout=body_timeout)
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server.add_sockets([sock])
    try:
        yield server, sock.getsockname()[1]
    finally:
        server.stop()


async def connect(port: int) -> IOStream:
    stream = IOStream(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    await stream.connect(("127.0.0.1", port))
    return stream


HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"


async def post_whole(stream: IOStream) -> bytes:
    """A request with its whole body: the server's answer."""
    await stream.write(HEAD + b"1234567890")
    return await stream.read_until(b"got 10")


@pytest.mark.gen_test(timeout=10)
async def test_a_body_that_does_not_arrive_in_time_closes_the_connection() -> None:
    async with serving(body_timeout=0.2) as (server, port):
        slow = await connect(port)
        await slow.write(HEAD + b"12345")  # half the body, then nothing
        assert await slow.read_until_close() == b""  # closed without an answer, as Tornado's
        assert not server.reading  # nothing left behind
        # The server goes on answering others.
        other = await connect(port)
        assert (await post_whole(other)).startswith(b"HTTP/1.1 200")
        other.close()


@pytest.mark.gen_test(timeout=10)
async def test_complete_requests_and_idle_keep_alive_connections_are_left_alone() -> None:
    async with serving(body_timeout=0.2) as (server, port):
        client = await connect(port)
        for _ in range(3):  # one connection, several requests, idle past the deadline between
            await post_whole(client)
            assert not server.reading
            await asyncio.sleep(0.7)
        assert (await post_whole(client)).startswith(b"HTTP/1.1 200")
        client.close()


@pytest.mark.gen_test(timeout=10)
async def test_a_client_that_leaves_mid_body_is_forgotten() -> None:
    async with serving(body_timeout=30) as (server, port):
        client = await connect(port)
        await client.write(HEAD + b"123")
        for _ in range(100):  # the server has read the headers
            if server.reading:
                break
            await asyncio.sleep(0.01)
        assert len(server.reading) == 1
        client.close()
        for _ in range(100):
            if not server.reading:
                break
            await asyncio.sleep(0.01)
        assert not server.reading


def test_the_default_is_an_hour_when_none_is_given(io_loop: Any) -> None:
    server = LimitedHTTPServer(tornado.web.Application([]))
    assert server.body_timeout == 3600
