"""Timestamps as the panel shows them."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_text(ms: int | None, never: str = "never") -> str:
    """A stored millisecond timestamp as 'YYYY-MM-DD HH:MM UTC' (``never`` when there is none)."""
    if ms is None:
        return never
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
