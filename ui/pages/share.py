"""Share links: the public, read-only live view behind a link (``/share/{slug}/live``, no
account), and the owners' page that creates and revokes links and turns the embeddable live
counter on or off (``/websites/{id}/shares``)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from nicegui import ui

from backend.auth import hash_password
from backend.handlers.embed import counter_snippets
from backend.handlers.share import PAGE, share_cookie_name, share_unlocked
from backend.services import Services
from models.alerts import (
    AlertError,
    check_share,
    counter_enabled,
    create_share,
    revoke_share,
    set_counter,
    share_by_slug,
    share_of,
    share_url,
    shares_of,
)
from models.entities import User, Website
from models.websites import can_manage, find_website, website_for
from ui.components.confirm import confirm
from ui.components.copyable import copyable
from ui.components.dates import utc_text
from ui.components.feedback import error_line, sentence
from ui.components.live_widgets import add_live_assets, connection_status
from ui.components.not_found import not_found
from ui.components.snippet import request_origin
from ui.layout import frame
from ui.pages.live import REDRAW_SECONDS, LiveView
from ui.session import current_user, signed_out_redirect

log = logging.getLogger("pulse.panel")

NOT_FOUND = "This website does not exist, or you are not one of its owners."
REVOKED_CHECK_SECONDS = 10.0


def gone() -> HTMLResponse:
    """The 404 page of a revoked or unknown link."""
    return HTMLResponse(PAGE.format(
        title="Not found", body="<h1>This link does not exist</h1><p>It may have been revoked. "
        "Ask whoever shared it for a new one.</p>"), status_code=404,
        headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"})


def register(services: Services) -> None:
    """Register the public shared live view and the owners' share links page."""

    @ui.page("/share/{slug}/live")
    def shared_live_page(slug: str, request: Request) -> HTMLResponse | RedirectResponse | None:
        """A website's live view, read-only, for anyone holding the link."""
        share = share_by_slug(slug)
        website = find_website(share.website_id) if share is not None else None
        if share is None or website is None:
            return gone()
        if not share_unlocked(services.settings.secret, share,
                              request.cookies.get(share_cookie_name(share))):
            return RedirectResponse(f"/share/{slug}", status_code=303)
        add_live_assets()
        ui.add_head_html('<meta name="robots" content="noindex">'
                         '<meta name="referrer" content="no-referrer">')
        with frame(share.label or f"{website.name} · live"):
            with ui.row().classes("w-full items-center gap-4 -mt-2"):
                connection_status()
                ui.label(f"{website.domain} · times in {website.timezone} · shared live view") \
                    .classes("text-sm text-slate-500").mark("shared-domain")
            view = LiveView(services, website)
        view.redraw()
        unsubscribe = services.hub.subscribe(website.id, view.state.on_message)
        ui.context.client.on_delete(unsubscribe)
        ui.timer(REDRAW_SECONDS, view.tick)

        def still_shared() -> None:
            if share_by_slug(slug) is None:  # revoked while open: the page goes too
                ui.navigate.to(f"/share/{slug}")

        ui.timer(REVOKED_CHECK_SECONDS, still_shared)
        return None

    @ui.page("/websites/{website_id}/shares")
    def shares_page(website_id: str, request: Request) -> RedirectResponse | None:
        """Create, list and revoke a website's share links (owners and admins)."""
        user = current_user()
        if user is None:
            return signed_out_redirect()
        website = website_for(user, website_id)
        if website is None or not can_manage(user, website.id):
            not_found(user, NOT_FOUND)
            return None
        SharesPage(services, user, website,
                   services.settings.public_url or request_origin(request))
        return None


