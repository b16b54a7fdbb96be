"""The database handle, chosen at run time, and the schema migrations run at start-up."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import peewee
import psycopg
from playhouse.db_url import connect

log = logging.getLogger("pulse.db")

database = peewee.DatabaseProxy()


class BaseModel(peewee.Model):
    """Base of every Pulse model: bound to the run-time database."""

    class Meta:
        database = database
        legacy_table_names = False


class SchemaVersion(BaseModel):
    """The number of migrations applied to this database."""

    version = peewee.IntegerField()


SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "full",
    "busy_timeout": 5000,
    "cache_size": -16_000,
}


def connection_lost(db: peewee.Database) -> bool:
    """Whether this thread's connection to a PostgreSQL server is known to be gone."""
    if not isinstance(db, peewee.PostgresqlDatabase) or db.is_closed():
        return False
    conn = db.connection()
    return bool(conn.closed or getattr(conn, "broken", False))


# The server ended the session before it ran the statement: admin_shutdown (a restart or
# pg_terminate_backend), crash_shutdown, cannot_connect_now.
_SESSION_ENDED = frozenset({"57P01", "57P02", "57P03"})


def _never_ran(exc: BaseException) -> bool:
    """Whether PostgreSQL said it ended the session without running the statement."""
    original = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
    return getattr(original or exc.__context__, "sqlstate", None) in _SESSION_ENDED


class PostgresDatabase(peewee.PostgresqlDatabase):
    """PostgreSQL through psycopg 3 that re-establishes a dropped connection (a server restart,
    ``pg_terminate_backend``, an idle timeout in a proxy). Outside a transaction a statement
    that failed because the connection was lost is retried once on a new connection when
    that is safe: a ``SELECT`` or ``BEGIN``, or any statement the server said it never ran.
    Otherwise (a write whose fate is unknown, or inside a transaction, which is rolled back as
    a whole) the error goes up and the next statement gets a new connection.

    After a connection attempt fails, no thread tries again for ``retry_delay`` seconds: they
    fail at once with the same reason, so an outage costs one attempt (up to the connect
    timeout) per pause instead of one per request, and the server is not flooded."""

    retry_delay = 1.0
    _unreachable_until = 0.0
    _unreachable_reason = ""

    def _connect(self) -> Any:
        if time.monotonic() < self._unreachable_until:
            raise psycopg.OperationalError(
                f"{self._unreachable_reason} (next attempt within {self.retry_delay:g} s)")
        try:
            # peewee's stubs lack _connect, the hook peewee documents for this
            conn = super()._connect()  # type: ignore[misc]
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()
            self._unreachable_reason = reason[0] if reason else type(exc).__name__
            self._unreachable_until = time.monotonic() + self.retry_delay
            raise
        self._unreachable_until = 0.0
        return conn

    def _retrying(self, call: Callable[[], Any], idempotent: bool) -> Any:
        try:
            return call()
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            if self.in_transaction() or not connection_lost(self):
                raise
            log.warning("the connection to PostgreSQL was lost (%s); reconnecting",
                        str(exc).strip().splitlines()[0] if str(exc).strip() else "closed")
            self.close()
            if not (idempotent or _never_ran(exc)):
                raise
        return call()

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        """Run ``sql``; outside a transaction a lost connection is replaced (see the class)."""
        return self._retrying(lambda: super(PostgresDatabase, self).execute_sql(sql, params),
                              sql.lstrip()[:6].upper() == "SELECT")

    def begin(self, isolation_level: Any = None) -> None:
        """``BEGIN`` on a live connection (the first statement after a drop finds it out)."""
        self._retrying(lambda: super(PostgresDatabase, self).begin(isolation_level), True)


POSTGRES_CONNECT_TIMEOUT = 5  # seconds; a server that does not answer must not hang a thread


def postgres_database(url: str) -> PostgresDatabase:
    """The database of a ``postgresql://user:password@host:port/name?option=…`` URL."""
    parts = urlsplit(url)
    params: dict[str, Any] = dict(parse_qsl(parts.query))
    params.setdefault("connect_timeout", POSTGRES_CONNECT_TIMEOUT)
    params["application_name"] = params.get("application_name", "pulse")
    if parts.username:
        params["user"] = unquote(parts.username)
    if parts.password:
        params["password"] = unquote(parts.password)
    if parts.hostname:
        params["host"] = parts.hostname
    if parts.port:
        params["port"] = parts.port
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ValueError("a PostgreSQL URL needs a database name: postgresql://host/NAME")
    return PostgresDatabase(name, prefer_psycopg3=True, autoconnect=True, **params)


def open_database(url: str) -> peewee.Database:
    """Connect to ``url`` (sqlite:///… or postgresql://…) and bind the models to it."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        db: peewee.Database = peewee.SqliteDatabase(str(path), pragmas=SQLITE_PRAGMAS)
    elif url.split("://", 1)[0] in ("postgres", "postgresql"):
        db = postgres_database(url)
    else:
        db = connect(url)
    database.initialize(db)
    return db


def migrate(migrations: Sequence[Callable[[peewee.Database], None]]) -> int:
    """Apply the migrations this database has not seen yet; return the schema version."""
    db = database.obj
    with db.atomic():
        db.create_tables([SchemaVersion], safe=True)
        row = SchemaVersion.select().first()
        current = row.version if row else 0
        for number, step in enumerate(migrations[current:], start=current + 1):
            log.info("applying schema migration %d (%s)", number, step.__name__)
            step(db)
        if row is None:
            SchemaVersion.create(version=len(migrations))
        elif row.version != len(migrations):
            SchemaVersion.update(version=len(migrations)).execute()
    return len(migrations)


def delete_in_batches(model: type[peewee.Model], where: peewee.Expression,
                      order: peewee.Field, batch: int, pause: float,
                      key: peewee.Field | None = None) -> int:
    """Delete the rows ``where`` selects, ``batch`` at a time in ``order``, each batch its own
    short transaction followed by a ``pause``; return how many went. For tables too big to
    delete from in one transaction (on SQLite it would hold the one write lock throughout)."""
    key = order if key is None else key
    removed = 0
    while True:
        with database.atomic():
            oldest = model.select(key).where(where).order_by(order).limit(batch)
            count = model.delete().where(where & key.in_(oldest)).execute()
        removed += count
        if count < batch:
            return removed
        time.sleep(pause)
