"""/setup: the first run asks for the first account, which becomes the administrator."""

from __future__ import annotations

import asyncio
import logging

from nicegui import ui

from backend.auth import AccountError, create_user
from backend.services import Services
from models.accounts import accounts_exist
from ui.components.feedback import error_line, sentence
from ui.layout import frame
from ui.session import current_user, sign_in

log = logging.getLogger("pulse.panel")


def register(services: Services) -> None:
    """Register the first-run page."""
    creating = asyncio.Lock()  # two browsers racing through the first run make one admin

    @ui.page("/setup")
    def setup_page() -> None:
        """Create the first admin account; refused once any user exists."""
        if accounts_exist():
            with frame("Already set up", current_user()):
                ui.label("Pulse already has accounts. Ask an administrator for one.")
                ui.link("Sign in", "/login")
            return

        with frame("Welcome to Pulse"), ui.card().classes("w-full max-w-md gap-3"):
            ui.label("Create the first account. It is the administrator: it adds the "
                     "other accounts and gives them access to websites.").classes("text-sm")
            email = ui.input("Email").props("type=email autocomplete=username") \
                .classes("w-full").mark("email")
            password = ui.input("Password", password=True) \
                .props("autocomplete=new-password").classes("w-full").mark("password")
            again = ui.input("Password (again)", password=True) \
                .props("autocomplete=new-password").classes("w-full").mark("password-again")
            error = error_line()

            async def create() -> None:
                error.text = ""
                if (password.value or "") != (again.value or ""):
                    error.text = "The two passwords differ."
                    return
                button.disable()
                try:
                    async with creating:
                        if accounts_exist():
                            error.text = "Pulse is already set up: sign in instead."
                            return
                        user = await asyncio.get_running_loop().run_in_executor(
                            None, lambda: create_user(email.value or "", password.value or "",
                                                      is_admin=True))
                except AccountError as exc:
                    error.text = sentence(exc)
                    return
                finally:
                    button.enable()
                log.info("first admin account created")
                sign_in(user)
                ui.navigate.to("/")

            button = ui.button("Create admin account", on_click=create).mark("create-admin")
            password.on("keydown.enter", create)
            again.on("keydown.enter", create)
