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
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as alter_tables

from models.db import BaseModel
from models.records import EVENT_FIELDS


def now_ms() -> int:
    """The current UTC time in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


class User(BaseModel):
    """Someone who signs in to the panel; passwords are stored as argon2id hashes only."""

    email = peewee.CharField(max_length=254, unique=True)
    password_hash = peewee.CharField(max_length=255)
    is_admin = peewee.BooleanField(default=False)
    created_at = peewee.BigIntegerField(default=now_ms)
    theme = peewee.CharField(max_length=8, default="auto")  # the panel's: auto, dark or light

    @classmethod
    def by_email(cls, email: str) -> User | None:
        """The user with this email (case-insensitive), if any."""
        return cls.get_or_none(cls.email == email.strip().lower())

    def save_theme(self, theme: str) -> None:
        """Remember the panel theme this user chose (one of THEMES)."""
        if theme not in THEMES:
            raise ValueError(f"unknown theme {theme!r}")
        self.theme = theme
        self.save(only=[User.theme])


THEMES = ("auto", "dark", "light")  # auto follows the system's preference


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
    """One tracked pageview or custom event, enriched on the server; no IP, no User-Agent.
    Its columns are ``models.records.EventFields`` (checked below), plus ``id`` and ``seq``."""

    id = peewee.BigAutoField()  # storage order only; the public id is ``seq``
    website = peewee.ForeignKeyField(Website, backref="events", on_delete="CASCADE",
                                     index=False)
    seq = peewee.BigIntegerField()  # 1, 2, 3… per website, assigned inside the commit
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
    interactive = peewee.BooleanField(default=True)  # False: does not end a bounce (Plausible)
    revenue_amount = peewee.DecimalField(max_digits=20, decimal_places=6, null=True,
                                         auto_round=False)
    revenue_currency = peewee.CharField(max_length=3, null=True)  # ISO 4217
    visit_id = peewee.BigIntegerField(null=True)  # models.visits.Visit; null before migration 5

    class Meta:
        indexes = (
            (("website", "ts"), False),
            (("website", "seq"), True),
            # reports filtered by page: the visits with a view of it, from the index alone
            (("website", "pathname", "ts", "visit_id"), False),  # migration 8
        )

    @property
    def timestamp(self) -> datetime:
        """The event's UTC time."""
        return datetime.fromtimestamp(self.ts / 1000, UTC)

    def props_dict(self) -> dict[str, Any]:
        """The custom properties as a dict."""
        return json.loads(self.props or "{}")


def _check_event_columns() -> None:
    """The event table must hold exactly the fields of ``EventFields`` (plus id and seq)."""
    columns = {f.column_name for f in Event._meta.sorted_fields} - {"id", "seq"}
    if columns != set(EVENT_FIELDS):
        raise RuntimeError(
            "the Event model and models.records.EventFields disagree: "
            f"only in Event: {sorted(columns - set(EVENT_FIELDS))}, "
            f"only in EventFields: {sorted(set(EVENT_FIELDS) - columns)}")


_check_event_columns()


class EventCounter(BaseModel):
    """The last sequence number given to one website's events. The writer bumps it in the
    transaction that stores the events, which serialises the writers of one website."""

    website = peewee.ForeignKeyField(Website, primary_key=True, on_delete="CASCADE")
    last_seq = peewee.BigIntegerField(default=0)


DAY_MS = 86_400_000


class Visit(BaseModel):
    """One visit: a visitor's events at most 30 minutes apart, kept up to date by the writer
    (models.visits.update_visits) in the transaction that stores the events."""

    id = peewee.BigAutoField()
    website = peewee.ForeignKeyField(Website, backref="visits", on_delete="CASCADE",
                                     index=False)
    visitor_id = peewee.CharField(max_length=64)
    start_ts = peewee.BigIntegerField()  # UTC ms of the first event
    end_ts = peewee.BigIntegerField()  # UTC ms of the last event (engagement included)
    # end_ts // 1 day: what the writer's look-up of open visits is indexed by (an index on
    # end_ts itself moved on every event of the visit; this one moves once a day at most)
    end_day = peewee.IntegerField(default=0)
    entry_page = peewee.CharField(max_length=2048)
    exit_page = peewee.CharField(max_length=2048)
    pageviews = peewee.IntegerField(default=0)
    events = peewee.IntegerField(default=0)  # pageviews and custom events, not engagement
    interactions = peewee.IntegerField(default=0)  # interactive custom events
    bounce = peewee.IntegerField(default=1)  # 1: at most one pageview, no interactive event
    duration = peewee.BigIntegerField(default=0)  # ms, end − start; 0 for a bounce
    source = peewee.CharField(max_length=100, default="direct")
    referrer = peewee.CharField(max_length=2048, default="")
    channel = peewee.CharField(max_length=32, default="Direct")
    utm_source = peewee.CharField(max_length=100, default="")
    utm_medium = peewee.CharField(max_length=100, default="")
    utm_campaign = peewee.CharField(max_length=100, default="")
    utm_term = peewee.CharField(max_length=100, default="")
    utm_content = peewee.CharField(max_length=100, default="")
    country = peewee.CharField(max_length=2, default="")
    device = peewee.CharField(max_length=16, default="")
    browser = peewee.CharField(max_length=64, default="")
    os = peewee.CharField(max_length=64, default="")

    class Meta:
        indexes = (
            (("website", "start_ts"), False),
            (("website", "visitor_id", "end_day"), False),
        )


