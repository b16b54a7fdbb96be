"""Who is signed in to the panel: the browser's NiceGUI session, backed by a database row."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from fastapi.responses import RedirectResponse
from nicegui import app, ui

from backend.auth import SESSION_LIFETIME
from models.accounts import accounts_exist
from models.entities import Session, User
from models.websites import website_for as website_for  # the pages' import


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


def local_path(value: str | None) -> str | None:
    """``value`` if it is a path on this server (``/websites/x/live``), else None: a sign-in
    never sends the browser to another site (``//evil.example``, ``https://…``, ``/\\evil``)."""
    if not value or len(value) > 2048 or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def sign_in_url(asked: str | None) -> str:
    """The sign-in page, with ``next`` set to the page that was asked for (if worth it)."""
    path = local_path(asked)
    if path is None or path == "/" or urlsplit(path).path in ("/login", "/setup"):
        return "/login"
    return "/login?" + urlencode({"next": path})


def _asked_path() -> str | None:
    """The path and query of the page being rendered, if there is a request."""
    try:
        url = ui.context.client.request.url
    except RuntimeError:
        return None
    return url.path + (f"?{url.query}" if url.query else "")


def _signed_out_target() -> str:
    return sign_in_url(_asked_path()) if accounts_exist() else "/setup"


def require_user() -> User | None:
    """The signed-in user; otherwise send the browser to sign in (or to set up) and return None.

    Page functions call it first and return at once when it gives None. Signing in then comes
    back to this page.
    """
    user = current_user()
    if user is None:
        ui.navigate.to(_signed_out_target())
    return user


def signed_out_redirect() -> RedirectResponse:
    """An HTTP redirect for a signed-out browser: to sign in (and back to this page after), or
    to the first run's setup.

    Page functions that return it avoid rendering an empty page first (unlike require_user).
    """
    return RedirectResponse(_signed_out_target(), status_code=303)
