"""Real PostgreSQL and Redis for tests: a fresh database or key prefix per test, dropped after.

Where a service is missing, the test skips with a message that says what to start; under
``PULSE_REQUIRE_SERVICES=1`` (which ``.ci/run`` sets) it fails instead. Never mocks.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "PULSE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def services_required() -> bool:
    """Whether a missing service fails the test instead of skipping it."""
    return os.environ.get("PULSE_REQUIRE_SERVICES", "") == "1"


def missing(what: str, how: str) -> None:
    """Skip (or, when services are required, fail) because ``what`` is not reachable."""
    message = f"{what} is not reachable: {how}"
    if services_required():
        pytest.fail(message + " (PULSE_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def create_postgres_database() -> str:
    """A new, empty PostgreSQL database; returns its URL (drop it with drop_postgres_database)."""
    try:
        import psycopg
    except ImportError:
        missing("psycopg", "pip install 'psycopg[binary,pool]'")
        raise
    name = "pulse_t_" + secrets.token_hex(6)
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        missing(f"PostgreSQL at {POSTGRES_ADMIN_URL}",
                f"start PostgreSQL 15 there or set PULSE_TEST_POSTGRES_URL ({exc})")
    return _with_database(POSTGRES_ADMIN_URL, name)


def drop_postgres_database(url: str) -> None:
    """Drop a database made by create_postgres_database, closing its connections."""
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    if not name.startswith("pulse_t_"):
        raise ValueError(f"refusing to drop {name!r}: not a test database")
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database of this test's own, dropped after it."""
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@dataclass(frozen=True)
class RedisTarget:
    """A Redis server and the key prefix that is this test's own."""

    url: str
    prefix: str


def delete_redis_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_target() -> Iterator[RedisTarget]:
    """A reachable Redis and a fresh key prefix, whose keys are deleted after the test."""
    try:
        import redis
    except ImportError:
        missing("redis-py", "pip install redis")
        raise
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        missing(f"Redis at {REDIS_URL}", f"start Redis 7 there or set PULSE_TEST_REDIS_URL ({exc})")
    finally:
        client.close()
    target = RedisTarget(REDIS_URL, "pulse-t-" + secrets.token_hex(6) + ":")
    try:
        yield target
    finally:
        delete_redis_prefix(target.url, target.prefix)
