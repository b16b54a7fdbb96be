"""Members: who sees which website; admins and owners give and take access."""

from __future__ import annotations

from typing import Any

import pytest

from backend.auth import create_user
from models.entities import Membership
from models.websites import create_website
from tests.ui.conftest import SLOW

BOB_PASSWORD = "bob's long password"


@pytest.mark.asyncio
async def test_a_shared_website_is_all_another_user_sees(
        signed_in: Any, admin: Any, website: Any, sign_in_as: Any) -> None:
    user = signed_in
    bob = create_user("bob@example.com", BOB_PASSWORD)
    private = create_website("private.example", name="Private", owner=admin)

    await user.open(f"/websites/{website.id}")
    user.find("Member email").type("Bob@Example.com")
    user.find("Give access").click()
    await user.should_see(marker="member-bob@example.com")
    assert Membership.allows(bob, website.id)
    assert not Membership.allows(bob, private.id)

    user.find("Sign out").click()
    await user.should_see(marker="sign-in")
    await sign_in_as("bob@example.com", BOB_PASSWORD)
    await user.should_see(marker=f"website-{website.id}")
    await user.should_not_see(marker=f"website-{private.id}")
    await user.should_not_see("Private")

    await user.open(f"/websites/{private.id}")
    await user.should_see("This website does not exist, or you do not have access to it.")
    await user.should_not_see("Tracking snippet")
    await user.open("/websites/no-such-website")
    await user.should_see("This website does not exist, or you do not have access to it.")

    await user.open(f"/websites/{website.id}")  # a viewer sees the snippet, changes nothing
    await user.should_see("Tracking snippet")
    await user.should_not_see(marker="delete-website")
    await user.should_not_see(marker="give-access")
    await user.should_not_see(marker="save-website")
    await user.should_not_see(marker="remove-admin@example.com")


@pytest.mark.asyncio
async def test_removing_access(signed_in: Any, admin: Any, website: Any) -> None:
    bob = create_user("bob@example.com", BOB_PASSWORD)
    Membership.create(user=bob, website=website)
    await signed_in.open(f"/websites/{website.id}")
    await signed_in.should_not_see(marker="remove-admin@example.com")  # the only owner stays
    signed_in.find(marker="remove-bob@example.com").click()
    await signed_in.should_not_see(marker="member-bob@example.com")
    assert not Membership.allows(bob, website.id)
    assert Membership.allows(admin, website.id)


@pytest.mark.asyncio
async def test_giving_access_explains_mistakes(signed_in: Any, website: Any) -> None:
    await signed_in.open(f"/websites/{website.id}")
    signed_in.find("Member email").type("nobody@example.com")
    signed_in.find("Give access").click()
    await signed_in.should_see("No account has the email 'nobody@example.com'")
    signed_in.find("Member email").clear().type("admin@example.com")
    signed_in.find("Give access").click()
    await signed_in.should_see("admin@example.com has access already.")
    assert Membership.select().where(Membership.website == website.id).count() == 1


@pytest.mark.asyncio
async def test_an_owner_who_is_not_admin_manages_members(
        user: Any, admin: Any, sign_in_as: Any) -> None:
    bob = create_user("bob@example.com", BOB_PASSWORD)
    create_user("carol@example.com", "carol's long password")
    shop = create_website("shop.example", name="Shop", owner=bob)
    await sign_in_as("bob@example.com", BOB_PASSWORD)
    await user.open(f"/websites/{shop.id}")
    user.find("Member email").type("carol@example.com")
    user.find("Give access").click()
    await user.should_see(marker="member-carol@example.com", retries=SLOW)
    await user.should_see(marker="delete-website")
    assert not Membership.allows(admin, shop.id)  # admins see only their websites too


@pytest.mark.asyncio
async def test_only_admins_open_users(user: Any, admin: Any, sign_in_as: Any) -> None:
    create_user("bob@example.com", BOB_PASSWORD)
    await sign_in_as("bob@example.com", BOB_PASSWORD)
    await user.should_not_see("Users")
    await user.open("/users")
    await user.should_see("Only administrators manage users.")
    await user.should_not_see(marker="create-user")
    await user.should_not_see("admin@example.com")
