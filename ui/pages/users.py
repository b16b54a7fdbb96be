"""/users: administrators list, create and delete panel accounts."""

from __future__ import annotations

import asyncio
import logging

from fastapi.responses import RedirectResponse
from nicegui import ui

from backend.auth import AccountError, create_user
from backend.services import Services
from models.accounts import AccessError, all_users, delete_user
from models.entities import User
from ui.components.confirm import confirm
from ui.components.dates import utc_text
from ui.components.feedback import error_line, sentence
from ui.components.not_found import not_found
from ui.layout import frame, section_heading
from ui.session import current_user, signed_out_redirect

log = logging.getLogger("pulse.panel")


def register(services: Services) -> None:
    """Register the users page."""

    @ui.page("/users")
    def users_page() -> RedirectResponse | None:
        """The account list and a form for a new one; administrators only."""
        user = current_user()
        if user is None:
            return signed_out_redirect()
        if not user.is_admin:
            not_found(user, "Only administrators manage users.")
            return None
        with frame("Users", user):
            with ui.card().classes("w-full gap-2"):
                section_heading("New user")
                ui.label("They see only the websites they are given access to, on each "
                         "website's page.").classes("text-sm text-slate-600")
                with ui.row().classes("w-full items-start gap-2"):
                    email = ui.input("Email").props("type=email autocomplete=off") \
                        .classes("grow").mark("new-email")
                    password = ui.input("Password", password=True) \
                        .props("autocomplete=new-password").classes("grow").mark("new-password")
                    is_admin = ui.checkbox("Administrator").mark("new-admin")
                error = error_line()

                async def create() -> None:
                    error.text = ""
                    me = current_user()
                    if me is None or not me.is_admin:
                        error.text = "Only administrators create users."
                        return
                    button.disable()
                    try:
                        created = await asyncio.get_running_loop().run_in_executor(
                            None, lambda: create_user(email.value or "", password.value or "",
                                                      is_admin=bool(is_admin.value)))
                    except AccountError as exc:
                        error.text = sentence(exc)
                        return
                    finally:
                        button.enable()
                    log.info("user %s created in the panel", created.get_id())
                    email.value = ""
                    password.value = ""
                    is_admin.value = False
                    ui.notify(f"Created {created.email}", type="positive")
                    user_list.refresh()

                button = ui.button("Create user", on_click=create).mark("create-user")

            @ui.refreshable
            def user_list() -> None:
                for person in all_users():
                    with ui.card().classes("w-full").mark(f"user-{person.email}"), \
                            ui.row().classes("w-full items-center justify-between"):
                        with ui.row().classes("items-center gap-2"):
                            ui.label(person.email).classes("font-medium")
                            if person.is_admin:
                                ui.badge("admin").props("outline")
                            ui.label(f"since {utc_text(person.created_at)}") \
                                .classes("text-sm text-slate-500")
                        if person.get_id() != user.get_id():
                            ui.button("Delete", on_click=lambda p=person: delete(p)) \
                                .props("flat color=negative").mark(f"delete-{person.email}")

            async def delete(person: User) -> None:
                if not await confirm(f"Delete the account {person.email}? Its sessions, "
                                     "tokens and website access go with it.", "Delete user"):
                    return
                me = current_user()
                try:
                    if me is None:
                        raise AccessError("You cannot delete this account.")
                    delete_user(me, person.get_id())
                except AccessError as exc:
                    ui.notify(str(exc), type="negative")
                    return
                log.info("user %s deleted in the panel", person.get_id())
                ui.notify(f"Deleted {person.email}")
                user_list.refresh()

            section_heading("Accounts")
            user_list()
        return None
