"""Drop-in endpoints for sites that run Plausible's or Umami's tracker: ``POST /api/event`` and
``POST /api/send`` answer as those products do, and their events take the same path as ours
(validation, enrichment, the writer, the live stream)."""

from __future__ import annotations

import dataclasses
import json

from backend.handlers.base import ApiError
from backend.handlers.track import Dropped, TrackHandler
from backend.ingest.validation import (
    ValidationError,
    decode_body,
    plausible_payload,
    umami_payload,
)


class PlausibleEventHandler(TrackHandler):
    """``POST /api/event``: Plausible's Events API. ``202 ok``; ``400 {"errors": …}``; bots,
    unknown domains, origins the website does not allow and rate-limited events are answered
    ``202`` with ``X-Plausible-Dropped: 1`` and not stored, as Plausible does."""

    def _bad_request(self, error: ValidationError) -> None:
        self.services.metrics.events_dropped.labels("invalid").inc()
        self.write_json(400, {"errors": {error.field or "request": [error.message]}})

    async def post(self) -> None:
        """Store the event once for each listed domain that is a website here."""
        body = self.checked_body()
        try:
            domains, payload = plausible_payload(decode_body(body))
        except ValidationError as exc:
            if exc.field == "body":
                exc = ValidationError("request", "Unable to parse request body as json")
            self._bad_request(exc)
            return
        stored = 0
        for domain in domains:
            website = self.services.websites.by_domain(domain)
            if website is None:
                self.services.metrics.events_dropped.labels("unknown_website").inc()
                continue
            if not self.check_origin(website):
                self.services.metrics.events_dropped.labels("origin").inc()
                continue
            try:
                await self.ingest(dataclasses.replace(payload, website_id=website.id))
            except Dropped:
                continue
            except ApiError as exc:
                if exc.status_code not in (404, 429):  # throttled, or deleted meanwhile
                    raise
                continue
            stored += 1
        if not stored:
            self.set_header("X-Plausible-Dropped", "1")
        self.set_status(202)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("ok")


class UmamiSendHandler(TrackHandler):
    """``POST /api/send``: Umami's collection API. ``200`` with a JSON body like Umami's
    (``cache`` is an empty token: Pulse needs none); bots ``200 {"beep": "boop"}``; bad input
    ``400 {"error": …}``."""

    ALLOW_HEADERS = "Content-Type, X-Umami-Cache"

    async def post(self) -> None:
        """Store a pageview (no ``name``) or a custom event (``name``, ``data`` as props)."""
        body = self.checked_body()
        try:
            payload = umami_payload(decode_body(body))
        except ValidationError as exc:
            raise self._drop("invalid", 400, str(exc)) from None
        if payload is None:  # identify: Pulse keeps no per-session data
            self._answer({"cache": ""})
            return
        websites = self.services.websites
        # A site switching from Umami keeps its Umami website id: the hostname finds it.
        website = websites.get(payload.website_id) or (
            websites.by_domain(payload.hostname) if payload.hostname else None)
        if website is None:
            raise self._drop("unknown_website", 400, "website: not found")
        payload.website_id = website.id
        if not self.check_origin(website):
            raise self._drop("origin", 403, "origin not allowed for this website")
        try:
            record = await self.ingest(payload)
        except Dropped:
            self._answer({"beep": "boop"})
            return
        self._answer({"cache": "", "sessionId": record.session_id,
                      "visitId": record.session_id})

    def _answer(self, body: dict[str, str]) -> None:
        self.set_status(200)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body, separators=(",", ":")))