class Rollup(BaseModel):
    """Daily totals of one website per dimension value (models.stats.rollups): what the
    reports of closed days read instead of raw visits and events."""

    website = peewee.ForeignKeyField(Website, on_delete="CASCADE", index=False)
    day = peewee.IntegerField()  # days since 1970-01-01 in the website's time zone
    dimension = peewee.CharField(max_length=32)  # "" for the day's totals, else visit:… event:…
    value = peewee.CharField(max_length=2048, default="")
    visitors = peewee.IntegerField(default=0)
    visits = peewee.IntegerField(default=0)
    pageviews = peewee.IntegerField(default=0)
    events = peewee.IntegerField(default=0)
    bounces = peewee.IntegerField(default=0)
    duration = peewee.BigIntegerField(default=0)
    visit_pageviews = peewee.IntegerField(default=0)
    persistent = peewee.IntegerField(default=0)  # visitors whose id is not a daily one

    class Meta:
        indexes = ((("website", "dimension", "day"), False),)


class PageRollup(BaseModel):
    """Daily totals of one website per page and dimension value (models.stats.rollups): what
    the reports filtered by one page (``event:page is P``) read for closed days. A row counts
    the visits with an event on that page that day, grouped by a visit dimension (or, for
    ``event:goal``, the page's custom events by name)."""

    id = peewee.BigAutoField()
    website = peewee.ForeignKeyField(Website, on_delete="CASCADE", index=False)
    day = peewee.IntegerField()
    page = peewee.CharField(max_length=2048)
    dimension = peewee.CharField(max_length=32)
    value = peewee.CharField(max_length=2048, default="")
    visitors = peewee.IntegerField(default=0)
    visits = peewee.IntegerField(default=0)
    pageviews = peewee.IntegerField(default=0)  # the page's views by these visits
    events = peewee.IntegerField(default=0)  # the page's events (not engagement)
    bounces = peewee.IntegerField(default=0)
    duration = peewee.BigIntegerField(default=0)
    visit_pageviews = peewee.IntegerField(default=0)
    persistent = peewee.IntegerField(default=0)

    class Meta:
        indexes = (
            (("website", "page", "dimension", "day"), False),  # the reports
            (("website", "day"), False),  # rebuilding a day, deleting a website
        )


class RollupProgress(BaseModel):
    """How far a website's rollups are built: every day before ``built_until``, in ``timezone``."""

    website = peewee.ForeignKeyField(Website, primary_key=True, on_delete="CASCADE")
    timezone = peewee.CharField(max_length=64)
    built_until = peewee.IntegerField()  # day number (exclusive)


MODELS: list[type[BaseModel]] = [
    User, Website, Membership, ApiToken, Session, Salt, Event, EventCounter, Visit, Rollup,
    PageRollup, RollupProgress,
]


def create_schema(db: peewee.Database) -> None:
    """Migration 1: the first schema."""
    db.create_tables(MODELS, safe=True)


def _column_names(db: peewee.Database, table: str) -> set[str]:
    return {column.name for column in db.get_columns(table)}


def add_event_sequence(db: peewee.Database) -> None:
    """Migration 2: a per-website sequence on every event (numbered in id order) and its
    counters; the sequence replaces the global id as the events' public id."""
    db.create_tables([EventCounter], safe=True)
    if "seq" not in _column_names(db, "event"):
        db.execute_sql('ALTER TABLE "event" ADD COLUMN "seq" BIGINT NOT NULL DEFAULT 0')
    db.execute_sql(
        'UPDATE "event" SET "seq" = numbered.n FROM ('
        ' SELECT "id", ROW_NUMBER() OVER (PARTITION BY "website_id" ORDER BY "id") AS n'
        ' FROM "event") AS numbered WHERE "event"."id" = numbered."id"')
    db.execute_sql('DELETE FROM "event_counter"')
    db.execute_sql(
        'INSERT INTO "event_counter" ("website_id", "last_seq")'
        ' SELECT "website_id", MAX("seq") FROM "event" GROUP BY "website_id"')
    db.execute_sql('DROP INDEX IF EXISTS "event_website_id_id"')
    db.execute_sql('CREATE UNIQUE INDEX IF NOT EXISTS "event_website_id_seq"'
                   ' ON "event" ("website_id", "seq")')


