"""/login: sign in with email and password; failed attempts are throttled per account and IP."""

from __future__ import annotations

import logging
import math

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from backend.auth import check_credentials_async
from backend.services import Services
from models.accounts import accounts_exist
from ui.components.feedback import error_line
from ui.layout import frame
from ui.session import current_user, local_path, sign_in

log = logging.getLogger("pulse.panel")

WRONG_CREDENTIALS = "Wrong email or password."


def wait_text(seconds: float) -> str:
    """'Too many failed sign-ins…' with the wait rounded up to whole minutes."""
    minutes = max(1, math.ceil(seconds / 60))
    return (f"Too many failed sign-ins. Try again in {minutes} minute"
            f"{'' if minutes == 1 else 's'}.")


def register(services: Services) -> None:
    """Register the sign-in page."""
    throttle = services.login_throttle

    @ui.page("/login")
    def login_page(request: Request) -> RedirectResponse | None:
        """The sign-in form (or straight on, when this browser is signed in already); then the
        page that was asked for (``?next=/websites/…/live``, a local path only) or the list."""
        destination = local_path(request.query_params.get("next")) or "/"
        if current_user() is not None:
            return RedirectResponse(destination, status_code=303)
        if not accounts_exist():
            return RedirectResponse("/setup", status_code=303)
        # uvicorn runs with proxy_headers behind Tornado's forwarding route: the real client.
        ip = request.client.host if request.client else ""

        with frame("Welcome back"), ui.card().classes("w-full max-w-md gap-3"):
            email = ui.input("Email").props("type=email autocomplete=username") \
                .classes("w-full").mark("email")
            password = ui.input("Password", password=True) \
                .props("autocomplete=current-password").classes("w-full").mark("password")
            error = error_line()

            busy = False  # one attempt at a time per page (Enter and the button may race)

            async def attempt() -> None:
                nonlocal busy
                if busy:
                    return
                address = (email.value or "").strip()
                secret = password.value or ""
                error.text = ""
                wait = throttle.retry_after(address, ip)
                if wait > 0:
                    error.text = wait_text(wait)
                    ui.notify(error.text, type="negative")
                    return
                busy = True
                button.disable()
                try:
                    user = await check_credentials_async(address, secret)
                finally:
                    busy = False
                    button.enable()
                if user is None:
                    throttle.failed(address, ip)
                    log.info("failed sign-in")
                    error.text = WRONG_CREDENTIALS
                    ui.notify(WRONG_CREDENTIALS, type="negative")
                    return
                throttle.succeeded(address)
                sign_in(user)
                ui.navigate.to(destination)

            button = ui.button("Sign in", on_click=attempt).classes("w-full").mark("sign-in")
            password.on("keydown.enter", attempt)
        return None
