"""TrackHandler: ``POST /web/analytics/track`` — validate, enrich, store, answer 202."""

from __future__ import annotations

import logging

from backend.handlers.base import ApiError, BaseHandler
from backend.ingest.enrichment import is_bot
from backend.ingest.validation import TrackPayload, ValidationError, decode_body, validate
from backend.ingest.writer import WriterClosed
from models.entities import Website, now_ms
from models.records import EventRecord

log = logging.getLogger("pulse.track")

ACCEPTED_TYPES = ("application/json", "text/plain", "")


class Dropped(Exception):
    """An event deliberately not stored (``reason``: bot); the client is told it was accepted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TrackHandler(BaseHandler):
    """Receives events from the tracker (fetch, or sendBeacon's text/plain)."""

    ALLOW_HEADERS = "Content-Type"

    def _allow_origin(self, origin: str) -> None:
        self.set_header("Access-Control-Allow-Origin", origin)
        self.set_header("Vary", "Origin")

    def _drop(self, reason: str, status: int, message: str, **headers: str) -> ApiError:
        self.services.metrics.events_dropped.labels(reason).inc()
        return ApiError(status, message, headers)

    def options(self) -> None:
        """CORS preflight: allowed only for an origin some website has as its own."""
        origin = self.request.headers.get("Origin", "")
        if not origin or not self.services.websites.origin_known(origin):
            raise ApiError(403, "origin not allowed")
        self._allow_origin(origin)
        self.set_header("Access-Control-Allow-Methods", "POST, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", self.ALLOW_HEADERS)
        self.set_header("Access-Control-Max-Age", "86400")
        self.set_status(204)
        self.finish()

    def client_ip(self) -> str:
        """The visitor's IP: used for country, visitor hash and rate limits, never stored.
        Behind a reverse proxy (PULSE_TRUST_PROXY) Tornado takes it from X-Forwarded-For."""
        return self.request.remote_ip or ""

    def checked_body(self) -> bytes:
        """The request body, within the size limit and of an accepted type (else 413/415)."""
        limit = self.services.settings.max_body_bytes
        if len(self.request.body) > limit:
            raise self._drop("too_large", 413, f"body is larger than {limit} bytes")
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type not in ACCEPTED_TYPES:
            raise self._drop("invalid", 415, "Content-Type must be application/json or text/plain")
        return self.request.body

    async def post(self) -> None:
        """Store one event; 202 once its transaction committed."""
        services = self.services
        body = self.checked_body()
        try:
            payload = validate(decode_body(body))
        except ValidationError as exc:
            raise self._drop("invalid", 400, str(exc)) from None
        website = services.websites.get(payload.website_id)
        if website is None:
            raise self._drop("unknown_website", 404, "website_id: no such website")
        if not self.check_origin(website):
            raise self._drop("origin", 403, "origin not allowed for this website")
        try:
            record = await self.ingest(payload)
        except Dropped:
            self.set_header("X-Pulse-Dropped", "bot")
            self.write_json(202, {"ok": True, "dropped": "bot"})
            return
        self.write_json(202, {"ok": True, "id": record.id})

    def check_origin(self, website: Website) -> bool:
        """Whether a browser's Origin (if any) may post for ``website``; answer CORS if so."""
        origin = self.request.headers.get("Origin", "")
        if not origin:
            return True
        if not website.allows_origin(origin):
            return False
        self._allow_origin(origin)
        return True

    async def ingest(self, payload: TrackPayload) -> EventRecord:
        """Rate limits, bots, enrichment and the writer: the committed event. Raises ApiError
        (429 over a rate limit, 404 for a website deleted meanwhile, 503) or Dropped (a bot)."""
        services = self.services
        ip = self.client_ip()
        wait = services.ip_limiter.allow(ip) or services.website_limiter.allow(payload.website_id)
        if wait:
            retry = str(max(1, round(wait + 0.5)))
            raise self._drop("rate_limited", 429, "too many events, slow down",
                             **{"Retry-After": retry})
        user_agent = self.request.headers.get("User-Agent", "")
        if is_bot(user_agent):
            services.metrics.events_dropped.labels("bot").inc()
            raise Dropped("bot")
        event = services.enricher.enrich(payload, ip, user_agent, now_ms())
        try:
            return await services.writer.write(event)
        except WriterClosed:
            raise ApiError(503, "the server is shutting down, retry shortly",
                           {"Retry-After": "2"}) from None
        except LookupError:
            raise ApiError(404, "website_id: no such website") from None
        except Exception:
            raise ApiError(503, "the event could not be stored, retry shortly",
                           {"Retry-After": "2"}) from None
