"""The all-websites view's numbers: each website's current visitors and last 30 minutes, for
many websites in two grouped queries (run them off the event loop)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, cast

import peewee

from models.entities import Event, Membership, User, Website, now_ms

SPARK_MINUTES = 30


@dataclass
class SiteSummary:
    """One row of the view."""

    id: str
    name: str
    domain: str
    current: int = 0
    minutes: list[int] = field(default_factory=lambda: [0] * SPARK_MINUTES)  # oldest first


def natural_key(text: str) -> list[object]:
    """'Site 2' before 'Site 10': digit runs compare as numbers, the rest case-insensitively."""
    return [int(part) if part.isdigit() else part.casefold()
            for part in re.split(r"(\d+)", text)]


def websites_summary(user: User, window_ms: int, now: int | None = None) -> list[SiteSummary]:
    """Every website ``user`` is a member of, with its current visitors (distinct sessions in
    the live window) and pageviews per minute over the last 30 minutes."""
    now = now_ms() if now is None else now
    websites = (Website.select(Website.id, Website.name, Website.domain).join(Membership)
                .where(Membership.user == user).tuples())
    rows = {wid: SiteSummary(wid, name, domain) for wid, name, domain in cast(Any, websites)}
    if not rows:
        return []
    ids = Membership.select(Membership.website).where(Membership.user == user)
    last_minute = now // 60_000
    since = (last_minute - SPARK_MINUTES + 1) * 60_000
    minute = Event.ts / 60_000  # integer division in SQLite and PostgreSQL alike
    per_minute = (Event.select(Event.website, minute.alias("minute"),
                               peewee.fn.COUNT(Event.id).alias("n"))
                  .where(Event.website.in_(ids) & (Event.ts >= since)
                         & (Event.event_type == "pageview"))
                  .group_by(Event.website, minute).tuples())
    for website_id, m, n in cast(Any, per_minute):
        index = int(m) - (last_minute - SPARK_MINUTES + 1)
        if 0 <= index < SPARK_MINUTES:
            rows[website_id].minutes[index] = int(n)
    session = peewee.Case(None, [(Event.session_id == "", Event.visitor_id)], Event.session_id)
    current = (Event.select(Event.website, peewee.fn.COUNT(peewee.fn.DISTINCT(session)))
               .where(Event.website.in_(ids) & (Event.ts > now - window_ms))
               .group_by(Event.website).tuples())
    for website_id, n in cast(Any, current):
        rows[website_id].current = int(n)
    return list(rows.values())
