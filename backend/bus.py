"""The bus: the seam between the writer and the hubs. The writer publishes what it committed;
the bus hands it to the hub of every instance. In-process by default; Redis Streams in a cluster
(backend/bus_redis.py).

A publish may be lost (the process killed between commit and publish, Redis restarted): the hub
finds the gap, or the periodic check finds a website's committed sequence ahead of what it
delivered, and reads the missing events from the store. The bus is the fast path, never the
truth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from models.records import EventRecord

log = logging.getLogger("pulse.bus")

Deliver = Callable[[Sequence[EventRecord]], None]


class Bus(Protocol):
    """Carries committed events from the writers to every instance's hub."""

    name: str

    def publish(self, events: Sequence[EventRecord]) -> None:
        """Hand committed events on (called by the writer after each commit; never blocks)."""

    async def start(self, deliver: Deliver, committed: dict[str, int]) -> None:
        """Start delivering to ``deliver``, each website from its ``committed`` sequence on."""

    def follow(self, committed: dict[str, int]) -> None:
        """Also deliver the websites of ``committed`` not followed yet (created since)."""

    async def close(self) -> None:
        """Stop, after handing on what was published."""


class DropPublishes:
    """The test-only fault hook: drops the publish of events whose path starts with a prefix,
    as if the process had died between commit and publish (``PULSE_FAULT_DROP_PUBLISH``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.dropped = 0

    def __call__(self, events: Sequence[EventRecord]) -> Sequence[EventRecord]:
        """``events`` without the ones the fault drops."""
        if not self.prefix:
            return events
        kept = [e for e in events if not e.pathname.startswith(self.prefix)]
        if len(kept) != len(events):
            self.dropped += len(events) - len(kept)
            log.warning("fault hook: dropped the publish of %d events", len(events) - len(kept))
        return kept


class InProcessBus:
    """One instance: the committed events go straight to its own hub."""

    name = "in-process"

    def __init__(self, deliver: Deliver, fault: DropPublishes | None = None) -> None:
        self._deliver = deliver
        self._fault = fault or DropPublishes("")

    def publish(self, events: Sequence[EventRecord]) -> None:
        """Hand ``events`` to the hub now."""
        events = self._fault(events)
        if events:
            self._deliver(events)

    async def start(self, deliver: Deliver, committed: dict[str, int]) -> None:
        """Deliver to ``deliver`` from now on."""
        self._deliver = deliver

    def follow(self, committed: dict[str, int]) -> None:
        """Nothing to do: every event of this instance passes here."""

    async def close(self) -> None:
        """Nothing to close."""
