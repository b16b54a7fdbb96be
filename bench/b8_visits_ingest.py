"""B8 (ingest side) — what keeping visits at ingest costs the writer's store path: the same
batches through ``store_batch`` without visits (the baseline), with visit changes written with
every batch (``each``: PostgreSQL's way) and gathered for a second (``gathered``: SQLite's
way), in the same run, in turn, several rounds; events per second, median ratios.

In-process and without HTTP: the store path alone, where the cost lands. B1 measures the
whole ingest path (HTTP included) and is the figure to compare before and after.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import backend.ingest.writer as writer  # noqa: E402
from bench.common import machine_facts, median, report  # noqa: E402
from models import setup_database  # noqa: E402
from models.db import database  # noqa: E402
from models.records import NewEvent  # noqa: E402
from models.visits import Staged, VisitBook  # noqa: E402
from models.websites import create_website  # noqa: E402


class NoVisits(VisitBook):
    """The baseline: events stored without visits."""

    def stage(self, events: Any, *, flush: bool = True) -> Staged:
        return Staged({}, {}, False)


SIDES = {"baseline": NoVisits, "each": VisitBook, "gathered": lambda: VisitBook(1.0)}


def run(side: str, events: int, batch: int, visitors: int, seed: int) -> float:
    """Events per second through store_batch on a fresh SQLite database."""
    setup_database(f"sqlite:///{tempfile.mkdtemp()}/b8i.db")
    website = create_website("b8i.example").id
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    batches = [[NewEvent(website_id=website, ts=now + b * batch + i, event_type="pageview",
                         pathname=f"/page/{rng.randrange(500)}",
                         visitor_id=f"h-{rng.randrange(visitors)}", session_id="s",
                         source="google", country="DE", device="desktop")
                for i in range(batch)] for b in range(events // batch)]
    book = SIDES[side]()
    try:
        started = time.perf_counter()
        for one in batches:
            writer.store_batch(one, visits=book)
        book.write_pending()
        elapsed = time.perf_counter() - started
    finally:
        database.obj.close()
    return len(batches) * batch / elapsed


def main() -> int:
    """Run both sides, alternating, and keep the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--visitors", type=int, default=2_000)
    parser.add_argument("--name", default="b8_visits_ingest")
    args = parser.parse_args()
    facts = machine_facts()
    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        order = list(SIDES)[r % 3:] + list(SIDES)[:r % 3]
        row = {f"{side}_eps": run(side, args.events, args.batch, args.visitors, seed=r)
               for side in order}
        row["each_ratio"] = row["each_eps"] / row["baseline_eps"]
        row["gathered_ratio"] = row["gathered_eps"] / row["baseline_eps"]
        rounds.append(row)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()),
              flush=True)
    summary = {k: median([r[k] for r in rounds]) for k in rounds[0]}
    return report(args.name, args, facts, rounds, summary)


if __name__ == "__main__":
    sys.exit(main())