def add_event_interactive_and_revenue(db: peewee.Database) -> None:
    """Migration 3: ``interactive`` (default true) and the revenue of an event, if any."""
    existing = _column_names(db, Event._meta.table_name)
    migrator = SchemaMigrator.from_database(db)
    table = Event._meta.table_name
    steps = [migrator.add_column(table, name, getattr(Event, name))
             for name in ("interactive", "revenue_amount", "revenue_currency")
             if name not in existing]  # a database created by migration 1 today has them
    if steps:
        alter_tables(*steps)


def add_user_theme(db: peewee.Database) -> None:
    """Migration 4: each user's panel theme (auto, dark or light)."""
    table = User._meta.table_name
    if "theme" not in _column_names(db, table):
        migrator = SchemaMigrator.from_database(db)
        alter_tables(migrator.add_column(table, "theme", peewee.CharField(max_length=8,
                                                                     default="auto")))


def add_visits(db: peewee.Database) -> None:
    """Migration 5: visits (with UTM and channel) and each event's visit, rebuilt from the
    events already stored."""
    from models.visits import rebuild_visits

    if "visit_id" not in _column_names(db, Event._meta.table_name):
        alter_tables(SchemaMigrator.from_database(db).add_column(
            Event._meta.table_name, "visit_id", Event.visit_id))
    db.create_tables([Visit], safe=True)
    rebuild_visits()


def add_rollups(db: peewee.Database) -> None:
    """Migration 6: daily rollups (built by a background task from the visits and events)."""
    db.create_tables([Rollup, RollupProgress], safe=True)


def add_page_index(db: peewee.Database) -> None:
    """Migration 7: an index for reports filtered by page (event:page)."""
    db.execute_sql('CREATE INDEX IF NOT EXISTS "event_website_id_pathname_ts" '
                   'ON "event" ("website_id", "pathname", "ts")')


def widen_page_index(db: peewee.Database) -> None:
    """Migration 8: the page index also holds each event's visit (index-only page filters)."""
    db.execute_sql('DROP INDEX IF EXISTS "event_website_id_pathname_ts"')
    db.execute_sql('CREATE INDEX IF NOT EXISTS "event_website_id_pathname_ts_visit_id" '
                   'ON "event" ("website_id", "pathname", "ts", "visit_id")')


def create_alert_tables(db: peewee.Database) -> None:
    """Migration 9: alert rules, webhooks, deliveries, alert history, share links."""
    from models.alerts import ALERT_MODELS

    db.create_tables(ALERT_MODELS, safe=True)


def add_page_rollups(db: peewee.Database) -> None:
    """Migration 10: per-page rollups; the days already rolled up are built again (raw rows
    answer meanwhile) so that they have them too."""
    db.create_tables([PageRollup], safe=True)
    db.execute_sql('DELETE FROM "rollup_progress"')
    db.execute_sql('DELETE FROM "rollup"')


def index_visits_by_end_day(db: peewee.Database) -> None:
    """Migration 11: visits' ``end_day``, and the open-visit look-up's index on it instead of
    on ``end_ts`` (which every event of a visit moved)."""
    table = Visit._meta.table_name
    if "end_day" not in _column_names(db, table):
        alter_tables(SchemaMigrator.from_database(db).add_column(table, "end_day",
                                                                 Visit.end_day))
    db.execute_sql(f'UPDATE "{table}" SET "end_day" = "end_ts" / {DAY_MS}')
    db.execute_sql('DROP INDEX IF EXISTS "visit_website_id_visitor_id_end_ts"')
    db.execute_sql('CREATE INDEX IF NOT EXISTS "visit_website_id_visitor_id_end_day" '
                   'ON "visit" ("website_id", "visitor_id", "end_day")')


MIGRATIONS = [
    create_schema, add_event_sequence, add_event_interactive_and_revenue, add_user_theme,
    add_visits, add_rollups, add_page_index, widen_page_index, create_alert_tables,
    add_page_rollups, index_visits_by_end_day,
]