class SharesPage:
    """The widgets of one open share links page."""

    def __init__(self, services: Services, user: User, website: Website, base_url: str) -> None:
        self.services = services
        self.user = user
        self.website = website
        self.base_url = base_url
        with frame(f"{website.name} · share links", user):
            ui.label("A share link shows this website's live view, read-only, to anyone who has "
                     "it: no account, nothing of members, tokens or settings. Revoke it and the "
                     "link is gone at once.").classes("text-sm text-slate-600")
            with ui.card().classes("w-full gap-2"):
                ui.label("New share link").classes("text-lg font-semibold")
                with ui.row().classes("w-full items-start gap-2"):
                    self.label = ui.input("Label", placeholder="e.g. Office TV") \
                        .classes("grow").mark("share-label")
                    self.password = ui.input("Password (optional, 8+ characters)",
                                             password=True).classes("w-72") \
                        .mark("share-password")
                    ui.button("Create link", on_click=self.create).mark("create-share")
                self.error = error_line()
                self.created = ui.column().classes("w-full gap-1")
            with ui.card().classes("w-full gap-2"):
                ui.label("Share links").classes("text-lg font-semibold")
                self.share_list()
            with ui.card().classes("w-full gap-2"):
                ui.label("Embeddable live counter").classes("text-lg font-semibold")
                ui.label("Puts \"N people on this site now\" on any page, updated live. Off, "
                         "its address answers 404; on, it gives anyone the number of current "
                         "visitors and nothing else.").classes("text-sm text-slate-600")
                ui.switch("Live counter on", value=counter_enabled(website.id),
                          on_change=lambda e: self.toggle_counter(bool(e.value))) \
                    .mark("counter-switch")
                self.counter_snippets()

    @ui.refreshable_method
    def share_list(self) -> None:
        shares = shares_of(self.website.id)
        if not shares:
            ui.label("No share links.").classes("text-slate-500")
        for share in shares:
            with ui.row().classes("w-full items-center justify-between no-wrap") \
                    .mark(f"share-{share.id}"):
                with ui.column().classes("gap-0 min-w-0"):
                    ui.label((share.label or "(no label)")
                             + (" · password" if share.password_hash else "")) \
                        .classes("font-medium")
                    ui.label(f"{share_url(self.base_url, share.slug)} · created "
                             f"{utc_text(share.created_at)}") \
                        .classes("text-sm text-slate-500 font-mono break-all")
                ui.button("Revoke", on_click=lambda s=share.id: self.revoke(s)) \
                    .props("flat dense color=negative").mark(f"revoke-share-{share.id}")

    @ui.refreshable_method
    def counter_snippets(self) -> None:
        if not counter_enabled(self.website.id):
            return
        for name, snippet in counter_snippets(self.base_url, self.website.id).items():
            ui.label(name.capitalize()).classes("text-sm font-medium")
            copyable(snippet, "counter-snippet")

    def toggle_counter(self, enabled: bool) -> None:
        if not self.allowed():
            return
        set_counter(self.website, enabled)
        if not enabled:
            self.services.counters.close_website(self.website.id)
        log.info("live counter of %s turned %s in the panel", self.website.id,
                 "on" if enabled else "off")
        self.counter_snippets.refresh()

    def allowed(self) -> bool:
        if find_website(self.website.id) is None or not can_manage(self.user, self.website.id):
            ui.notify("You can no longer share this website.", type="negative")
            return False
        return True

    async def create(self) -> None:
        self.error.text = ""
        if not self.allowed():
            return
        try:
            label, password = check_share(self.label.value, self.password.value or None)
        except AlertError as error:
            self.error.text = sentence(f"{error.field}: {error.message}")
            return
        password_hash = None
        if password is not None:
            password_hash = await asyncio.get_running_loop().run_in_executor(
                None, hash_password, password)
        share = create_share(self.website, label, password_hash)
        log.info("share link %s created for %s in the panel", share.id, self.website.id)
        self.label.value = ""
        self.password.value = ""
        self.created.clear()
        with self.created:
            copyable(share_url(self.base_url, share.slug), "share-url")
        self.share_list.refresh()

    async def revoke(self, share_id: int) -> None:
        share = share_of(self.website.id, share_id)
        if share is None or not self.allowed():
            self.share_list.refresh()
            return
        if not await confirm(f"Revoke the link {share.label or share.slug}? Whoever has it "
                             "loses the live view at once.", "Revoke"):
            return
        revoke_share(share)
        ui.notify("Link revoked")
        self.created.clear()
        self.share_list.refresh()
