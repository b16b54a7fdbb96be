"""The Pulse server: its services wired together, the Tornado application, and one lifecycle
(listen, periodic jobs, orderly shutdown). ``app.py`` composes it from settings and the CLI."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import peewee
import tornado.httpserver
import tornado.netutil
import tornado.web

from backend.alerts.delivery import DeliveryQueue, SmtpConfig
from backend.alerts.engine import AlertEngine
from backend.auth import LoginThrottle
from backend.bus import Bus, DropPublishes, InProcessBus
from backend.handlers.base import JSONErrorHandler, hide_client_addresses
from backend.handlers.compat import PlausibleEventHandler, UmamiSendHandler
from backend.handlers.embed import embed_routes
from backend.handlers.live import LiveStreamHandler
from backend.handlers.manage_api import manage_routes
from backend.handlers.share import SLUG, ShareGateHandler
from backend.handlers.stats_api import StatsQueryHandler
from backend.handlers.status import HealthHandler, MetricsHandler, TrackerScriptHandler
from backend.handlers.track import TrackHandler
from backend.http_limits import READ_CAP, LimitedHTTPServer
from backend.ingest.enrichment import Enricher, VisitorHasher, warm_up
from backend.ingest.limits import RateLimiter
from backend.ingest.websites import WebsiteCache
from backend.ingest.writer import EventWriter
from backend.live.counter import LiveCounters
from backend.live.hub import EventStore, Hub
from backend.live.sse import LiveStreams
from backend.metrics import Metrics
from backend.services import Services
from backend.settings import Settings
from backend.tracker_script import tracker_script
from models import setup_database
from models.db import database
from models.entities import Salt, Website, now_ms
from models.reports import events_after, events_since, last_seq, last_seqs
from models.retention import delete_old_events
from models.stats.rollups import build_pending
from models.visits import VisitBook, repair_recent_visits

log = logging.getLogger("pulse")

CLUSTER_RULES_RELOAD = 5.0  # seconds: alert rules changed through another instance apply
access_log = logging.getLogger("pulse.access")

MAX_REQUEST_BYTES = 1_048_576
CHECK_SECONDS = 1.0  # how often committed sequences are compared with what was delivered


def build_services(settings: Settings) -> Services:
    """Open the database and build the writer, hub and the rest, wired together."""
    setup_database(settings.database)
    metrics = Metrics()
    hub = Hub(window_seconds=settings.live_window,
              store=EventStore(events_after, events_since, last_seq),
              replay_bytes=settings.replay_buffer_bytes, replay_memory=settings.replay_memory,
              live_max_bytes=settings.live_max_bytes)
    hub.start_from(last_seqs())
    bus = build_bus(settings, hub)
    writer = EventWriter(bus.publish, metrics, batch_size=settings.batch_size,
                         batch_delay=settings.batch_delay_ms / 1000, visits=visit_book(settings))
    smtp = SmtpConfig.parse(settings.smtp_url, settings.smtp_from)
    alerts = AlertEngine(hub, DeliveryQueue(smtp), settings.base_url, enabled=settings.alerts,
                         reload_every=CLUSTER_RULES_RELOAD if settings.redis_url else 0.0)
    alerts.load()
    return Services(
        settings=settings,
        metrics=metrics,
        hub=hub,
        bus=bus,
        writer=writer,
        enricher=Enricher(VisitorHasher(Salt.for_day)),
        websites=WebsiteCache(),
        streams=LiveStreams(metrics, settings.sse_heartbeat),
        ip_limiter=RateLimiter(settings.rate_per_ip),
        website_limiter=RateLimiter(settings.rate_per_website),
        login_throttle=LoginThrottle(settings.login_attempts),
        alerts=alerts,
        counters=LiveCounters(hub),
    )


def visit_book(settings: Settings) -> VisitBook:
    """How the writer keeps visit rows: on SQLite (one writing process) it gathers
    ``visit_flush_ms`` of changes and writes them at once; on PostgreSQL, where several
    instances write the same visits, with every batch. A file next to the SQLite database
    (``pulse.db-visits``) lives while a writer runs: found at start, the last one did not stop
    cleanly, and the visits of its last minute are rebuilt from their events."""
    db = database.obj
    if not isinstance(db, peewee.SqliteDatabase) or not settings.visit_flush_ms:
        return VisitBook()
    if db.database in ("", ":memory:"):
        return VisitBook(settings.visit_flush_ms / 1000)
    running = Path(f"{db.database}-visits")
    if running.exists():
        repaired = repair_recent_visits()
        log.warning("the last run stopped without writing all visit changes: %d visits "
                    "rebuilt from their events", repaired)
    running.touch()
    return VisitBook(settings.visit_flush_ms / 1000,
                     on_stop=lambda: running.unlink(missing_ok=True))


def positions() -> dict[str, int]:
    """Every website's committed sequence (0 for a website without events yet)."""
    committed = last_seqs()
    for website in Website.select(Website.id):
        committed.setdefault(website.id, 0)
    return committed


