"""/tokens: API tokens for programs (the SSE stream): create (shown once), list, revoke."""

from __future__ import annotations

import logging

from fastapi.responses import RedirectResponse
from nicegui import ui

from backend.services import Services
from models.accounts import active_tokens, issue_token, revoke_token
from models.entities import ApiToken
from ui.components.confirm import confirm
from ui.components.copyable import copyable
from ui.components.dates import utc_text
from ui.components.feedback import error_line
from ui.layout import frame, section_heading
from ui.session import current_user, signed_out_redirect

log = logging.getLogger("pulse.panel")

MAX_NAME = 100


def register(services: Services) -> None:
    """Register the API tokens page."""

    @ui.page("/tokens")
    def tokens_page() -> RedirectResponse | None:
        """Create, list and revoke the signed-in user's API tokens."""
        user = current_user()
        if user is None:
            return signed_out_redirect()
        with frame("API tokens", user):
            ui.label("Programs use a token to follow the live stream: "
                     "Authorization: Bearer <token>. Each token acts as you.") \
                .classes("text-sm text-slate-600")

            with ui.card().classes("w-full gap-2"):
                section_heading("New token")
                with ui.row().classes("w-full items-start gap-2"):
                    name = ui.input("Token name", placeholder="e.g. dashboard script") \
                        .classes("grow").mark("token-name")
                    ui.button("Create token", on_click=lambda: create()).mark("create-token")
                error = error_line()
                shown = ui.column().classes("w-full gap-1")

            @ui.refreshable
            def token_list() -> None:
                tokens = active_tokens(user)
                if not tokens:
                    ui.label("No tokens yet.").classes("text-slate-500")
                for token in tokens:
                    with ui.card().classes("w-full").mark(f"token-{token.get_id()}"), \
                            ui.row().classes("w-full items-center justify-between"):
                        with ui.column().classes("gap-0"):
                            ui.label(token.name or "(unnamed)").classes("font-medium")
                            ui.label(f"{token.prefix}… · created {utc_text(token.created_at)} "
                                     f"· last used {utc_text(token.last_used_at)}") \
                                .classes("text-sm text-slate-500 font-mono")
                        ui.button("Revoke", on_click=lambda t=token: revoke(t)) \
                            .props("flat color=negative").mark(f"revoke-{token.get_id()}")

            def create() -> None:
                error.text = ""
                label = (name.value or "").strip()
                if len(label) > MAX_NAME:
                    error.text = f"The name may have at most {MAX_NAME} characters."
                    return
                record, secret = issue_token(user, label)
                log.info("API token %s created in the panel", record.prefix)
                name.value = ""
                shown.clear()
                with shown:
                    ui.label("Copy the token now: Pulse keeps only its hash and will not show "
                             "it again.").classes("text-sm text-amber-700")
                    copyable(secret, "new-token")
                token_list.refresh()

            async def revoke(token: ApiToken) -> None:
                if not await confirm(f"Revoke the token {token.name or token.prefix}? Programs "
                                     "using it lose access at once.", "Revoke"):
                    return
                if revoke_token(user, token.token_hash) is not None:
                    log.info("API token %s revoked in the panel", token.prefix)
                ui.notify("Token revoked")
                shown.clear()
                token_list.refresh()

            section_heading("Your tokens")
            token_list()
        return None
