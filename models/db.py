"""The database handle, chosen at run time, and the schema migrations run at start-up."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import peewee
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


def open_database(url: str) -> peewee.Database:
    """Connect to ``url`` (sqlite:///… or postgresql://…) and bind the models to it."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        db: peewee.Database = peewee.SqliteDatabase(str(path), pragmas=SQLITE_PRAGMAS)
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
