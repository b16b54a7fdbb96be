"""TrackHandler: ``POST /web/analytics/track`` — validate, enrich, store, answer 202."""

from __future__ import annotations

import logging

from backend.handlers.base import ApiError, BaseHandler
from backend.ingest.enrichment import is_bot
from backend.ingest.validation import ValidationError, decode_body, validate
from backend.ingest.writer import WriterClosed
from models.entities import now_ms

log = logging.getLogger("pulse.track")

ACCEPTED_TYPES = ("application/json", "text/plain", "")


class TrackHandler(BaseHandler):
    """Receives events from the tracker (fetch, or sendBeacon's text/plain)."""

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
        self.set_header("Access-Control-Allow-Headers", "Content-Type")
        self.set_header("Access-Control-Max-Age", "86400")
        self.set_status(204)
        self.finish()

    def client_ip(self) -> str:
        """The visitor's IP: used for country, visitor hash and rate limits, never stored.
        Behind a reverse proxy (PULSE_TRUST_PROXY) Tornado takes it from X-Forwarded-For."""
        return self.request.remote_ip or ""

    async def post(self) -> None:
        """Store one event; 202 once its transaction committed."""
        services = self.services
        settings = services.settings
        if len(self.request.body) > settings.max_body_bytes:
            raise self._drop("too_large", 413,
                             f"body is larger than {settings.max_body_bytes} bytes")
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type not in ACCEPTED_TYPES:
            raise self._drop("invalid", 415, "Content-Type must be application/json or text/plain")
        try:
            payload = validate(decode_body(self.request.body))
        except ValidationError as exc:
            raise self._drop("invalid", 400, str(exc)) from None
        website = services.websites.get(payload.website_id)
        if website is None:
            raise self._drop("unknown_website", 404, "website_id: no such website")
        origin = self.request.headers.get("Origin", "")
        if origin:
            if not website.allows_origin(origin):
                raise self._drop("origin", 403, "origin not allowed for this website")
            self._allow_origin(origin)
        ip = self.client_ip()
        wait = services.ip_limiter.allow(ip) or services.website_limiter.allow(website.id)
        if wait:
            retry = str(max(1, round(wait + 0.5)))
            raise self._drop("rate_limited", 429, "too many events, slow down",
                             **{"Retry-After": retry})
        user_agent = self.request.headers.get("User-Agent", "")
        if is_bot(user_agent):
            services.metrics.events_dropped.labels("bot").inc()
            self.set_header("X-Pulse-Dropped", "bot")
            self.write_json(202, {"ok": True, "dropped": "bot"})
            return
        event = services.enricher.enrich(payload, ip, user_agent, now_ms())
        try:
            record = await services.writer.write(event)
        except WriterClosed:
            raise ApiError(503, "the server is shutting down, retry shortly",
                           {"Retry-After": "2"}) from None
        except LookupError:
            raise ApiError(404, "website_id: no such website") from None
        except Exception:
            raise ApiError(503, "the event could not be stored, retry shortly",
                           {"Retry-After": "2"}) from None
        self.write_json(202, {"ok": True, "id": record.id})
