"""Pulse's peewee models and read-side queries."""

from models.db import BaseModel, database, migrate, open_database
from models.entities import (
    MIGRATIONS,
    ApiToken,
    Event,
    EventCounter,
    Membership,
    Salt,
    Session,
    User,
    Visit,
    Website,
    now_ms,
)
from models.records import EventRecord, NewEvent


def setup_database(url: str) -> None:
    """Open the database at ``url`` and bring its schema up to date."""
    open_database(url)
    migrate(MIGRATIONS)


__all__ = [
    "ApiToken", "BaseModel", "Event", "EventCounter", "EventRecord", "Membership", "NewEvent",
    "Salt", "Session", "User", "Visit", "Website", "database", "migrate", "now_ms",
    "open_database", "setup_database",
]
