"""BaseHandler: JSON errors, the services, and who is asking."""

from __future__ import annotations

import asyncio
import json
import logging
from types import TracebackType
from typing import Any

import tornado.httpserver
import tornado.web

from backend.auth import SESSION_COOKIE, user_from_authorization, user_from_cookie
from backend.services import Services
from models.entities import User
from models.websites import Access, website_access

log = logging.getLogger("pulse.http")


class HideClientAddress(logging.Filter):
    """Tornado names the peer in a few log lines ("Malformed HTTP message from 192.0.2.1");
    Pulse never logs IP addresses, so the peer becomes "a client"."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace any connection context among the arguments; never drop the record."""
        context = tornado.httpserver._HTTPRequestContext
        if isinstance(record.args, tuple) and any(isinstance(a, context) for a in record.args):
            record.args = tuple("a client" if isinstance(a, context) else a
                                for a in record.args)
        return True


def hide_client_addresses() -> None:
    """Install ``HideClientAddress`` on Tornado's connection logger (once)."""
    logger = logging.getLogger("tornado.general")
    if not any(isinstance(f, HideClientAddress) for f in logger.filters):
        logger.addFilter(HideClientAddress())


class ApiError(tornado.web.HTTPError):
    """An HTTP error whose message is shown to the client as ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.message = message
        self.headers = headers or {}


class BaseHandler(tornado.web.RequestHandler):
    """Every Pulse API handler: errors are always ``{"error": …}`` JSON."""

    services: Services

    def initialize(self, services: Services) -> None:
        """Receive the services from the composition root."""
        self.services = services

    def get_current_user(self) -> User | None:
        """The user of a bearer token or of the panel's session cookie.

        Blocking (database look-ups, and a token's ``last_used_at`` UPDATE): handlers on the
        event loop call ``await self.authenticate()`` instead, which also sets ``current_user``.
        """
        return _user_of(self.request.headers.get("Authorization"),
                        self.services.settings.secret, self.get_cookie(SESSION_COOKIE))

    async def authenticate(self) -> User | None:
        """``get_current_user`` in a worker thread; sets and returns ``current_user``."""
        user, _ = await self.authenticate_for(None)
        return user

    async def authenticate_for(self, website_id: str | None) -> tuple[User | None, Access | None]:
        """Who is asking and their access to ``website_id`` (if given, and signed in), in one
        trip to a worker thread; sets ``current_user``."""
        credentials = (self.request.headers.get("Authorization"), self.services.settings.secret,
                       self.get_cookie(SESSION_COOKIE))

        def look_up() -> tuple[User | None, Access | None]:
            user = _user_of(*credentials)
            if user is None or not website_id:
                return user, None
            return user, website_access(user, website_id)

        user, access = await asyncio.get_running_loop().run_in_executor(None, look_up)
        self.current_user = user
        return user, access

    def compute_etag(self) -> str | None:
        """No ETag: API answers are live state, never a ``304 Not Modified``."""
        return None

    def write_json(self, status: int, payload: dict[str, Any]) -> None:
        """Answer ``payload`` as JSON with ``status``."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(payload, separators=(",", ":")))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error as JSON: the ApiError's message, else the HTTP reason."""
        message = self._reason
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], ApiError):
            message = exc_info[1].message
            for name, value in exc_info[1].headers.items():
                self.set_header(name, value)
        elif status_code >= 500:
            message = "internal error"
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"error": message}, separators=(",", ":")))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Log errors without the client's IP address (Tornado's default names it)."""
        if isinstance(value, tornado.web.HTTPError):
            message = value.message if isinstance(value, ApiError) else value.log_message
            log.info("%d %s %s: %s", value.status_code, self.request.method, self.request.path,
                     message)
        else:
            log.error("uncaught exception in %s %s", self.request.method, self.request.path,
                      exc_info=(typ, value, tb))  # type: ignore[arg-type]


def _user_of(authorization: str | None, secret: str, cookie: str | None) -> User | None:
    """The user of a bearer token, else of the panel's session cookie (blocking)."""
    user = user_from_authorization(authorization)
    if user is None:
        user = user_from_cookie(secret, cookie)
    return user


class JSONErrorHandler(BaseHandler):
    """404 for API paths nobody serves, in JSON."""

    def prepare(self) -> None:
        """Refuse every method."""
        raise ApiError(404, "not found")
