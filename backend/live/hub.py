"""Hub: one instance's per-website listener registry, replay buffer and live windows, on its
event loop.

Data flows one way: the writer commits, hands the committed events to the bus, and the bus hands
them to ``Hub.publish`` on every instance. Each website's events carry its own sequence (1, 2, 3…
assigned inside the commit), so the hub delivers them in that one order, drops what it already
delivered, and when it sees a gap (a publish lost between commit and bus) reads the missing
events from the store before going on: the store is the truth, the bus only the fast path.

Subscribing is one call, ``subscribe_and_replay``: register, read what is stored after the
client's id, then live, duplicates dropped by sequence (Mercure's ``AddSubscriber``). What goes on
the wire (SSE bytes) is the listener's business, not the hub's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from backend.live.stats import DEFAULT_MAX_BYTES, HISTORY_MINUTES, LiveStats
from models.entities import now_ms
from models.records import EventRecord

log = logging.getLogger("pulse.hub")

SEED_LIMIT = 100_000
REFILL_CHUNK = 1000
RECORD_OVERHEAD = 600  # bytes of a record's object, its fields' headers and its buffer slot
BEHIND_GRACE = 0.25  # seconds a committed event may take to arrive through the bus

Kind = Literal["connected", "reset", "events", "stats"]


@dataclass(slots=True)
class HubMessage:
    """What a listener receives: new committed events, changed stats, or (first, for
    ``subscribe_and_replay``) the state it starts from: ``connected``, or ``reset`` when the id it
    asked to resume from could not be honoured.

    ``frame`` is free for the listeners' side: the first that encodes the message for the wire
    keeps its bytes there, and the others reuse them.
    """

    kind: Kind
    website_id: str
    frame: bytes = b""
    events: Sequence[EventRecord] = ()
    stats: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[HubMessage], None]


@dataclass(frozen=True)
class EventStore:
    """The read side the hub falls back on; the hub calls these off the event loop."""

    events_after: Callable[[str, int, int], list[EventRecord]]
    events_since: Callable[[str, int, int], list[EventRecord]]
    last_seq: Callable[[str], int]


def record_size(event: EventRecord) -> int:
    """About how many bytes of memory a record holds (what the replay buffer is bounded by)."""
    size = RECORD_OVERHEAD + len(event.pathname) + len(event.title) + len(event.referrer) + \
        len(event.hostname) + len(event.visitor_id) + len(event.session_id)
    for key, value in event.props.items():
        size += 60 + len(key) + (len(value) if isinstance(value, str) else 32)
    return size


@dataclass(slots=True)
class _Replay:
    """The recent events of one website: every event with a sequence above ``floor``."""

    floor: int
    events: deque[tuple[EventRecord, int]] = field(default_factory=deque)
    size: int = 0
    used: float = 0.0


class _Subscriber:
    """One ``subscribe_and_replay`` listener: holds live messages while its replay is sent."""

    __slots__ = ("listener", "limit", "live", "held", "held_bytes", "overflowed", "last")

    def __init__(self, listener: Listener, limit: int) -> None:
        self.listener = listener
        self.limit = limit  # bytes it may hold; past them it lets go and reads the store after
        self.live = False
        self.held: list[HubMessage] = []
        self.held_bytes = 0
        self.overflowed = False
        self.last = 0  # the sequence of the newest event this subscriber has

    def __call__(self, message: HubMessage) -> None:
        if self.live:
            events = message.events
            if not events:
                self.listener(message)
            elif events[0].id > self.last:  # the usual case, kept short: it runs per listener
                self.last = events[-1].id
                self.listener(message)
            else:
                _hand_on(self, message)
        elif not self.overflowed:
            self.held.append(message)
            self.held_bytes += sum(record_size(e) for e in message.events) + RECORD_OVERHEAD
            if self.held_bytes > self.limit:
                self.overflowed = True
                self.held.clear()
                self.held_bytes = 0


class Hub:
    """Delivers each website's committed events, in sequence order, to its listeners."""

    def __init__(
        self,
        *,
        window_seconds: float = 300.0,
        store: EventStore | None = None,
        replay_bytes: int = 1_048_576,
        replay_memory: int = 33_554_432,
        replay_idle: float = 600.0,
        hold_bytes: int = 4_194_304,
        live_max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.window_ms = int(window_seconds * 1000)
        self.live_max_bytes = live_max_bytes
        self._store = store
        self._replay_bytes = replay_bytes
        self._replay_memory = replay_memory
        self._replay_idle = replay_idle
        self._hold_bytes = hold_bytes
        self._listeners: dict[str, list[Listener]] = defaultdict(list)
        self._stats: dict[str, LiveStats] = {}
        self._stats_keys: dict[str, Any] = {}
        self._seeding: dict[str, list[EventRecord]] = {}
        self._seeds: dict[str, asyncio.Future[LiveStats]] = {}
        self._buffers: OrderedDict[str, _Replay] = OrderedDict()  # least recently used first
        self._buffered = 0
        self._last: dict[str, int] = {}  # website → sequence of the newest event delivered
        self._refilling: dict[str, list[EventRecord]] = {}
        self._refill_bytes: dict[str, int] = {}  # bytes of the events a refill holds
        self._refill_dropped: set[str] = set()  # refills that let events go: read again
        self._tasks: set[asyncio.Task[Any]] = set()
        self.refills = 0  # gaps closed from the store (tests and /metrics read it)

    # -- listeners ---------------------------------------------------------------------------
    def subscribe(self, website_id: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every live message of ``website_id`` (no replay, no opening
        message); return the unsubscribe call."""
        self._listeners[website_id].append(listener)

        def unsubscribe() -> None:
            listeners = self._listeners.get(website_id)
            if listeners and listener in listeners:
                listeners.remove(listener)
                if not listeners:
                    del self._listeners[website_id]

        return unsubscribe

    async def subscribe_and_replay(
        self,
        website_id: str,
        listener: Listener,
        after: int | None = None,
        *,
        limit: int = 1000,
        piece_bytes: int = 524_288,
        drained: Callable[[], Awaitable[bool]] | None = None,
    ) -> Callable[[], None]:
        """Register ``listener``, send it where it starts from, the events after ``after``, then
        everything live; return the unsubscribe call.

        The first message is ``connected`` (the live window's state), or ``reset`` when ``after``
        cannot be honoured: ahead of the website's newest event, or more than ``limit`` events
        behind it. The replay goes in pieces of about ``piece_bytes``, each after ``drained()``
        said the previous one reached the client (False: the client is gone, stop). Live messages
        that arrive meanwhile are held (up to a bound in bytes, past which they are read again
        from the store) and handed on without what the replay already sent.
        """
        subscriber = _Subscriber(listener, self._hold_bytes)
        unsubscribe = self.subscribe(website_id, subscriber)
        try:
            stats = await self.window(website_id)
            cut = self._last.get(website_id, 0)
            snapshot = stats.snapshot()
            replay: list[EventRecord] = []
            reset = False
            if after is not None and after > cut:
                reset = after > await self._off_loop(self._committed, website_id)
                subscriber.last = cut if reset else after
            elif after is not None and after < cut:
                replay = await self._events_between(website_id, after, cut, limit)
                reset = len(replay) > limit
                subscriber.last = cut if reset else after
                if reset:
                    replay = []
                    log.info("reset a subscriber of %s: %d+ events behind", website_id, limit)
            else:
                subscriber.last = cut
            if reset:
                snapshot = stats.snapshot()  # the state as of now, not as of the cut
                subscriber.last = self._last.get(website_id, 0)
                subscriber.held.clear()
                subscriber.held_bytes = 0
            listener(HubMessage("reset" if reset else "connected", website_id, stats=snapshot))
            if not await self._send_replay(subscriber, website_id, replay, piece_bytes, drained):
                unsubscribe()
                return unsubscribe
            while subscriber.overflowed:  # what it missed is in the store
                subscriber.overflowed = False
                subscriber.held.clear()
                subscriber.held_bytes = 0
                missed = await self._off_loop(self._load_after, website_id, subscriber.last,
                                              REFILL_CHUNK)
                if len(missed) >= REFILL_CHUNK:
                    subscriber.overflowed = True  # there is more: read on
                if not await self._send_replay(subscriber, website_id, missed, piece_bytes,
                                               drained):
                    unsubscribe()
                    return unsubscribe
            for message in subscriber.held:
                _hand_on(subscriber, message)
            subscriber.held.clear()
            subscriber.live = True
            if subscriber.last <= self._last.get(website_id, 0):
                # Everything from now on is new to it: the hub calls the listener directly.
                unsubscribe()
                unsubscribe = self.subscribe(website_id, listener)
        except BaseException:
            unsubscribe()
            raise
        return lambda: unsubscribe()

    async def _send_replay(self, subscriber: _Subscriber, website_id: str,
                           events: Sequence[EventRecord], piece_bytes: int,
                           drained: Callable[[], Awaitable[bool]] | None) -> bool:
        piece: list[EventRecord] = []
        size = 0
        for index, event in enumerate(events):
            if event.id <= subscriber.last:
                continue
            piece.append(event)
            size += record_size(event)
            if size < piece_bytes and index < len(events) - 1:
                continue
            subscriber.listener(HubMessage("events", website_id, events=piece))
            subscriber.last = piece[-1].id
            piece, size = [], 0
            if drained is not None and not await drained():
                return False
        return True

    async def _events_between(self, website_id: str, after: int, cut: int,
                              limit: int) -> list[EventRecord]:
        """The events in (after, cut], or ``limit`` + 1 of them when there are more."""
        buffer = self._buffers.get(website_id)
        if buffer is not None and buffer.floor <= after:
            events = [e for e, _ in buffer.events if after < e.id <= cut]
            return events[:limit + 1]
        events = await self._off_loop(self._load_after, website_id, after, limit + 1)
        return [e for e in events if e.id <= cut]

    def listener_count(self, website_id: str | None = None) -> int:
        """Listeners of one website, or of all websites."""
        if website_id is not None:
            return len(self._listeners.get(website_id, ()))
        return sum(len(v) for v in self._listeners.values())

    def clear(self) -> None:
        """Forget every listener (tests reset the hub between cases)."""
        self._listeners.clear()

    # -- publishing --------------------------------------------------------------------------
    def start_from(self, committed: dict[str, int]) -> None:
        """Take each website's committed sequence as delivered (a starting instance: what was
        committed before it started is history, read from the store, not live)."""
        for website_id, seq in committed.items():
            if seq > self._last.get(website_id, 0):
                self._last[website_id] = seq

    def watched(self) -> set[str]:
        """The websites something here shows: listeners or a live window."""
        return {w for w, listeners in self._listeners.items() if listeners} | set(self._stats)

    def last_delivered(self, website_id: str) -> int:
        """The sequence of the newest event of ``website_id`` this hub delivered."""
        return self._last.get(website_id, 0)

    def publish(self, events: Iterable[EventRecord]) -> None:
        """Hand committed events (from the bus) to their websites, in sequence order; one
        website's failure never costs another's events."""
        by_website: dict[str, list[EventRecord]] = defaultdict(list)
        for event in events:
            by_website[event.website_id].append(event)
        for website_id, batch in by_website.items():
            try:
                self._receive(website_id, batch)
            except Exception:
                log.exception("publishing %d events of %s failed", len(batch), website_id)

    def _receive(self, website_id: str, batch: list[EventRecord]) -> None:
        queued = self._refilling.get(website_id)
        if queued is not None:  # a refill is under way: it hands these on after the store's
            held = self._refill_bytes.get(website_id, 0)
            if held < self._hold_bytes:  # past the bound they are read from the store instead
                queued.extend(batch)
                self._refill_bytes[website_id] = held + sum(record_size(e) for e in batch)
            else:
                self._refill_dropped.add(website_id)
            return
        last = self._last.get(website_id, 0)
        fresh = batch if batch[0].id > last else [e for e in batch if e.id > last]
        if not fresh:
            return
        if fresh[-1].id - last != len(fresh) and self._store is not None:
            if self._wanted(website_id):
                self._start_refill(website_id, fresh)
                return
            self._drop_buffer(website_id)  # nobody to refill for: the buffer is no longer whole
        self._deliver(website_id, fresh)

    def _deliver(self, website_id: str, events: list[EventRecord]) -> None:
        self._last[website_id] = events[-1].id
        self._remember(website_id, events)
        seeding = self._seeding.get(website_id)
        if seeding is not None:
            seeding.extend(events)
        stats = self._stats.get(website_id)
        if stats is not None:
            stats.add_all(events)
        listeners = self._listeners.get(website_id)
        if listeners:
            self._send(listeners, HubMessage("events", website_id, events=events))

    def _send(self, listeners: list[Listener], message: HubMessage) -> None:
        for listener in tuple(listeners):
            try:
                listener(message)
            except Exception:
                log.exception("a listener of %s failed", message.website_id)

    def _wanted(self, website_id: str) -> bool:
        """Whether anything here shows the website's events (else a gap needs no refill)."""
        return bool(self._listeners.get(website_id)) or website_id in self._stats \
            or website_id in self._seeding

    # -- gaps: the store is the truth --------------------------------------------------------
    def _start_refill(self, website_id: str, queued: list[EventRecord]) -> None:
        self._refilling[website_id] = list(queued)
        task = asyncio.get_running_loop().create_task(self._refill(website_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refill(self, website_id: str) -> None:
        """Read the website's missing events from the store, then hand on what arrived
        meanwhile; until the events are whole again."""
        self.refills += 1
        try:
            while True:
                arrived = len(self._refilling[website_id])  # before this read began
                rows = await self._off_loop(self._load_after, website_id,
                                            self._last.get(website_id, 0), REFILL_CHUNK)
                queued = self._refilling[website_id]
                waiting, later = queued[:arrived], queued[arrived:]
                complete = len(rows) < REFILL_CHUNK  # the store had nothing more then
                last = self._last.get(website_id, 0)
                rows = [e for e in rows if e.id > last]
                if rows:
                    self._deliver(website_id, rows)
                    last = rows[-1].id
                waiting = [e for e in waiting if e.id > last]
                if waiting and complete:
                    # Committed before the read began, so nothing before them is missing from
                    # the store: what it lacks (deleted meanwhile) is not coming back.
                    self._deliver(website_id, waiting)
                    last = waiting[-1].id
                    waiting = []
                pending = waiting + [e for e in later if e.id > last]
                dropped = website_id in self._refill_dropped
                self._refill_dropped.discard(website_id)
                if not pending and complete and not dropped:
                    return
                if pending and pending[-1].id - last == len(pending) and not dropped:
                    self._deliver(website_id, pending)
                    return
                self._refilling[website_id] = pending
                self._refill_bytes[website_id] = sum(record_size(e) for e in pending)
        except Exception:
            log.exception("refilling %s from the store failed", website_id)
            last = self._last.get(website_id, 0)
            pending = [e for e in self._refilling.get(website_id, ()) if e.id > last]
            if pending:  # better with a gap than never: the store is unreachable
                self._deliver(website_id, pending)
        finally:
            self._refilling.pop(website_id, None)
            self._refill_bytes.pop(website_id, None)
            self._refill_dropped.discard(website_id)

    def check(self, committed: dict[str, int]) -> None:
        """Compare each website's committed sequence with what was delivered: a website still
        behind a moment later lost a publish, and is refilled from the store."""
        loop = asyncio.get_running_loop()
        for website_id, seq in committed.items():
            if seq > self._last.get(website_id, 0) and website_id not in self._refilling:
                loop.call_later(BEHIND_GRACE, self._catch_up, website_id, seq)

    def _catch_up(self, website_id: str, seq: int) -> None:
        if seq <= self._last.get(website_id, 0) or website_id in self._refilling:
            return
        if not self._wanted(website_id):
            self._drop_buffer(website_id)
            self._last[website_id] = seq
            return
        log.info("%s is behind its committed events: refilling from the store", website_id)
        self._start_refill(website_id, [])

    # -- the replay buffer, bounded in bytes -------------------------------------------------
    def _remember(self, website_id: str, events: list[EventRecord]) -> None:
        buffer = self._buffers.get(website_id)
        if buffer is None:
            buffer = self._buffers[website_id] = _Replay(events[0].id - 1)
        else:
            self._buffers.move_to_end(website_id)
        buffer.used = time.monotonic()
        for event in events:
            size = record_size(event)
            buffer.events.append((event, size))
            buffer.size += size
            self._buffered += size
        while buffer.size > self._replay_bytes and buffer.events:
            self._pop_oldest(buffer)
        while self._buffered > self._replay_memory:
            oldest = next(iter(self._buffers))
            if oldest == website_id:
                self._pop_oldest(buffer)
            else:
                self._drop_buffer(oldest)

    def _pop_oldest(self, buffer: _Replay) -> None:
        event, size = buffer.events.popleft()
        buffer.floor = event.id
        buffer.size -= size
        self._buffered -= size

    def _drop_buffer(self, website_id: str) -> None:
        buffer = self._buffers.pop(website_id, None)
        if buffer is not None:
            self._buffered -= buffer.size

    @property
    def buffered_bytes(self) -> int:
        """Bytes held by every website's replay buffer."""
        return self._buffered

    # -- the live window ---------------------------------------------------------------------
    def stats(self, website_id: str) -> LiveStats:
        """The live window of a website, seeded from the store (on the loop) on first use;
        ``window`` is the off-loop way."""
        stats = self._stats.get(website_id)
        if stats is None:
            seed = self._load_since(website_id) if self._store is not None else []
            stats = self._install(website_id, seed)
        return stats

    async def window(self, website_id: str) -> LiveStats:
        """The live window of a website, seeded from the store off the loop on first use."""
        stats = self._stats.get(website_id)
        if stats is not None:
            return stats
        seed = self._seeds.get(website_id)
        if seed is None:
            seed = self._seeds[website_id] = asyncio.ensure_future(self._seed(website_id))
        return await asyncio.shield(seed)

    async def _seed(self, website_id: str) -> LiveStats:
        self._seeding[website_id] = []
        try:
            seed = await self._off_loop(self._load_since, website_id) \
                if self._store is not None else []
        finally:
            arrived = self._seeding.pop(website_id)
            self._seeds.pop(website_id, None)
        stats = self._stats.get(website_id) or self._install(website_id, seed)
        stats.add_all(arrived)  # delivered while the store was read; the ids drop repeats
        return stats

    def has_stats(self, website_id: str) -> bool:
        """Whether the website's live window is in memory already (``stats`` is then free)."""
        return website_id in self._stats

    def _install(self, website_id: str, seed: list[EventRecord]) -> LiveStats:
        stats = LiveStats(website_id, self.window_ms, self.live_max_bytes)
        stats.add_all(seed)
        stats.expire(now_ms())
        self._stats[website_id] = stats
        self._stats_keys[website_id] = stats.key()
        return stats

    def _load_since(self, website_id: str) -> list[EventRecord]:
        assert self._store is not None
        since = now_ms() - max(self.window_ms, HISTORY_MINUTES * 60_000)
        return self._store.events_since(website_id, since, SEED_LIMIT)

    def _load_after(self, website_id: str, after: int, limit: int) -> list[EventRecord]:
        return self._store.events_after(website_id, after, limit) if self._store else []

    def _committed(self, website_id: str) -> int:
        if self._store is None:
            return self._last.get(website_id, 0)
        return max(self._store.last_seq(website_id), self._last.get(website_id, 0))

    async def _off_loop(self, call: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, call, *args)

    def tick(self, now: int | None = None) -> None:
        """Move every window forward, sending a ``stats`` message where the numbers changed;
        forget the replay buffers of websites idle for ``replay_idle`` seconds."""
        now = now_ms() if now is None else now
        for website_id, stats in list(self._stats.items()):
            try:
                self._tick_one(website_id, stats, now)
            except Exception:
                log.exception("moving the live window of %s failed", website_id)
        idle_since = time.monotonic() - self._replay_idle
        while self._buffers:
            website_id, buffer = next(iter(self._buffers.items()))
            if buffer.used > idle_since:
                break
            self._drop_buffer(website_id)

    def _tick_one(self, website_id: str, stats: LiveStats, now: int) -> None:
        stats.expire(now)
        key = stats.key()
        listeners = self._listeners.get(website_id)
        if key != self._stats_keys.get(website_id):
            self._stats_keys[website_id] = key
            if listeners:
                self._send(listeners, HubMessage("stats", website_id, stats=stats.snapshot()))
        if not listeners and stats.empty:
            # Nobody is watching and nobody is there: the window is rebuilt on next use.
            del self._stats[website_id]
            self._stats_keys.pop(website_id, None)

    def forget_website(self, website_id: str) -> None:
        """Drop everything kept for a deleted website."""
        self._stats.pop(website_id, None)
        self._stats_keys.pop(website_id, None)
        self._drop_buffer(website_id)
        self._last.pop(website_id, None)


def _hand_on(subscriber: _Subscriber, message: HubMessage) -> None:
    """Hand a held message on, without the events the subscriber already has."""
    if message.kind != "events":
        subscriber.listener(message)
        return
    events = message.events
    if not events or events[-1].id <= subscriber.last:
        return
    if events[0].id <= subscriber.last:
        message = HubMessage("events", message.website_id,
                             events=[e for e in events if e.id > subscriber.last])
    subscriber.listener(message)
    subscriber.last = events[-1].id
