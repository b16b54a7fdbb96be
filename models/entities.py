"""Pulse's stored records: users, websites, memberships, API tokens, salts and events."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import peewee

from models.db import BaseModel


def now_ms() -> int:
    """The current UTC time in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


class User(BaseModel):
    """Someone who signs in to the panel; passwords are stored as argon2id hashes only."""

    email = peewee.CharField(max_length=254, unique=True)
    password_hash = peewee.CharField(max_length=255)
    is_admin = peewee.BooleanField(default=False)
    created_at = peewee.BigIntegerField(default=now_ms)

    @classmethod
    def by_email(cls, email: str) -> User | None:
        """The user with this email (case-insensitive), if any."""
        return cls.get_or_none(cls.email == email.strip().lower())


def new_website_id() -> str:
    """A random, unguessable website id."""
    return str(uuid.uuid4())


class Website(BaseModel):
    """A tracked website; events may only come from its own origins."""

    id = peewee.CharField(primary_key=True, max_length=36, default=new_website_id)
    name = peewee.CharField(max_length=200)
    domain = peewee.CharField(max_length=253)
    allowed_origins = peewee.TextField(default="")
    timezone = peewee.CharField(max_length=64, default="UTC")
    created_at = peewee.BigIntegerField(default=now_ms)

    def origins(self) -> list[str]:
        """The extra origins (scheme://host[:port]) allowed besides the domain itself."""
        return [o.strip().rstrip("/") for o in self.allowed_origins.replace(",", "\n").split("\n")
                if o.strip()]

    def allows_origin(self, origin: str) -> bool:
        """Whether a browser at ``origin`` may post events for this website."""
        origin = origin.rstrip("/")
        if origin in self.origins():
            return True
        host = (urlsplit(origin).hostname or "").lower()
        domain = self.domain.lower()
        return bool(host) and (host == domain or host.endswith("." + domain))

    @classmethod
    def visible_to(cls, user: User) -> peewee.ModelSelect[Website]:
        """The websites ``user`` is a member of."""
        return (cls.select().join(Membership).where(Membership.user == user)
                .order_by(cls.name, cls.domain))


class Membership(BaseModel):
    """Which user may see which website."""

    user = peewee.ForeignKeyField(User, backref="memberships", on_delete="CASCADE")
    website = peewee.ForeignKeyField(Website, backref="memberships", on_delete="CASCADE")
    role = peewee.CharField(max_length=16, default="viewer")  # owner | viewer

    class Meta:
        indexes = ((("user", "website"), True),)

    @classmethod
    def allows(cls, user: User, website_id: str) -> bool:
        """Whether ``user`` may see ``website_id``."""
        return cls.select().where(
            (cls.user == user) & (cls.website == website_id)).exists()


