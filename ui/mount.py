"""Mounting the NiceGUI panel: its own FastAPI app, served by uvicorn on loopback inside the
same event loop, behind Tornado's catch-all proxy route."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI
from nicegui import app, ui
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.handlers.panel_proxy import panel_routes
from backend.services import Services

if TYPE_CHECKING:
    from backend.server import PulseServer

log = logging.getLogger("pulse.panel")


class PanelServer(uvicorn.Server):
    """uvicorn without its own signal handling: Pulse shuts everything down in one place."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave SIGINT and SIGTERM to Pulse."""
        yield


def build_panel(services: Services) -> FastAPI:
    """A FastAPI app holding the NiceGUI panel's pages for ``services``."""
    from ui.pages import register_pages

    register_pages(services)
    fastapi_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    # NiceGUI derives socket.io's heartbeat from reconnect_timeout (ping every 0.8×, 0.2× grace):
    # at 5 s, live pages on a saturated core lost their connection for seconds at a time (B4).
    ui.run_with(fastapi_app, title="Pulse", favicon="📈", storage_secret=services.settings.secret,
                language="en-US",
                session_middleware_kwargs={"same_site": "strict"},
                show_welcome_message=False, reconnect_timeout=10.0)
    # Quasar's page loading bar is a progressbar: screen readers need its name.
    app.config.quasar_config.setdefault("loadingBar", {})["aria-label"] = "Loading the page"
    fastapi_app.add_middleware(SecureCookiesOverHTTPS)
    return fastapi_app


class SecureCookiesOverHTTPS:
    """Marks the session cookie ``Secure`` when the browser reached Pulse over HTTPS (the
    forwarding route, or a reverse proxy before it, says so in X-Forwarded-Proto)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite Set-Cookie headers of HTTPS requests."""
        headers = dict(scope.get("headers") or [])
        if scope["type"] != "http" or headers.get(b"x-forwarded-proto") != b"https":
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, v + b"; secure" if k.lower() == b"set-cookie" and b"secure" not in v.lower()
                     else v)
                    for k, v in message.get("headers", [])]
            await send(message)

        await self.app(scope, receive, send_secure)


async def mount_panel(server: PulseServer, port: int = 0) -> list[Any]:
    """Start the panel on loopback (``port``, shared with the workers' supervisor, or a free
    one); return Tornado's forwarding routes."""
    fastapi_app = build_panel(server.services)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(fastapi_app, log_level="warning", proxy_headers=True,
                            forwarded_allow_ips="127.0.0.1", lifespan="on", access_log=False)
    panel = PanelServer(config)
    task = asyncio.create_task(panel.serve(sockets=[sock]))
    while not panel.started:
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError("the panel stopped during start-up")
        await asyncio.sleep(0.01)

    async def stop_panel() -> None:
        panel.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)

    server.on_stop(stop_panel)
    log.info("panel ready on 127.0.0.1:%d", port)
    return panel_routes(f"127.0.0.1:{port}")

