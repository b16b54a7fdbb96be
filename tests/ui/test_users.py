"""Users: administrators create and delete panel accounts."""

from __future__ import annotations

from typing import Any

import pytest

from backend.auth import check_credentials, create_user
from models.entities import ApiToken, Membership, Session, User
from tests.ui.conftest import SLOW


@pytest.mark.asyncio
async def test_an_admin_creates_a_user_who_can_sign_in(signed_in: Any) -> None:
    user = signed_in
    await user.open("/users")
    await user.should_see(marker="user-admin@example.com")
    await user.should_not_see(marker="delete-admin@example.com")  # not yourself
    user.find(marker="new-email").type("Bob@Example.com")
    user.find(marker="new-password").type("bob's long password")
    user.find("Create user").click()
    await user.should_see(marker="user-bob@example.com", retries=SLOW)
    bob = User.by_email("bob@example.com")
    assert bob is not None and not bob.is_admin
    assert check_credentials("bob@example.com", "bob's long password").id == bob.id


@pytest.mark.asyncio
async def test_bad_accounts_are_refused(signed_in: Any) -> None:
    user = signed_in
    await user.open("/users")
    user.find(marker="new-email").type("carol@example.com")
    user.find(marker="new-password").type("short")
    user.find("Create user").click()
    await user.should_see("at least 8 characters", retries=SLOW)
    user.find(marker="new-email").clear().type("admin@example.com")
    user.find(marker="new-password").clear().type("a long enough password")
    user.find("Create user").click()
    await user.should_see("already exists", retries=SLOW)
    user.find(marker="new-email").clear().type("<b>not an email</b>")
    user.find("Create user").click()
    await user.should_see("is not a valid email address", retries=SLOW)
    assert User.select().count() == 1


@pytest.mark.asyncio
async def test_deleting_a_user_removes_their_access(signed_in: Any, website: Any) -> None:
    bob = create_user("bob@example.com", "bob's long password")
    Membership.create(user=bob, website=website)
    ApiToken.issue(bob, "script")
    Session.start(bob, "bobs-browser", 60)
    user = signed_in
    await user.open("/users")
    user.find(marker="delete-bob@example.com").click()
    await user.should_see("Delete the account bob@example.com?")
    user.find(marker="confirm").click()
    await user.should_not_see(marker="user-bob@example.com")
    assert User.by_email("bob@example.com") is None
    assert Membership.select().where(Membership.user == bob.id).count() == 0
    assert ApiToken.select().where(ApiToken.user == bob.id).count() == 0
    assert Session.user_for("bobs-browser") is None
