"""Pulse's composition root and command line: settings → database → writer → hub → Tornado."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from backend.auth import AccountError, LoginThrottle, create_user
from backend.handlers.base import JSONErrorHandler, hide_client_addresses
from backend.handlers.live import LiveStreamHandler
from backend.handlers.status import STATIC_DIR, HealthHandler, MetricsHandler, TrackerScriptHandler
from backend.handlers.track import TrackHandler
from backend.ingest.enrichment import Enricher, VisitorHasher
from backend.ingest.limits import RateLimiter
from backend.ingest.websites import WebsiteCache
from backend.ingest.writer import EventWriter
from backend.live.hub import Hub
from backend.live.sse import LiveStreams
from backend.metrics import Metrics
from backend.services import Services
from backend.settings import Settings, SettingsError, settings_help
from models import setup_database
from models.entities import ApiToken, Event, Salt, User
from models.reports import events_after, events_since
from models.websites import WebsiteError, create_website

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
        (r"/admin/analytics/live", LiveStreamHandler, deps),
        (r"/js/(pulse\.js)", TrackerScriptHandler, {"path": str(STATIC_DIR)}),
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
        app = make_app(self.services, fallback)
        self.http = tornado.httpserver.HTTPServer(
            app, max_body_size=MAX_REQUEST_BYTES, max_header_size=16_384,
            idle_connection_timeout=75, body_timeout=10, xheaders=self.settings.trust_proxy)
        sockets = tornado.netutil.bind_sockets(self.settings.port, self.settings.host)
        self.port = sockets[0].getsockname()[1]
        self.http.add_sockets(sockets)
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


async def serve(settings: Settings, ready: Callable[[PulseServer], None] | None = None) -> None:
    """Run Pulse until SIGTERM or SIGINT."""
    server = PulseServer(settings)
    from ui.mount import mount_panel  # the panel is optional for the API-only tests

    fallback = await mount_panel(server)
    await server.start(fallback)
    log.info("Pulse listening on http://%s:%d", server.settings.host, server.port)
    if ready is not None:
        ready(server)
    await server.wait()


# -- command line ----------------------------------------------------------------------------

def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in (("host", getattr(args, "host", None)),
                                   ("port", getattr(args, "port", None))) if v is not None}
    return Settings.from_env(**overrides)


def _open_db(settings: Settings) -> None:
    setup_database(settings.database)


def cmd_serve(args: argparse.Namespace) -> int:
    """``pulse serve``."""
    settings = _settings(args)
    asyncio.run(serve(settings))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``pulse demo``: serve, with a demo website fed by simulated visitors."""
    from backend.demo import demo_ready, demo_settings

    settings = demo_settings(_settings(args), host_given=args.host is not None)
    asyncio.run(serve(settings, demo_ready(args.rate)))
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password (again): ") != first:
        raise AccountError("the two passwords differ")
    return first


def cmd_create_user(args: argparse.Namespace) -> int:
    """``pulse create-user EMAIL``."""
    settings = _settings(args)
    _open_db(settings)
    is_admin = args.admin or not User.select().exists()
    user = create_user(args.email, _read_password(args), is_admin=is_admin)
    print(f"created {'admin ' if user.is_admin else ''}user {user.email}")
    return 0


def cmd_create_website(args: argparse.Namespace) -> int:
    """``pulse create-website DOMAIN``."""
    settings = _settings(args)
    _open_db(settings)
    owner = None
    if args.owner:
        owner = User.by_email(args.owner)
        if owner is None:
            raise AccountError(f"no user with the email {args.owner}")
    website = create_website(args.domain, name=args.name, origins=args.origin or [],
                             timezone=args.timezone, owner=owner)
    print(website.id)
    return 0


def cmd_create_token(args: argparse.Namespace) -> int:
    """``pulse create-token EMAIL``."""
    settings = _settings(args)
    _open_db(settings)
    user = User.by_email(args.email)
    if user is None:
        raise AccountError(f"no user with the email {args.email}")
    _, token = ApiToken.issue(user, args.name or "")
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``pulse`` command line."""
    env_help = "\n".join(f"  {name:<26} {help} (default: {default})"
                         for name, default, help in settings_help())
    parser = argparse.ArgumentParser(
        prog="pulse", description="Pulse: self-hosted web analytics with a live view.",
        epilog="configuration (environment variables):\n" + env_help,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")

    serve_p = sub.add_parser("serve", help="run the server (the default)")
    serve_p.add_argument("--host", help="address to bind (PULSE_HOST)")
    serve_p.add_argument("--port", type=int, help="public port (PULSE_PORT)")
    serve_p.set_defaults(func=cmd_serve)

    demo_p = sub.add_parser("demo", help="serve a demo website fed by simulated visitors")
    demo_p.add_argument("--host", help="address to bind (default 127.0.0.1, or PULSE_HOST)")
    demo_p.add_argument("--port", type=int, help="public port (PULSE_PORT)")
    demo_p.add_argument("--rate", type=float, default=3.0,
                        help="simulated events per second (default 3)")
    demo_p.set_defaults(func=cmd_demo)

    user_p = sub.add_parser("create-user", help="create a panel account")
    user_p.add_argument("email")
    user_p.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")
    user_p.add_argument("--admin", action="store_true",
                        help="make the user an administrator (the first user always is)")
    user_p.set_defaults(func=cmd_create_user)

    site_p = sub.add_parser("create-website", help="add a website; prints its id")
    site_p.add_argument("domain")
    site_p.add_argument("--name", help="display name (default: the domain)")
    site_p.add_argument("--origin", action="append",
                        help="an extra allowed origin, e.g. http://localhost:3000 (repeatable)")
    site_p.add_argument("--timezone", default="UTC", help="IANA time zone (default UTC)")
    site_p.add_argument("--owner", help="email of the owning user (default: every admin)")
    site_p.set_defaults(func=cmd_create_website)

    token_p = sub.add_parser("create-token", help="create an API token; prints it once")
    token_p.add_argument("email")
    token_p.add_argument("--name", help="a label for the token")
    token_p.set_defaults(func=cmd_create_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python app.py`` and the ``pulse`` console script."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["serve", *argv]
    args = parser.parse_args(argv)
    try:
        settings_level = Settings.from_env().log_level.upper()
    except SettingsError as exc:
        print(f"pulse: {exc}", file=sys.stderr)
        return 2
    if args.command not in ("serve", "demo"):  # one-shot commands print only their result
        settings_level = "WARNING"
    logging.basicConfig(level=getattr(logging, settings_level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except (AccountError, WebsiteError, SettingsError) as exc:
        print(f"pulse: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

if __name__ == "__main__":
    sys.exit(main())