def hash_token(token: str) -> str:
    """The stored form of an API token (tokens are random, so a plain SHA-256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(BaseModel):
    """A bearer token for programs; only its hash is stored, the token is shown once."""

    user = peewee.ForeignKeyField(User, backref="tokens", on_delete="CASCADE")
    name = peewee.CharField(max_length=100, default="")
    token_hash = peewee.CharField(max_length=64, unique=True)
    prefix = peewee.CharField(max_length=12)
    created_at = peewee.BigIntegerField(default=now_ms)
    last_used_at = peewee.BigIntegerField(null=True)
    revoked_at = peewee.BigIntegerField(null=True)

    @classmethod
    def issue(cls, user: User, name: str = "") -> tuple[ApiToken, str]:
        """Create a token for ``user``; return the record and the token text (shown once)."""
        token = "pulse_" + secrets.token_urlsafe(32)
        record = cls.create(user=user, name=name, token_hash=hash_token(token), prefix=token[:12])
        return record, token

    @classmethod
    def authenticate(cls, token: str) -> User | None:
        """The user a live, unrevoked token belongs to, or None."""
        record = (cls.select(cls, User).join(User)
                  .where((cls.token_hash == hash_token(token)) & cls.revoked_at.is_null())
                  .first())
        if record is None:
            return None
        now = now_ms()
        if record.last_used_at is None or now - record.last_used_at > 60_000:  # ≤ 1 write/min
            cls.update(last_used_at=now).where(cls.token_hash == record.token_hash).execute()
        return record.user

    def revoke(self) -> None:
        """Make this token unusable from now on."""
        self.revoked_at = now_ms()
        self.save()


class Session(BaseModel):
    """A signed-in panel session of one browser (NiceGUI's signed, HttpOnly browser cookie
    names the browser); the database keeps only a hash of the browser id."""

    browser_hash = peewee.CharField(max_length=64, primary_key=True)
    user = peewee.ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    created_at = peewee.BigIntegerField(default=now_ms)
    expires_at = peewee.BigIntegerField()

    @classmethod
    def start(cls, user: User, browser_id: str, lifetime_seconds: float) -> None:
        """Sign ``browser_id`` in as ``user`` (replacing any earlier session of that browser)."""
        key = hash_token("browser:" + browser_id)
        with cls._meta.database.atomic():
            cls.delete().where(cls.browser_hash == key).execute()
            cls.create(browser_hash=key, user=user,
                       expires_at=now_ms() + int(lifetime_seconds * 1000))

    @classmethod
    def user_for(cls, browser_id: str) -> User | None:
        """The user signed in on this browser, or None (never signed in, out, or expired)."""
        record = (cls.select(cls, User).join(User)
                  .where((cls.browser_hash == hash_token("browser:" + browser_id))
                         & (cls.expires_at > now_ms()))
                  .first())
        return record.user if record else None

    @classmethod
    def end(cls, browser_id: str) -> None:
        """Sign this browser out."""
        cls.delete().where(cls.browser_hash == hash_token("browser:" + browser_id)).execute()


class Salt(BaseModel):
    """The random salt of one UTC day for anonymous visitor ids; old days are deleted."""

    day = peewee.CharField(max_length=10, primary_key=True)  # YYYY-MM-DD
    value = peewee.CharField(max_length=64)

    @classmethod
    def for_day(cls, day: str) -> str:
        """The salt of ``day``, created on first use; salts older than yesterday are dropped."""
        with cls._meta.database.atomic():
            cls.delete().where(cls.day < _previous_day(day)).execute()
            cls.insert(day=day, value=secrets.token_hex(32)).on_conflict_ignore().execute()
            return cls.get_by_id(day).value


def _previous_day(day: str) -> str:
    moment = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() - 86_400
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d")


class Event(BaseModel):
    """One tracked pageview or custom event, enriched on the server; no IP, no User-Agent."""

    id = peewee.BigAutoField()
    website = peewee.ForeignKeyField(Website, backref="events", on_delete="CASCADE",
                                     index=False)
    ts = peewee.BigIntegerField()  # UTC, milliseconds since the epoch
    event_type = peewee.CharField(max_length=64)
    pathname = peewee.CharField(max_length=2048)
    visitor_id = peewee.CharField(max_length=64)
    session_id = peewee.CharField(max_length=64)
    referrer = peewee.CharField(max_length=2048, default="")
    source = peewee.CharField(max_length=100, default="direct")
    hostname = peewee.CharField(max_length=253, default="")
    title = peewee.CharField(max_length=500, default="")
    screen_width = peewee.IntegerField(null=True)
    device = peewee.CharField(max_length=16, default="")
    browser = peewee.CharField(max_length=64, default="")
    os = peewee.CharField(max_length=64, default="")
    country = peewee.CharField(max_length=2, default="")
    props = peewee.TextField(default="{}")

    class Meta:
        indexes = (
            (("website", "ts"), False),
            (("website", "id"), False),
        )

    @property
    def timestamp(self) -> datetime:
        """The event's UTC time."""
        return datetime.fromtimestamp(self.ts / 1000, UTC)

    def props_dict(self) -> dict[str, Any]:
        """The custom properties as a dict."""
        return json.loads(self.props or "{}")


MODELS: list[type[BaseModel]] = [User, Website, Membership, ApiToken, Session, Salt, Event]


def create_schema(db: peewee.Database) -> None:
    """Migration 1: the first schema."""
    db.create_tables(MODELS, safe=True)


def create_alert_tables(db: peewee.Database) -> None:
    """Migration (issue 11): alert rules, webhooks, deliveries, alert history, share links."""
    from models.alerts import ALERT_MODELS

    db.create_tables(ALERT_MODELS, safe=True)


MIGRATIONS = [create_schema, create_alert_tables]
