"""The real-service fixtures themselves: a private PostgreSQL database and Redis prefix."""

from __future__ import annotations

import psycopg
import redis

from tests.real_services import RedisTarget, create_postgres_database, drop_postgres_database


def test_postgres_database_is_private_and_dropped() -> None:
    url = create_postgres_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    drop_postgres_database(url)
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/test", autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert row is None


def test_redis_prefix_is_cleaned(redis_target: RedisTarget) -> None:
    client = redis.Redis.from_url(redis_target.url)
    client.set(redis_target.prefix + "k", "v")
    assert client.get(redis_target.prefix + "k") == b"v"
    client.close()
