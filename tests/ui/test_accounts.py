"""Accounts in the panel: first run, sign-in, wrong passwords, the throttle, sign-out."""

from __future__ import annotations

from typing import Any

import pytest

from backend.auth import create_user
from models.entities import Session, User
from tests.ui.conftest import SLOW, eventually

PASSWORD = "correct horse battery"


@pytest.mark.asyncio
async def test_the_first_run_creates_the_admin_and_signs_in(user: Any) -> None:
    await user.open("/")
    await user.should_see("Create admin account")  # / sent the browser to /setup
    user.find("Email").type("Owner@Example.com")
    user.find("Password").type("a long enough password")  # both password fields
    user.find("Create admin account").click()
    await user.should_see(marker="add-website", retries=SLOW)

    owner = User.by_email("owner@example.com")
    assert owner is not None and owner.is_admin
    assert [s.user.id for s in Session.select()] == [owner.id]

    await user.open("/setup")
    await user.should_see("Already set up")
    await user.should_not_see("Create admin account")
    assert User.select().count() == 1


@pytest.mark.asyncio
async def test_setup_explains_bad_input_and_creates_nothing(user: Any) -> None:
    await user.open("/setup")
    user.find("Email").type("not an email")
    user.find("Password").type("a long enough password")
    user.find("Create admin account").click()
    await user.should_see("is not a valid email address", retries=SLOW)

    user.find("Email").clear().type("owner@example.com")
    user.find(marker="password").clear().type("short")
    user.find(marker="password-again").clear().type("short")
    user.find("Create admin account").click()
    await user.should_see("at least 8 characters", retries=SLOW)

    user.find(marker="password").clear().type("a long enough password")
    user.find(marker="password-again").clear().type("another long password")
    user.find("Create admin account").click()
    await user.should_see("The two passwords differ.")
    assert User.select().count() == 0
    assert Session.select().count() == 0


@pytest.mark.asyncio
async def test_setup_is_refused_once_a_user_exists(user: Any, admin: Any) -> None:
    await user.open("/setup")
    await user.should_see("Already set up")
    await user.should_not_see(marker="create-admin")
    await user.open("/")
    await user.should_see(marker="sign-in")  # not signed in: / sends the browser to sign in


@pytest.mark.asyncio
async def test_a_wrong_password_shows_an_error_and_opens_no_session(user: Any, admin: Any) -> None:
    await user.open("/login")
    user.find("Email").type("admin@example.com")
    user.find("Password").type("wrong password")
    user.find("Sign in").click()
    await user.should_see("Wrong email or password.", retries=SLOW)
    assert Session.select().count() == 0

    await user.open("/tokens")
    await user.should_see(marker="sign-in")
    await user.should_not_see("API tokens")


@pytest.mark.asyncio
async def test_sign_in_then_sign_out(signed_in: Any, admin: Any) -> None:
    user = signed_in
    assert [s.user.id for s in Session.select()] == [admin.id]
    await user.open("/login")  # signed in already: straight on to the websites
    await user.should_see(marker="add-website")

    user.find("Sign out").click()
    await user.should_see(marker="sign-in")
    assert Session.select().count() == 0
    await user.open("/")
    await user.should_see(marker="sign-in")
    await user.should_not_see(marker="add-website")


async def fail_sign_ins(user: Any, emails: list[str]) -> None:
    """Try a wrong password once per email, waiting for each answer."""
    await user.open("/login")
    for email in emails:
        before = len(user.notify.messages)
        user.find("Email").clear().type(email)
        user.find("Password").clear().type("wrong password")
        user.find("Sign in").click()
        await eventually(lambda before=before: len(user.notify.messages) > before)
        assert user.notify.messages[-1] == "Wrong email or password."


async def try_right_password(user: Any) -> None:
    user.find("Email").clear().type("admin@example.com")
    user.find("Password").clear().type(PASSWORD)
    user.find("Sign in").click()


