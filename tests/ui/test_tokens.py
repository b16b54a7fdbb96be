"""API tokens in the panel: created and shown once, listed, revoked."""

from __future__ import annotations

from typing import Any

import pytest

from backend.auth import create_user, user_from_authorization
from models.entities import ApiToken


@pytest.mark.asyncio
async def test_a_token_is_shown_once_listed_and_revoked(signed_in: Any, admin: Any) -> None:
    user = signed_in
    await user.open("/tokens")
    await user.should_see("No tokens yet.")
    user.find("Token name").type("dashboard")
    user.find("Create token").click()
    await user.should_see("Copy the token now")

    shown = user.find(marker="new-token").elements.pop().text
    record = ApiToken.get(ApiToken.name == "dashboard")
    assert shown.startswith(record.prefix)
    assert user_from_authorization(f"Bearer {shown}").id == admin.id
    await user.should_see(marker=f"token-{record.id}")  # the list redraws on the next tick
    with user.scope(marker=f"token-{record.id}"):
        await user.should_see("dashboard")
        await user.should_see(f"{record.prefix}…")
        await user.should_see("· last used ")

    await user.open("/tokens")  # shown once: the page never shows it again
    await user.should_not_see(shown)
    await user.should_see(marker=f"token-{record.id}")

    user.find(marker=f"revoke-{record.id}").click()
    await user.should_see("Revoke the token dashboard?")
    user.find(marker="confirm").click()
    await user.should_not_see(marker=f"token-{record.id}")
    await user.should_see("Token revoked")
    assert ApiToken.get_by_id(record.id).revoked_at is not None
    assert ApiToken.authenticate(shown) is None
    assert user_from_authorization(f"Bearer {shown}") is None  # so the SSE endpoint says 401


@pytest.mark.asyncio
async def test_cancelling_keeps_the_token(signed_in: Any, admin: Any) -> None:
    record, secret = ApiToken.issue(admin, "keep me")
    await signed_in.open("/tokens")
    signed_in.find(marker=f"revoke-{record.id}").click()
    await signed_in.should_see("Revoke the token keep me?")
    signed_in.find("Cancel").click()
    await signed_in.should_not_see("Revoke the token keep me?")
    await signed_in.should_see(marker=f"token-{record.id}")
    assert ApiToken.authenticate(secret).id == admin.id


@pytest.mark.asyncio
async def test_only_your_own_tokens_are_listed(signed_in: Any, admin: Any) -> None:
    bob = create_user("bob@example.com", "bob's long password")
    bobs, _ = ApiToken.issue(bob, "bob's script")
    mine, _ = ApiToken.issue(admin, "my script")
    await signed_in.open("/tokens")
    await signed_in.should_see(marker=f"token-{mine.id}")
    await signed_in.should_not_see(marker=f"token-{bobs.id}")
    await signed_in.should_not_see("bob's script")


@pytest.mark.asyncio
async def test_an_overlong_name_is_refused(signed_in: Any) -> None:
    await signed_in.open("/tokens")
    signed_in.find("Token name").type("n" * 101)
    signed_in.find("Create token").click()
    await signed_in.should_see("The name may have at most 100 characters.")
    assert ApiToken.select().count() == 0
