"""Migration 2 gives each user a panel theme: an existing database with accounts upgrades in
place (SQLite and PostgreSQL), everyone starts on "auto" (the system's preference)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.db import SchemaVersion, database, migrate, open_database
from models.entities import MIGRATIONS, User, add_user_theme, create_schema


def database_before_themes(url: str) -> None:
    """A database as migration 1 left it (no theme column), with one account in it."""
    db = open_database(url)
    migrate([create_schema])
    table = User._meta.table_name
    db.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN theme')
    db.execute_sql(f'INSERT INTO "{table}" (email, password_hash, is_admin, created_at) '
                   "VALUES ('old@example.com', 'x', TRUE, 1)")


def upgraded_keeps_the_account(url: str) -> None:
    database_before_themes(url)
    assert migrate(MIGRATIONS) == len(MIGRATIONS)
    assert add_user_theme in MIGRATIONS
    assert SchemaVersion.get().version == len(MIGRATIONS)
    person = User.get(User.email == "old@example.com")
    assert person.theme == "auto" and person.is_admin
    person.save_theme("dark")
    assert User.get(User.email == "old@example.com").theme == "dark"
    with pytest.raises(ValueError):
        person.save_theme("purple")
    assert migrate(MIGRATIONS) == len(MIGRATIONS)  # nothing left to do the second time
    database.obj.close()


def test_sqlite_database_upgrades_with_its_accounts(tmp_path: Path) -> None:
    upgraded_keeps_the_account(f"sqlite:///{tmp_path / 'pulse.db'}")


def test_postgresql_database_upgrades_with_its_accounts(postgres_url: str) -> None:
    upgraded_keeps_the_account(postgres_url)


def test_a_new_database_gets_the_theme_at_once(tmp_path: Path) -> None:
    open_database(f"sqlite:///{tmp_path / 'fresh.db'}")
    migrate(MIGRATIONS)  # migration 1 already made the column: migration 2 must not fail
    assert User.create(email="new@example.com", password_hash="x").theme == "auto"
    database.obj.close()
