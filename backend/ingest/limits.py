"""RateLimiter: token buckets per key (an IP, a website), kept in memory only."""

from __future__ import annotations

import time


class RateLimiter:
    """Allows ``rate`` events per second per key, with bursts of ``burst``; 0 means no limit."""

    def __init__(self, rate: float, burst: float | None = None, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate * 2, 1.0)
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, now: float | None = None) -> float:
        """0.0 if one more event is allowed now, else the seconds to wait before retrying."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if len(self._buckets) >= self._max_keys and key not in self._buckets:
            self.prune(now)
        self._buckets[key] = (tokens - 1.0, now)
        return 0.0

    def prune(self, now: float | None = None) -> None:
        """Forget keys whose bucket has refilled (they behave like new keys anyway)."""
        now = time.monotonic() if now is None else now
        full = self.burst / self.rate if self.rate > 0 else 0
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full}
        if len(self._buckets) >= self._max_keys:
            self._buckets.clear()
