"""StatsQueryHandler: ``POST /api/v2/query`` — Plausible's Stats API v2 over Pulse's visits."""

from __future__ import annotations

import asyncio
from typing import Any

from backend.handlers.base import ApiError, BaseHandler
from backend.ingest.validation import ValidationError, decode_body
from models.entities import Membership, User, Website
from models.stats import QueryError, answer


def website_of(user: User, site_id: Any) -> Website:
    """The user's website named by ``site_id`` (its id or its domain); ApiError otherwise."""
    if not isinstance(site_id, str) or not site_id.strip():
        raise ApiError(400, "site_id: is required (a website id or domain)")
    site_id = site_id.strip().lower()
    website = (Website.select().join(Membership)
               .where((Membership.user == user)
                      & ((Website.id == site_id) | (Website.domain == site_id)))
               .order_by(Website.created_at).first())
    if website is None:
        raise ApiError(404, "site_id: no such website among yours")
    return website


class StatsQueryHandler(BaseHandler):
    """Answers one query over a website's history; the query runs off the event loop."""

    async def post(self) -> None:
        """Authenticate, resolve ``site_id``, then parse and run the query in a thread."""
        user = self.current_user
        if user is None:
            raise ApiError(401, "authentication required: a Bearer token",
                           {"WWW-Authenticate": 'Bearer realm="pulse"'})
        try:
            body = decode_body(self.request.body)
        except ValidationError as exc:
            raise ApiError(400, str(exc)) from None
        website = website_of(user, body.get("site_id"))
        try:
            result = await asyncio.to_thread(answer, body, website.id, website.timezone)
        except QueryError as exc:
            raise ApiError(400, str(exc)) from None
        result["query"]["site_id"] = body["site_id"]
        self.write_json(200, result)
