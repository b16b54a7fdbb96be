"""Who is signed in to the panel: the browser's NiceGUI session, backed by a database row."""

from __future__ import annotations

from fastapi.responses import RedirectResponse
from nicegui import app, ui

from backend.auth import SESSION_LIFETIME
from models.entities import Membership, Session, User, Website


def browser_id() -> str:
    """This browser's id from NiceGUI's signed session cookie."""
    return str(app.storage.browser["id"])


def current_user() -> User | None:
    """The user signed in on this browser, or None."""
    return Session.user_for(browser_id())


def sign_in(user: User) -> None:
    """Sign this browser in as ``user``."""
    Session.start(user, browser_id(), SESSION_LIFETIME)


def sign_out() -> None:
    """Sign this browser out and go to the sign-in page."""
    Session.end(browser_id())
    ui.navigate.to("/login")


def require_user() -> User | None:
    """The signed-in user; otherwise send the browser to sign in (or to set up) and return None.

    Page functions call it first and return at once when it gives None.
    """
    user = current_user()
    if user is None:
        ui.navigate.to("/login" if User.select().exists() else "/setup")
    return user


def signed_out_redirect() -> RedirectResponse:
    """An HTTP redirect for a signed-out browser: to sign in, or to the first run's setup.

    Page functions that return it avoid rendering an empty page first (unlike require_user).
    """
    return RedirectResponse("/login" if User.select().exists() else "/setup", status_code=303)


def website_for(user: User, website_id: str) -> Website | None:
    """The website if ``user`` is a member of it, else None (unknown and forbidden look alike)."""
    if not Membership.allows(user, website_id):
        return None
    return Website.get_or_none(Website.id == website_id)
