"""NiceGUI `user` tests: the simulated user, with Pulse's pages registered for test services.

pytest-tornado clashes with pytest-asyncio's auto mode, so the suite runs in strict mode and the
`user` fixture is re-declared here with ``pytest_asyncio.fixture``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio
from nicegui.testing.user import User as SimulatedUser
from nicegui.testing.user_simulation import user_simulation

from backend.services import Services


@pytest_asyncio.fixture
async def user(services: Services) -> AsyncIterator[SimulatedUser]:
    """A simulated browser on the panel of ``services`` (pages registered fresh per test)."""
    from ui.pages import register_pages

    async with user_simulation(main_file=None) as simulated:
        register_pages(services)
        yield simulated
    services.hub.clear()  # NiceGUI's reset does not call on_delete: drop page listeners


@pytest_asyncio.fixture
async def signed_in(user: SimulatedUser, admin: Any) -> SimulatedUser:
    """The simulated user, signed in as the admin through the sign-in page."""
    await user.open("/login")
    user.find("Email").type("admin@example.com")
    user.find("Password").type("correct horse battery")
    user.find("Sign in").click()
    await user.should_see("Websites", retries=SLOW)  # argon2 runs off the loop first
    return user


SLOW = 100  # should_see retries (0.1 s apart) after argon2 work or a 1 s panel timer


async def eventually(check: Callable[[], bool], attempts: int = 200) -> None:
    """Wait (at most ``attempts`` × 50 ms) until ``check()`` holds, e.g. a handler finished."""
    for _ in range(attempts):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{getattr(check, '__name__', check)} never held")


@pytest_asyncio.fixture
async def sign_in_as(user: SimulatedUser) -> Callable[[str, str], Awaitable[None]]:
    """Sign the simulated (signed-out) user in through the sign-in page as someone."""

    async def sign_in(email: str, password: str) -> None:
        await user.open("/login")
        user.find(marker="email").type(email)
        user.find(marker="password").type(password)
        user.find(marker="sign-in").click()
        await user.should_see(marker="add-website", retries=SLOW)

    return sign_in
