"""The Pulse server: its services wired together, the Tornado application, and one lifecycle
(listen, periodic jobs, orderly shutdown). ``app.py`` composes it from settings and the CLI."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from backend.auth import LoginThrottle
from backend.handlers.base import JSONErrorHandler, hide_client_addresses
from backend.handlers.compat import PlausibleEventHandler, UmamiSendHandler
from backend.handlers.live import LiveStreamHandler
from backend.handlers.status import HealthHandler, MetricsHandler, TrackerScriptHandler
from backend.handlers.track import TrackHandler
from backend.http_limits import READ_CAP, LimitedHTTPServer
from backend.ingest.enrichment import Enricher, VisitorHasher, warm_up
from backend.ingest.limits import RateLimiter
from backend.ingest.websites import WebsiteCache
from backend.ingest.writer import EventWriter
from backend.live.hub import Hub
from backend.live.sse import LiveStreams
from backend.metrics import Metrics
from backend.services import Services
from backend.settings import Settings
from backend.tracker_script import tracker_script
from models import setup_database
from models.entities import Event, Salt
from models.reports import events_after, events_since

log = logging.getLogger("pulse")
access_log = logging.getLogger("pulse.access")

MAX_REQUEST_BYTES = 1_048_576


def build_services(settings: Settings) -> Services:
    """Open the database and build the writer, hub and the rest, wired together."""
    setup_database(settings.database)
    metrics = Metrics()
    last_id = Event.select(Event.id).order_by(Event.id.desc()).scalar() or 0
    hub = Hub(window_seconds=settings.live_window, replay_buffer=settings.replay_buffer,
              load_since=events_since, load_after=events_after, start_floor=last_id)
    writer = EventWriter(hub.publish, metrics, batch_size=settings.batch_size,
                         batch_delay=settings.batch_delay_ms / 1000)
    return Services(
        settings=settings,
        metrics=metrics,
        hub=hub,
        writer=writer,
        enricher=Enricher(VisitorHasher(Salt.for_day)),
        websites=WebsiteCache(),
        streams=LiveStreams(metrics, settings.sse_heartbeat),
        ip_limiter=RateLimiter(settings.rate_per_ip),
        website_limiter=RateLimiter(settings.rate_per_website),
        login_throttle=LoginThrottle(settings.login_attempts),
    )


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log without the client's IP address (Pulse never logs it)."""
    status = handler.get_status()
    level = logging.DEBUG if status < 400 else logging.INFO if status < 500 else logging.ERROR
    if access_log.isEnabledFor(level):
        access_log.log(level, "%d %s %s %.2fms", status, handler.request.method,
                       handler.request.path, 1000.0 * handler.request.request_time())


def make_app(services: Services, fallback: list[Any] | None = None) -> tornado.web.Application:
    """The Tornado application: the public API, then ``fallback`` routes (the panel)."""
    hide_client_addresses()
    deps = {"services": services}
    routes: list[Any] = [
        (r"/web/analytics/track", TrackHandler, deps),
        (r"/api/event", PlausibleEventHandler, deps),
        (r"/api/send", UmamiSendHandler, deps),
        (r"/admin/analytics/live", LiveStreamHandler, deps),
        (r"/js/pulse(?:\.([0-9a-f]{8,64}))?\.js", TrackerScriptHandler,
         {"script": tracker_script()}),
        (r"/healthz", HealthHandler, deps),
        (r"/metrics", MetricsHandler, deps),
        (r"/(?:web|admin/analytics|api)/.*", JSONErrorHandler, deps),
    ]
    routes += fallback or [(r"/.*", JSONErrorHandler, deps)]
    return tornado.web.Application(
        routes,
        cookie_secret=services.settings.secret,
        log_function=log_request,
        default_handler_class=JSONErrorHandler,
        default_handler_args=deps,
        xsrf_cookies=False,
    )


class PulseServer:
    """A running Pulse: the public port, the periodic jobs, and one orderly shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.with_secret()
        self.services = build_services(self.settings)
        self.http: tornado.httpserver.HTTPServer | None = None
        self.port = self.settings.port
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._on_stop: list[Callable[[], Any]] = []

    async def start(self, fallback: list[Any] | None = None) -> None:
        """Listen on the public port and start the periodic jobs."""
        warm_up()  # not on the first tracked event
        app = make_app(self.services, fallback)
        self.http = LimitedHTTPServer(  # 414 / 431 past the request line and header limits
            app, max_body_size=MAX_REQUEST_BYTES, max_header_size=READ_CAP,
            idle_connection_timeout=75, body_timeout=10, xheaders=self.settings.trust_proxy)
        sockets = tornado.netutil.bind_sockets(self.settings.port, self.settings.host)
        self.port = sockets[0].getsockname()[1]
        self.http.add_sockets(sockets)
        # What start-up loaded (modules, regexes, the panel) lives as long as the process: out
        # of the collector's way, a full collection no longer stalls the loop for ~0.1 s.
        gc.collect()
        gc.freeze()
        self._tasks.append(asyncio.create_task(self._every(1.0, self.services.hub.tick)))
        self._tasks.append(asyncio.create_task(
            self._every(max(0.05, self.services.settings.sse_heartbeat / 3),
                        self.services.streams.beat)))

    def on_stop(self, callback: Callable[[], Any]) -> None:
        """Run ``callback`` (sync or async) during shutdown, after the writer drained."""
        self._on_stop.append(callback)

    async def _every(self, seconds: float, job: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                job()
            except Exception:
                log.exception("periodic job %s failed", getattr(job, "__name__", job))

    def request_stop(self) -> None:
        """Ask the server to shut down (signal handlers call this)."""
        self._stop.set()

    async def wait(self) -> None:
        """Run until asked to stop, then shut down in order."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        await self._stop.wait()
        await self.stop()

    async def stop(self) -> None:
        """Stop listening, close live streams, commit every accepted event, then close."""
        log.info("shutting down: draining %d pending events", self.services.writer.pending)
        if self.http is not None:
            self.http.stop()
        self.services.streams.close_all()
        await self.services.writer.close()
        for task in self._tasks:
            task.cancel()
        for callback in self._on_stop:
            result = callback()
            if asyncio.iscoroutine(result):
                await result
        if self.http is not None:
            try:
                await asyncio.wait_for(self.http.close_all_connections(), timeout=3)
            except TimeoutError:
                log.warning("some connections did not close in time")
        from models.db import database
        database.obj.close()
        log.info("stopped")
