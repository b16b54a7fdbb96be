"""B9: the writer's PostgreSQL insert, four ways: multi-row INSERT, executemany (psycopg's
pipeline), COPY, INSERT … SELECT unnest(…), for batches of 1, 50 and 500 events.

Each transaction is what the writer commits: BEGIN, the website's counter bumped, the rows
inserted, COMMIT. The methods take turns transaction by transaction, so the machine's noise
falls on all alike; the figure is the median time of one transaction, and events/s from it.
"Pulse" is the writer's own ``store_batch`` (the method it keeps), measured the same way.
Needs a PostgreSQL server: PULSE_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1/test)
is used to create and drop a private database.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import os  # noqa: E402

import psycopg  # noqa: E402

from backend.ingest import writer  # noqa: E402
from bench.common import machine_facts, median, report  # noqa: E402
from models import setup_database  # noqa: E402
from models.db import database  # noqa: E402
from models.entities import Event, Website  # noqa: E402
from models.records import NewEvent  # noqa: E402

ADMIN_URL = os.environ.get("PULSE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
COLUMNS = writer._COLUMNS
COLUMN_LIST = ", ".join(f'"{c}"' for c in COLUMNS)
ROW = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"

Insert = Callable[[Any, list[tuple[Any, ...]]], None]


def multirow_insert(cur: Any, rows: list[tuple[Any, ...]]) -> None:
    """Multi-row VALUES, in power-of-two chunks of at most 256 rows (few distinct statements)."""
    start = 0
    for size in writer._chunks(len(rows), 256):
        params = [v for row in rows[start:start + size] for v in row]
        cur.execute(f'INSERT INTO "event" ({COLUMN_LIST}) VALUES ' + ", ".join([ROW] * size),
                    params)
        start += size


def executemany(cur: Any, rows: list[tuple[Any, ...]]) -> None:
    """One prepared single-row INSERT, sent for every row in one pipeline."""
    cur.executemany(f'INSERT INTO "event" ({COLUMN_LIST}) VALUES {ROW}', rows)


def copy(cur: Any, rows: list[tuple[Any, ...]]) -> None:
    """COPY … FROM STDIN (text format)."""
    with cur.copy(f'COPY "event" ({COLUMN_LIST}) FROM STDIN') as stream:
        for row in rows:
            stream.write_row(row)


def array_types() -> list[str]:
    """The PostgreSQL type of each column, for the arrays ``unnest`` takes."""
    fields = {f.column_name: f for f in Event._meta.sorted_fields}
    kinds = {"BIGINT": "bigint", "INT": "integer", "BOOL": "boolean", "DECIMAL": "numeric"}
    return [kinds.get(fields[c].field_type, "text") if c != "website_id" else "text"
            for c in COLUMNS]


def unnest(cur: Any, rows: list[tuple[Any, ...]]) -> None:
    """One INSERT … SELECT unnest(array per column)."""
    types = array_types()
    arrays = [list(column) for column in zip(*rows, strict=True)]
    selects = ", ".join(f"%s::{t}[]" for t in types)
    cur.execute(f'INSERT INTO "event" ({COLUMN_LIST}) SELECT * FROM unnest({selects})', arrays)


METHODS: dict[str, Insert] = {"multirow": multirow_insert, "executemany": executemany,
                              "copy": copy, "unnest": unnest}


def events(website_id: str, count: int, start: int) -> list[NewEvent]:
    """``count`` realistic pageviews."""
    return [NewEvent(website_id, 1_700_000_000_000 + start + i, "pageview",
                     f"/products/{(start + i) % 40}", f"v{(start + i) % 5000:05d}",
                     f"s{(start + i) % 7000:05d}", "https://www.google.com/", "google",
                     "shop.example.com", "Products — Shop", 1440, "desktop", "Chrome", "Linux",
                     "DE", {"plan": "pro"}) for i in range(count)]


def one_transaction(method: Insert, batch: Sequence[NewEvent]) -> float:
    """Seconds for one writer transaction inserting ``batch`` with ``method``."""
    db = database.obj
    started = time.perf_counter()
    with db.atomic():
        seqs = writer.next_seqs(db, batch)
        rows = [(*e.values(), seq) for e, seq in zip(batch, seqs, strict=True)]
        with db.connection().cursor() as cur:
            method(cur, rows)
    return time.perf_counter() - started


def pulse_transaction(batch: Sequence[NewEvent]) -> float:
    """Seconds for the writer's own ``store_batch``."""
    started = time.perf_counter()
    writer.store_batch(batch)
    return time.perf_counter() - started


def private_database() -> str:
    """A new database's URL on the admin server."""
    name = "pulse_bench_" + secrets.token_hex(4)
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(ADMIN_URL)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))


def drop_database(url: str) -> None:
    """Drop the database made by ``private_database``."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path[1:]}" WITH (FORCE)')


def main() -> int:
    """Run B9 and print/keep the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=500,
                        help="events per method, batch size and round")
    parser.add_argument("--sizes", default="1,50,500")
    parser.add_argument("--name", default="b9_pg_writer")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    facts = machine_facts()
    with psycopg.connect(ADMIN_URL) as conn:
        facts["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
        facts["synchronous_commit"] = conn.execute("SHOW synchronous_commit").fetchone()[0]
    url = private_database()
    rounds: list[dict[str, Any]] = []
    try:
        setup_database(url)
        website = Website.create(name="bench", domain="shop.example.com")
        counter = 0
        for r in range(args.rounds):
            row: dict[str, Any] = {}
            for size in sizes:
                runs = max(10, args.events // size)
                samples: dict[str, list[float]] = {m: [] for m in [*METHODS, "pulse"]}
                for _ in range(runs):
                    for name, method in METHODS.items():
                        batch = events(website.id, size, counter)
                        counter += size
                        samples[name].append(one_transaction(method, batch))
                    batch = events(website.id, size, counter)
                    counter += size
                    samples["pulse"].append(pulse_transaction(batch))
                row[str(size)] = {name: {"median_ms": median(s) * 1000,
                                         "events_per_s": size / median(s)}
                                  for name, s in samples.items()}
            rounds.append(row)
            print(f"round {r + 1}: " + " | ".join(
                f"{size}: " + ", ".join(f"{m} {row[str(size)][m]['median_ms']:.3f} ms"
                                        for m in [*METHODS, "pulse"])
                for size in sizes), flush=True)
    finally:
        if not database.obj.is_closed():
            database.obj.close()
        drop_database(url)
    summary: dict[str, Any] = {}
    for size in sizes:
        per = {m: median([r[str(size)][m]["median_ms"] for r in rounds])
               for m in [*METHODS, "pulse"]}
        base = per["multirow"]
        summary[str(size)] = {m: {"median_ms": v, "events_per_s": size / (v / 1000),
                                  "ratio_to_multirow": v / base} for m, v in per.items()}
        summary[str(size)]["fastest"] = min(METHODS, key=lambda m: per[m])
    return report(args.name, args, facts, rounds, summary)


if __name__ == "__main__":
    sys.exit(main())
