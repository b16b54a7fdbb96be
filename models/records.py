"""Events as small typed records: what the writer stores and the hub broadcasts."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from models.channels import NO_CAMPAIGN, Campaign

EVENT_COLUMNS = (
    "website_id", "ts", "event_type", "pathname", "visitor_id", "session_id", "referrer",
    "source", "hostname", "title", "screen_width", "device", "browser", "os", "country", "props",
    "visit_id",
)


@dataclass(slots=True)
class NewEvent:
    """A validated, enriched event waiting to be stored (it has no id yet)."""

    website_id: str
    ts: int
    event_type: str
    pathname: str
    visitor_id: str
    session_id: str
    referrer: str = ""
    source: str = "direct"
    hostname: str = ""
    title: str = ""
    screen_width: int | None = None
    device: str = ""
    browser: str = ""
    os: str = ""
    country: str = ""
    props: dict[str, Any] = field(default_factory=dict)
    # What reports need: the visit this event belongs to (set by models.visits.update_visits in
    # the writer's transaction), and the landing page's campaign and channel (kept on the visit).
    visit_id: int | None = None
    campaign: Campaign = NO_CAMPAIGN
    channel: str = "Direct"

    def row(self) -> dict[str, Any]:
        """The database row for this event."""
        return {
            "website": self.website_id, "ts": self.ts, "event_type": self.event_type,
            "pathname": self.pathname, "visitor_id": self.visitor_id,
            "session_id": self.session_id, "referrer": self.referrer, "source": self.source,
            "hostname": self.hostname, "title": self.title, "screen_width": self.screen_width,
            "device": self.device, "browser": self.browser, "os": self.os,
            "country": self.country,
            "props": json.dumps(self.props, ensure_ascii=False, separators=(",", ":")),
            "visit_id": self.visit_id,
        }

    def stored(self, event_id: int) -> EventRecord:
        """The committed record of this event, now that it has ``event_id``."""
        return EventRecord(
            event_id, self.website_id, self.ts, self.event_type, self.pathname, self.visitor_id,
            self.session_id, self.referrer, self.source, self.hostname, self.title,
            self.screen_width, self.device, self.browser, self.os, self.country, self.props,
        )


@lru_cache(maxsize=256)
def _iso_second(second: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a UTC epoch second (events of one second share it)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def iso_ms(ts: int) -> str:
    """An epoch-milliseconds time as ISO 8601 UTC with milliseconds and a ``Z``."""
    second, ms = divmod(ts, 1000)
    return f"{_iso_second(second)}.{ms:03d}Z"


@dataclass(slots=True, frozen=True)
class EventRecord:
    """A committed event, as broadcast to live subscribers."""

    id: int
    website_id: str
    ts: int
    event_type: str
    pathname: str
    visitor_id: str
    session_id: str
    referrer: str
    source: str
    hostname: str
    title: str
    screen_width: int | None
    device: str
    browser: str
    os: str
    country: str
    props: dict[str, Any]

    @property
    def timestamp(self) -> datetime:
        """The event's UTC time."""
        return datetime.fromtimestamp(self.ts / 1000, UTC)

    def to_json(self) -> dict[str, Any]:
        """The public JSON form of the event (the ``data`` of a ``new_event`` frame)."""
        return {
            "id": self.id,
            "website_id": self.website_id,
            "timestamp": iso_ms(self.ts),
            "event_type": self.event_type,
            "pathname": self.pathname,
            "visitor_id": self.visitor_id,
            "session_id": self.session_id,
            "referrer": self.referrer,
            "source": self.source,
            "hostname": self.hostname,
            "title": self.title,
            "device": self.device,
            "browser": self.browser,
            "os": self.os,
            "country": self.country,
            "props": self.props,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> EventRecord:
        """Build a record from an ``Event`` row fetched with ``.dicts()``."""
        return cls(
            row["id"], row["website"], row["ts"], row["event_type"], row["pathname"],
            row["visitor_id"], row["session_id"], row["referrer"], row["source"],
            row["hostname"], row["title"], row["screen_width"], row["device"], row["browser"],
            row["os"], row["country"], json.loads(row["props"] or "{}"),
        )
