"""/websites/{id}: one website's snippet, settings, members, and deleting it."""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from backend.services import Services
from backend.website_deletion import delete_website
from models.entities import Membership, User, Website
from models.websites import (
    WebsiteError,
    add_member,
    can_manage,
    find_website,
    members_of,
    remove_member,
    update_website,
    website_for,
)
from ui.components.confirm import confirm
from ui.components.feedback import error_line, sentence
from ui.components.not_found import not_found
from ui.components.snippet import request_origin, tracker_snippet
from ui.components.visitor_count import CurrentVisitors
from ui.components.website_form import WebsiteForm
from ui.layout import frame, heading_of, section_heading
from ui.session import current_user, signed_out_redirect

log = logging.getLogger("pulse.panel")

NOT_FOUND = "This website does not exist, or you do not have access to it."


def register(services: Services) -> None:
    """Register the website settings page."""

    @ui.page("/websites/{website_id}")
    def website_page(website_id: str, request: Request) -> RedirectResponse | None:
        """Snippet, settings, members and deletion of a website the user is a member of."""
        user = current_user()
        if user is None:
            return signed_out_redirect()
        website = website_for(user, website_id)
        if website is None:
            not_found(user, NOT_FOUND)
            return None
        manager = can_manage(user, website.id)

        with frame(website.name, user) as column:
            title = heading_of(column)
            with ui.row().classes("w-full items-center justify-between"):
                with ui.row().classes("items-center gap-4"):
                    domain_label = ui.label(website.domain).classes("text-slate-500")
                    CurrentVisitors(services.hub, website.id)
                ui.button("Live", icon="sensors",
                          on_click=lambda: ui.navigate.to(f"/websites/{website.id}/live"))

            with ui.card().classes("w-full"):
                section_heading("Tracking snippet")
                tracker_snippet(website.id, request_origin(request))
                ui.label(f"Website id: {website.id}").classes("text-xs text-slate-500")

            if manager:
                settings_card(services, website, title, domain_label)
            else:
                with ui.card().classes("w-full"):
                    section_heading("Settings")
                    ui.label(f"Time zone: {website.timezone}")
                    ui.label("Allowed origins: "
                             + (", ".join(website.origins()) or "only the domain itself"))
                    ui.label("Only an administrator or the website's owner changes these.") \
                        .classes("text-sm text-slate-500")

            members_card(user, website.id, manager)

            if manager:
                with ui.card().classes("w-full border border-red-200"):
                    section_heading("Delete this website")
                    ui.label("Removes the website and every event stored for it.") \
                        .classes("text-sm")

                    async def delete() -> None:
                        current = website_for(user, website.id)
                        if current is None or not can_manage(user, website.id):
                            ui.notify("This website is gone already.", type="warning")
                            return
                        if not await confirm(f"Delete {current.name} and all its events? "
                                             "This cannot be undone.", "Delete website"):
                            return
                        if not can_manage(user, website.id):  # the answer may come late
                            ui.notify("This website is gone already.", type="warning")
                            return
                        removed = await delete_website(services, website.id)
                        log.info("website %s deleted in the panel with %d events",
                                 website.id, removed)
                        ui.notify(f"Deleted {current.name}", type="positive")
                        ui.navigate.to("/")

                    ui.button("Delete website", icon="delete", on_click=delete) \
                        .props("color=negative outline").mark("delete-website")
        return None


def settings_card(services: Services, website: Website, title: ui.label,
                  domain_label: ui.label) -> None:
    """The edit form of a website's settings."""
    with ui.card().classes("w-full gap-2"):
        section_heading("Settings")
        form = WebsiteForm(website)

        def save() -> None:
            form.clear_error()
            current = find_website(website.id)  # a fresh copy: a refused change
            if current is None:                 # leaves no trace
                form.show_error("This website was deleted.")
                return
            try:
                update_website(current, name=form.name.value or "",
                               domain=form.domain.value or "",
                               origins=form.origins.value or "",
                               timezone=form.timezone.value or "UTC")
            except WebsiteError as exc:
                form.show_error(sentence(exc))
                return
            services.websites.invalidate(current.id)
            title.text = current.name
            domain_label.text = current.domain
            form.name.value = current.name
            form.domain.value = current.domain
            form.origins.value = "\n".join(current.origins())
            ui.page_title(f"{current.name} · Pulse")
            ui.notify("Saved", type="positive")

        ui.button("Save", on_click=save).mark("save-website")


def members_card(user: User, website_id: str, manager: bool) -> None:
    """Who may see the website; managers add people by email and remove them."""
    with ui.card().classes("w-full gap-2"):
        section_heading("Members")

        @ui.refreshable
        def member_list() -> None:
            members = members_of(website_id)
            owners = sum(1 for m in members if m.role == "owner")
            for membership in members:
                with ui.row().classes("w-full items-center justify-between") \
                        .mark(f"member-{membership.user.email}"):
                    with ui.row().classes("items-center gap-2"):
                        ui.label(membership.user.email)
                        ui.badge(membership.role).props("outline")
                    if manager and not (membership.role == "owner" and owners <= 1):
                        ui.button("Remove", on_click=lambda m=membership: remove(m)) \
                            .props("flat dense color=negative") \
                            .mark(f"remove-{membership.user.email}")

        def remove(membership: Membership) -> None:
            try:
                remove_member(user, website_id, membership.user.get_id())
            except WebsiteError as exc:
                ui.notify(str(exc), type="negative")
                return
            log.info("access to %s removed", website_id)
            ui.notify(f"{membership.user.email} no longer sees this website")
            if membership.user.get_id() == user.get_id():
                ui.navigate.to("/")
                return
            member_list.refresh()

        member_list()
        if not manager:
            return
        with ui.row().classes("w-full items-start gap-2"):
            email = ui.input("Member email", placeholder="someone@example.com") \
                .classes("grow").mark("member-email")
            error = error_line()

            def add() -> None:
                error.text = ""
                try:
                    person = add_member(user, website_id, email.value or "")
                except WebsiteError as exc:
                    error.text = str(exc)
                    return
                log.info("access to %s given", website_id)
                email.value = ""
                ui.notify(f"{person.email} now sees this website", type="positive")
                member_list.refresh()

            ui.button("Give access", on_click=add).mark("give-access")
