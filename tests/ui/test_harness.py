"""The simulated-user harness itself: pages registered per test, the layout, sessions."""

from __future__ import annotations

from typing import Any

import pytest
from nicegui import ui

from ui.layout import frame
from ui.session import require_user, sign_in


@pytest.mark.asyncio
async def test_a_session_survives_navigation(user: Any, admin: Any) -> None:
    @ui.page("/harness/sign-in")
    def harness_sign_in() -> None:
        sign_in(admin)
        ui.label("signed in")

    @ui.page("/harness/who")
    def harness_who() -> None:
        person = require_user()
        if person is None:
            return
        with frame("Who", person):
            ui.label(f"hello {person.email}")

    await user.open("/harness/sign-in")
    await user.should_see("signed in")
    await user.open("/harness/who")
    await user.should_see("hello admin@example.com")
