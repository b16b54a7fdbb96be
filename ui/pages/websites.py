"""/: the signed-in user's websites, each with its live visitors and a 30-minute sparkline, and
adding one."""

from __future__ import annotations

import asyncio
import logging

from fastapi.responses import RedirectResponse
from nicegui import ui

from backend.services import Services
from models.websites import WebsiteError, create_website, websites_of
from ui.components.feedback import sentence
from ui.components.website_form import WebsiteForm
from ui.components.website_list import WebsiteList
from ui.layout import frame, section_heading
from ui.session import current_user, signed_out_redirect

log = logging.getLogger("pulse.panel")


def register(services: Services) -> None:
    """Register the websites list."""

    @ui.page("/")
    async def websites_page() -> RedirectResponse | None:
        """Every website the user is a member of, with live counts and sparklines (searchable,
        sortable, paged); a dialog adds one."""
        user = current_user()
        if user is None:
            return signed_out_redirect()
        with frame("Websites", user):
            with ui.dialog().props('aria-label="Add a website"') as dialog, \
                    ui.card().classes("w-full max-w-lg gap-2"):
                section_heading("Add a website")
                form = WebsiteForm()

                def add() -> None:
                    form.clear_error()
                    try:
                        website = create_website(
                            form.domain.value or "", name=form.name.value or None,
                            origins=form.origins.value or "",
                            timezone=form.timezone.value or "UTC", owner=user)
                    except WebsiteError as exc:
                        form.show_error(sentence(exc))
                        return
                    services.websites.invalidate(website.id)
                    log.info("website %s created in the panel", website.id)
                    ui.notify(f"Added {website.name}", type="positive")
                    ui.navigate.to(f"/websites/{website.id}")

                with ui.row().classes("w-full justify-end gap-2"):
                    ui.button("Cancel", on_click=dialog.close).props("flat")
                    ui.button("Create website", on_click=add).mark("create-website")

            # Read in a worker thread: an agency's thousand websites never stall the loop.
            websites = await asyncio.get_running_loop().run_in_executor(None, websites_of, user)
            with ui.row().classes("w-full items-center justify-between"):
                ui.label(f"{len(websites):,} website{'' if len(websites) == 1 else 's'}") \
                    .classes("text-sm text-slate-500")
                with ui.row().classes("items-center gap-2"):
                    ui.button("Add website", icon="add", on_click=dialog.open) \
                        .mark("add-website")
            if not websites:
                ui.label("No websites yet. Add one to get its tracking snippet.") \
                    .classes("text-slate-500")
            else:
                await WebsiteList.create(services.hub, websites)
        return None

