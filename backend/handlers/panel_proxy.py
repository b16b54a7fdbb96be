"""PanelProxyHandler: forwards every non-API path, HTTP and WebSocket, to the NiceGUI panel
listening on loopback, so the panel and the API share one public port and one origin."""

from __future__ import annotations

import logging
from typing import Any

import tornado.websocket
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

log = logging.getLogger("pulse.proxy")

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "content-length", "host",
})
METHODS_WITH_BODY = ("POST", "PUT", "PATCH", "DELETE")


class PanelProxyHandler(tornado.websocket.WebSocketHandler):
    """HTTP requests are fetched from the panel; WebSocket upgrades are piped both ways."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")  # type: ignore[assignment]

    def initialize(self, upstream: str, client: AsyncHTTPClient) -> None:
        """``upstream`` is host:port of the panel; ``client`` a shared HTTP client."""
        self.upstream = upstream
        self.client = client
        self._ws_upstream: tornado.websocket.WebSocketClientConnection | None = None

    def _forward_headers(self) -> dict[str, str]:
        headers = {k: v for k, v in self.request.headers.get_all()
                   if k.lower() not in HOP_BY_HOP}
        headers["Host"] = self.request.host
        headers["X-Forwarded-For"] = self.request.remote_ip or ""
        headers["X-Forwarded-Proto"] = self.request.protocol
        headers["X-Forwarded-Host"] = self.request.host
        return headers

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """A WebSocket upgrade, or a plain GET."""
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            await super().get(*args, **kwargs)
        else:
            await self._proxy_http()

    async def head(self) -> None:
        """HEAD, forwarded."""
        await self._proxy_http()

    async def post(self) -> None:
        """POST, forwarded."""
        await self._proxy_http()

    async def put(self) -> None:
        """PUT, forwarded."""
        await self._proxy_http()

    async def patch(self) -> None:
        """PATCH, forwarded."""
        await self._proxy_http()

    async def delete(self) -> None:
        """DELETE, forwarded."""
        await self._proxy_http()

    async def options(self) -> None:
        """OPTIONS, forwarded."""
        await self._proxy_http()

    async def _proxy_http(self) -> None:
        body = self.request.body if self.request.method in METHODS_WITH_BODY else None
        request = HTTPRequest(
            f"http://{self.upstream}{self.request.uri}", method=self.request.method,
            headers=self._forward_headers(), body=body, follow_redirects=False,
            decompress_response=False, request_timeout=60,
            allow_nonstandard_methods=True)
        try:
            response = await self.client.fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:
            log.warning("the panel did not answer: %s", exc)
            self.set_status(502)
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish('{"error":"the panel is not available"}')
            return
        if response.code == 599:
            self.set_status(502)
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish('{"error":"the panel is not available"}')
            return
        self.set_status(response.code, response.reason)
        self._headers.pop("Content-Type", None)
        for name, value in response.headers.get_all():
            if name.lower() in HOP_BY_HOP:
                continue
            if name.lower() == "set-cookie":
                self.add_header(name, value)
            else:
                self.set_header(name, value)
        if response.body and self.request.method != "HEAD" and response.code not in (204, 304):
            self.write(response.body)
        self.finish()

    # -- WebSocket ---------------------------------------------------------------------------
    def check_origin(self, origin: str) -> bool:
        """Same-origin only (the panel's own pages)."""
        return super().check_origin(origin)

    async def open(self, *args: Any, **kwargs: Any) -> None:
        """Connect to the panel's WebSocket and pipe its messages to the browser."""
        # The client below negotiates its own handshake: drop the browser's (Tornado spells
        # them "Sec-Websocket-…"; an offered extension the client cannot honour fails it).
        headers = {k: v for k, v in self._forward_headers().items()
                   if not k.lower().startswith("sec-websocket-")}
        request = HTTPRequest(f"ws://{self.upstream}{self.request.uri}", headers=headers)
        try:
            self._ws_upstream = await tornado.websocket.websocket_connect(
                request, on_message_callback=self._from_upstream)
        except Exception as exc:  # the panel is gone
            log.warning("the panel's WebSocket did not answer: %s", exc)
            self.close(1011, "panel unavailable")

    def _from_upstream(self, message: str | bytes | None) -> None:
        if message is None:
            self.close()
            return
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except tornado.websocket.WebSocketClosedError:
            self._close_upstream()

    async def on_message(self, message: str | bytes) -> None:
        """Browser → panel."""
        if self._ws_upstream is not None:
            try:
                await self._ws_upstream.write_message(message, binary=isinstance(message, bytes))
            except tornado.websocket.WebSocketClosedError:
                self.close()

    def on_close(self) -> None:
        """Browser gone: close the panel side too."""
        self._close_upstream()

    def _close_upstream(self) -> None:
        if self._ws_upstream is not None:
            self._ws_upstream.close()
            self._ws_upstream = None


def panel_routes(upstream: str, max_clients: int = 200) -> list[tuple[str, type, dict[str, Any]]]:
    """The catch-all route that forwards to the panel at ``upstream``."""
    client = AsyncHTTPClient(force_instance=True, max_clients=max_clients)
    return [(r"/.*", PanelProxyHandler, {"upstream": upstream, "client": client})]

