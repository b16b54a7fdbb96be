"""What one live page has seen since its last redraw: the hub's listener folds messages into it,
the page's timer asks it whether a redraw is due. Nothing here touches the UI or the database."""

from __future__ import annotations

import time
from collections.abc import Callable

from backend.live.hub import HubMessage
from backend.live.stats import RECENT_EVENTS

HIGHLIGHT_SECONDS = 2.0
REFRESH_SECONDS = 1.0  # the window moves even when nothing arrives: redraw at least this often


class LiveState:
    """A dirty flag and the ids of newly arrived events (highlighted for two seconds)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 highlight_seconds: float = HIGHLIGHT_SECONDS,
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.clock = clock
        self.highlight_seconds = highlight_seconds
        self.refresh_seconds = refresh_seconds
        self.dirty = True
        self.received = 0
        self._fresh: dict[int, float] = {}  # event id → when it arrived, oldest first
        self._last_draw = float("-inf")

    def on_message(self, message: HubMessage) -> None:
        """The hub's listener: remember new event ids and mark the page dirty (O(1) per event)."""
        if message.kind == "events":
            arrived = self.clock()
            fresh = self._fresh
            for event in message.events[-RECENT_EVENTS:]:
                fresh[event.id] = arrived
            while len(fresh) > RECENT_EVENTS:  # only the newest can be on screen
                del fresh[next(iter(fresh))]
            self.received += len(message.events)
        self.dirty = True

    def due(self) -> bool:
        """Whether the timer should redraw now."""
        now = self.clock()
        if self.dirty or now - self._last_draw >= self.refresh_seconds:
            return True
        # A highlight ran out: take it off without waiting for the next refresh.
        return bool(self._fresh) and now - next(iter(self._fresh.values())) >= \
            self.highlight_seconds

    def begin_draw(self) -> set[int]:
        """Start a redraw: clear the dirty flag; return the ids still highlighted."""
        now = self.clock()
        self.dirty = False
        self._last_draw = now
        fresh = self._fresh
        while fresh and now - next(iter(fresh.values())) >= self.highlight_seconds:
            del fresh[next(iter(fresh))]
        return set(fresh)