@pytest.mark.asyncio
async def test_failed_sign_ins_lock_the_account(user: Any, admin: Any, services: Any) -> None:
    limit = services.login_throttle.limit
    assert limit > 0
    await fail_sign_ins(user, ["admin@example.com"] * limit)
    await try_right_password(user)
    await user.should_see("Too many failed sign-ins. Try again in 15 minutes.", retries=SLOW)
    assert Session.select().count() == 0
    await user.should_not_see(marker="add-website")


@pytest.mark.asyncio
async def test_failed_sign_ins_from_one_ip_lock_it(user: Any, admin: Any, services: Any) -> None:
    limit = services.login_throttle.limit
    await fail_sign_ins(user, [f"guess{i}@example.com" for i in range(limit)])
    await try_right_password(user)
    await user.should_see("Too many failed sign-ins", retries=SLOW)
    assert Session.select().count() == 0


@pytest.mark.asyncio
async def test_a_success_below_the_limit_clears_the_account(user: Any, admin: Any,
                                                           services: Any) -> None:
    limit = services.login_throttle.limit
    await fail_sign_ins(user, ["admin@example.com"] * (limit - 1))
    await try_right_password(user)
    await user.should_see(marker="add-website", retries=SLOW)
    assert services.login_throttle.retry_after("admin@example.com", "203.0.113.9") == 0


@pytest.mark.asyncio
async def test_other_users_sign_in_with_their_own_password(user: Any, admin: Any,
                                                           sign_in_as: Any) -> None:
    bob = create_user("bob@example.com", "bob's long password")
    await sign_in_as("bob@example.com", "bob's long password")
    assert [s.user.id for s in Session.select()] == [bob.id]
    await user.should_not_see("Users")  # the admin-only link


@pytest.mark.asyncio
async def test_an_expired_session_is_signed_out_everywhere(signed_in: Any, admin: Any,
                                                           website: Any) -> None:
    user = signed_in
    await user.open(f"/websites/{website.id}/live")
    await user.should_see("Live activity")
    Session.update(expires_at=0).execute()  # fourteen days later
    for path in ("/", f"/websites/{website.id}", f"/websites/{website.id}/live", "/tokens"):
        await user.open(path)
        await user.should_see("Sign in", retries=SLOW)
        await user.should_not_see("Live activity")
        await user.should_not_see(website.name)


@pytest.mark.asyncio
@pytest.mark.parametrize("page, landmark", [("/websites/{id}/live", "Live activity"),
                                            ("/websites/{id}", "Tracking snippet")])
async def test_signing_in_returns_to_the_page_asked_for(user: Any, admin: Any, website: Any,
                                                        page: str, landmark: str) -> None:
    await user.open(page.format(id=website.id))  # signed out: sent to sign in, then back
    await user.should_see(marker="sign-in")
    user.find(marker="email").type("admin@example.com")
    user.find(marker="password").type(PASSWORD)
    user.find(marker="sign-in").click()
    await user.should_see(landmark, retries=SLOW)
    await user.should_not_see(marker="add-website")


@pytest.mark.asyncio
async def test_sign_in_never_sends_the_browser_to_another_site(user: Any, admin: Any) -> None:
    await user.open("/login?next=//evil.example/x")
    user.find(marker="email").type("admin@example.com")
    user.find(marker="password").type(PASSWORD)
    user.find(marker="sign-in").click()
    await user.should_see(marker="add-website", retries=SLOW)  # the list, not evil.example


def test_only_local_paths_are_followed_after_sign_in() -> None:
    from ui.session import local_path, sign_in_url

    assert local_path("/websites/abc/live?x=1") == "/websites/abc/live?x=1"
    for outside in ("//evil.example", "https://evil.example/", "/\\evil.example", "evil",
                    "/\r\nLocation: x", "", None, "/" + "a" * 3000):
        assert local_path(outside) is None, outside
    assert sign_in_url("/websites/abc/live") == "/login?next=%2Fwebsites%2Fabc%2Flive"
    assert sign_in_url("/") == sign_in_url("/login?next=/x") == sign_in_url("//e.x") == "/login"