def build_bus(settings: Settings, hub: Hub) -> Bus:
    """The live bus: Redis Streams when ``PULSE_REDIS_URL`` is set (started with the server),
    else in-process, straight to ``hub``."""
    fault = DropPublishes(settings.fault_drop_publish)
    if settings.redis_url:
        from backend.bus_redis import RedisBus

        return RedisBus(settings.redis_url, settings.redis_prefix,
                        maxlen=settings.redis_stream_maxlen, fault=fault)
    return InProcessBus(hub.publish, fault)


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
        (r"/api/v2/query", StatsQueryHandler, deps),
        (r"/admin/analytics/live", LiveStreamHandler, deps),
        (r"/js/pulse(?:\.([0-9a-f]{8,64}))?\.js", TrackerScriptHandler,
         {"script": tracker_script()}),
        (r"/healthz", HealthHandler, deps),
        (r"/metrics", MetricsHandler, deps),
        *manage_routes(deps),
        (rf"/share/({SLUG})", ShareGateHandler, deps),
        *embed_routes(deps),
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

    def __init__(self, settings: Settings, *, reuse_port: bool = False) -> None:
        self.settings = settings.with_secret()
        self.reuse_port = reuse_port  # several workers share the public port
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
        sockets = tornado.netutil.bind_sockets(self.settings.port, self.settings.host,
                                               reuse_port=self.reuse_port)
        self.port = sockets[0].getsockname()[1]
        self.http.add_sockets(sockets)
        services = self.services
        committed = await asyncio.get_running_loop().run_in_executor(None, positions)
        services.hub.start_from(committed)
        await services.bus.start(services.hub.publish, committed)
        # What start-up loaded (modules, regexes, the panel) lives as long as the process: out
        # of the collector's way, a full collection no longer stalls the loop for ~0.1 s.
        gc.collect()
        gc.freeze()
        self._tasks.append(asyncio.create_task(self._every(1.0, self.services.hub.tick)))
        self._tasks.append(asyncio.create_task(self._every(CHECK_SECONDS, self.check)))
        self._tasks.append(asyncio.create_task(self._every(1.0, self.services.alerts.tick)))
        self._tasks.append(asyncio.create_task(self._every(1.0, self.services.counters.flush)))
        self._tasks.append(asyncio.create_task(
            self._every(max(0.05, self.services.settings.sse_heartbeat / 3),
                        self.services.streams.beat)))
        self._tasks.append(asyncio.create_task(self._rollups()))
        if self.settings.retention_days > 0:
            self._tasks.append(asyncio.create_task(self._retention()))

    def on_stop(self, callback: Callable[[], Any]) -> None:
        """Run ``callback`` (sync or async) during shutdown, after the writer drained."""
        self._on_stop.append(callback)

    async def check(self) -> None:
        """Every website's committed sequence against what the hub delivered: the bus follows
        new websites, and the hub refills from the store what a lost publish left out."""
        committed = await asyncio.get_running_loop().run_in_executor(None, positions)
        hub = self.services.hub
        # A website new to the bus is read from what this hub has, so its first events come
        # through the bus too (a website without events is not in ``committed`` yet).
        self.services.bus.follow({website_id: hub.last_delivered(website_id)
                                  for website_id in committed.keys() | hub.watched()})
        hub.check(committed)

    async def _every(self, seconds: float, job: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                result = job()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("periodic job %s failed", getattr(job, "__name__", job))

    async def _rollups(self, period: float = 60.0) -> None:
        """Every minute, build the daily rollups of days that closed, in a thread."""
        while True:
            try:
                built = await asyncio.to_thread(build_pending, datetime.now(UTC))
                if built:
                    log.info("rollups: built %d days", built)
            except Exception:
                log.exception("building rollups failed")
            await asyncio.sleep(period)

    async def _retention(self, period: float = 3600.0) -> None:
        """Every hour, delete raw events past PULSE_RETENTION_DAYS in small batches, each in a
        thread (off the loop), yielding to the writer between batches."""
        while True:
            before = now_ms() - self.settings.retention_days * 86_400_000
            removed = 0
            try:
                while (count := await asyncio.to_thread(delete_old_events, before)) > 0:
                    removed += count
                    await asyncio.sleep(0.05)
            except Exception:
                log.exception("deleting old events failed")
            if removed:
                log.info("retention: deleted %d events older than %d days", removed,
                         self.settings.retention_days)
            await asyncio.sleep(period)

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
        self.services.counters.close_all()
        await self.services.writer.close()
        await self.services.bus.close()
        for task in self._tasks:
            task.cancel()
        self.services.alerts.close()
        await self.services.alerts.deliveries.close()
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
