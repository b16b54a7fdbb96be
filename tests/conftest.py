"""Shared fixtures: settings on tmp_path, a fresh database, the services and the Tornado app."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from nicegui.testing.general_fixtures import (  # noqa: F401  (NiceGUI's ini option, storage dir)
    pytest_addoption,
    pytest_configure,
)

from backend.auth import create_user
from backend.server import build_services, make_app
from backend.services import Services
from backend.settings import Settings
from models.db import database
from models.entities import ApiToken, User, Website
from models.websites import create_website
from tests.real_services import (  # noqa: F401  (postgres_url, redis_target: fixtures)
    create_postgres_database,
    drop_postgres_database,
    postgres_url,
    redis_target,
)

BROWSER_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
              "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36")


# PULSE_TEST_DATABASE=postgresql runs the tests on PostgreSQL: each test gets a fresh database
# (tests/real_services.py) instead of a SQLite file in its data dir. `make test` runs the
# store, writer, tracking, live-stream and panel tests that way after the whole suite on SQLite.
ON_POSTGRES = os.environ.get("PULSE_TEST_DATABASE", "sqlite").strip().lower() in (
    "postgresql", "postgres")

sqlite_only = pytest.mark.skipif(
    ON_POSTGRES, reason="SQLite-only (reads the SQLite file or its pragmas directly)")


@pytest.fixture
def store_url() -> Iterator[str]:
    """The test's database URL: "" (SQLite in the data dir) or a fresh PostgreSQL database."""
    if not ON_POSTGRES:
        yield ""
        return
    url = create_postgres_database()
    try:
        yield url
    finally:
        if database.obj is not None and not database.obj.is_closed():  # this thread's
            database.obj.close()
        drop_postgres_database(url)


@pytest.fixture
def settings(tmp_path: Any, store_url: str) -> Settings:
    """Settings for one test: its own data dir and database, no rate limits, short heartbeats."""
    return Settings(data_dir=tmp_path, database_url=store_url,
                    secret="test-secret-" + "x" * 20, rate_per_ip=0, rate_per_website=0,
                    sse_heartbeat=30.0, batch_delay_ms=1.0)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    """The services of one server, on a fresh database."""
    built = build_services(settings)
    yield built
    built.hub.clear()
    if not database.obj.is_closed():
        database.obj.close()


@pytest.fixture
def app(services: Services) -> Any:
    """The Tornado application (pytest-tornado serves it on a free port)."""
    return make_app(services)


@pytest.fixture
def admin(services: Services) -> User:
    """An admin user."""
    return create_user("admin@example.com", "correct horse battery", is_admin=True)


@pytest.fixture
def website(admin: User) -> Website:
    """A website the admin owns."""
    return create_website("example.com", name="Example", origins=["http://localhost:3000"])


@pytest.fixture
def token(admin: User) -> str:
    """An API token of the admin."""
    return ApiToken.issue(admin, "tests")[1]


def event_body(website_id: str, **fields: Any) -> bytes:
    """A tracking body for ``website_id``."""
    body = {"website_id": website_id, "event_type": "pageview", "pathname": "/",
            "visitor_id": "v1", "session_id": "s1"}
    body.update(fields)
    return json.dumps(body).encode()


async def post_event(http_client: Any, base_url: str, body: bytes, **headers: str) -> Any:
    """POST a tracking body as a browser would; returns the response (errors included)."""
    sent = {"Content-Type": "application/json", "User-Agent": BROWSER_UA}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return await http_client.fetch(base_url + "/web/analytics/track", method="POST", body=body,
                                   headers=sent, raise_error=False)
