"""Tests that drive an outside tool (wrk, nginx with nchan, hadolint) skip without it on a
developer's machine, and fail under ``PULSE_REQUIRE_TOOLS=1`` (CI: `.ci/run`, after `make tools`
installed them), so they cannot silently stop running."""

from __future__ import annotations

import os

import pytest


def require_tool(available: bool, missing: str) -> None:
    """Skip the calling test when ``available`` is false, or fail it under CI."""
    if available:
        return
    if os.environ.get("PULSE_REQUIRE_TOOLS") == "1":
        pytest.fail(f"this test is required here but {missing}")
    pytest.skip(missing)
