"""The panel's accessibility pieces as a simulated user meets them: the counters' polite
announcements are throttled, the theme toggle cycles and is kept with the account, every page
has one h1 (the browser tests in test_e2e_for_everyone.py check the rest in Chromium)."""

from __future__ import annotations

from typing import Any

import pytest
from nicegui import ui

from models.entities import User
from ui.components.live_widgets import Announcer

WAIT = 50  # should_see retries 0.1 s apart: patience on a busy machine, not a speed limit


@pytest.mark.asyncio
async def test_announcements_wait_between_changes(user: Any) -> None:
    now = [100.0]
    made: list[Announcer] = []

    @ui.page("/announcer")
    def announcer_page() -> None:
        made.append(Announcer(every=30.0, clock=lambda: now[0]))

    await user.open("/announcer")
    (announcer,) = made
    assert announcer.region.props["aria-live"] == "polite"
    announcer.say("3 current visitors")
    assert announcer.region.text == "3 current visitors"
    now[0] += 10
    announcer.say("4 current visitors")  # too soon: the screen reader is not flooded
    assert announcer.region.text == "3 current visitors"
    now[0] += 25
    announcer.say("5 current visitors")  # the latest number, once the pause is over
    assert announcer.region.text == "5 current visitors"
    now[0] += 60
    announcer.say("5 current visitors")  # nothing new: nothing said
    assert announcer.region.text == "5 current visitors"


@pytest.mark.asyncio
async def test_the_theme_toggle_cycles_and_is_kept_with_the_account(user: Any, signed_in: Any,
                                                                    admin: User) -> None:
    assert User.get_by_id(admin.get_id()).theme == "auto"
    for theme in ("dark", "light", "auto"):
        user.find(marker="theme-toggle").click()
        await user.should_see(f"Theme: {'same as the system' if theme == 'auto' else theme}",
                              retries=WAIT)
        assert User.get_by_id(admin.get_id()).theme == theme
    user.find(marker="theme-toggle").click()
    await user.open("/tokens")  # a new page starts dark for this user
    (toggle,) = user.find(marker="theme-toggle").elements
    assert toggle.props["aria-label"] == "Theme: dark"


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/", "/tokens", "/users"])
async def test_each_page_has_one_h1(user: Any, signed_in: Any, path: str) -> None:
    await user.open(path)
    await user.should_see(marker="page-title")
    headings = [e for e in user.find(marker="page-title").elements if e.tag == "h1"]
    assert len(headings) == 1
