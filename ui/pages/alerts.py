"""/websites/{id}/alerts: a website's alert rules, webhooks, deliveries and alert history
(owners and admins only)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from backend.services import Services
from models.alerts import (
    KINDS,
    AlertError,
    create_webhook,
    deliveries_of,
    history_of,
    rule_of,
    rules_of,
    webhook_of,
    webhooks_of,
)
from models.entities import User, Website
from models.websites import can_manage, find_website, website_for
from ui.components.confirm import confirm
from ui.components.copyable import copyable
from ui.components.dates import utc_text
from ui.components.feedback import error_line, sentence
from ui.components.not_found import not_found
from ui.layout import frame
from ui.session import current_user, signed_out_redirect

log = logging.getLogger("pulse.panel")

NOT_FOUND = "This website does not exist, or you are not one of its owners."
DELIVERY_REFRESH_SECONDS = 2.0
KIND_HELP = {
    "spike": "current visitors reach the threshold",
    "drop": "current visitors stay at or below the threshold for some minutes",
    "silence": "no event at all for some minutes (the tracker or the site is down)",
    "goal": "a custom event (e.g. js_error) more than threshold times in some minutes",
}


def register(services: Services) -> None:
    """Register the alerts page."""

    @ui.page("/websites/{website_id}/alerts")
    def alerts_page(website_id: str) -> RedirectResponse | None:
        """Rules, webhooks, deliveries and history of one website."""
        user = current_user()
        if user is None:
            return signed_out_redirect()
        website = website_for(user, website_id)
        if website is None or not can_manage(user, website.id):
            not_found(user, NOT_FOUND)
            return None
        AlertsPage(services, user, website)
        return None


class AlertsPage:
    """The widgets of one open alerts page."""

    def __init__(self, services: Services, user: User, website: Website) -> None:
        self.services = services
        self.engine = services.alerts
        self.user = user
        self.website = website
        with frame(f"{website.name} · alerts", user):
            with ui.row().classes("w-full items-center gap-4 -mt-2"):
                ui.link("Live view", f"/websites/{website.id}/live").classes("text-sm")
                ui.link("Website settings", f"/websites/{website.id}").classes("text-sm")
            if self.engine.deliveries.smtp is None:
                ui.label("Email is not configured: set PULSE_SMTP_URL (and PULSE_SMTP_FROM) "
                         "to send alert emails. Webhooks and the live page's banner work "
                         "without it.").classes("text-sm text-amber-800 bg-amber-50 p-2 "
                                                "rounded").mark("smtp-missing")
            self.rules_card()
            self.webhooks_card()
            with ui.card().classes("w-full gap-2"):
                ui.label("Deliveries").classes("text-lg font-semibold")
                self.delivery_list()
            with ui.card().classes("w-full gap-2"):
                ui.label("Alert history").classes("text-lg font-semibold")
                self.history_list()
        ui.timer(DELIVERY_REFRESH_SECONDS, self.delivery_list.refresh)

    def allowed(self) -> bool:
        """Whether the user still owns the website (checked again on every change)."""
        if find_website(self.website.id) is None or \
                not can_manage(self.user, self.website.id):
            ui.notify("You can no longer change this website's alerts.", type="negative")
            return False
        return True

    # -- rules --------------------------------------------------------------------------------
    def rules_card(self) -> None:
        with ui.card().classes("w-full gap-2"):
            ui.label("Rules").classes("text-lg font-semibold")
            self.rule_list()
            ui.label("New rule").classes("font-medium pt-2")
            with ui.row().classes("w-full items-start gap-2"):
                self.kind = ui.select({k: k for k in KINDS}, value="spike", label="Kind") \
                    .classes("w-32").mark("rule-kind")
                self.threshold = ui.number("Threshold", value=50, min=0, precision=0) \
                    .classes("w-28").mark("rule-threshold")
                self.minutes = ui.number("Minutes", value=10, min=1, precision=0) \
                    .classes("w-28").mark("rule-minutes")
                self.event = ui.input("Event name", placeholder="js_error") \
                    .classes("w-36").mark("rule-event")
                self.cooldown = ui.number("Cool-down (min)", value=15, min=0, precision=0) \
                    .classes("w-36").mark("rule-cooldown")
            with ui.row().classes("w-full items-start gap-2"):
                self.hooks = ui.select({}, multiple=True, label="Webhooks") \
                    .classes("min-w-64").mark("rule-webhooks")
                self.emails = ui.input("Emails (comma-separated)") \
                    .classes("grow").mark("rule-emails")
                ui.button("Add rule", on_click=self.add_rule).mark("add-rule")
            self.kind_help = ui.label(KIND_HELP["spike"]).classes("text-sm text-slate-500")
            self.kind.on_value_change(lambda e: self.kind_help.set_text(KIND_HELP[e.value]))
            self.rule_error = error_line()
            self.fill_hooks()

    @ui.refreshable_method
    def rule_list(self) -> None:
        rules = rules_of(self.website.id)
        if not rules:
            ui.label("No rules yet.").classes("text-slate-500")
        for rule in rules:
            state = self.engine.state(rule.id)
            firing = state is not None and state.firing
            with ui.row().classes("w-full items-center justify-between").mark(f"rule-{rule.id}"):
                with ui.column().classes("gap-0"):
                    with ui.row().classes("items-center gap-2"):
                        ui.badge(rule.kind).props("outline")
                        ui.label(rule.describe())
                        if firing:
                            ui.badge("firing", color="negative")
                    targets = [f"{len(rule.webhooks())} webhook(s)"] + rule.email_list()
                    ui.label(f"cool-down {rule.cooldown_minutes} min · notifies "
                             + ", ".join(targets)).classes("text-sm text-slate-500")
                ui.button("Delete", on_click=lambda r=rule.id: self.delete_rule(r)) \
                    .props("flat dense color=negative").mark(f"delete-rule-{rule.id}")

    def add_rule(self) -> None:
        self.rule_error.text = ""
        if not self.allowed():
            return
        body: dict[str, Any] = {"kind": self.kind.value,
                                "cooldown_minutes": _whole(self.cooldown.value),
                                "webhooks": list(self.hooks.value or []),
                                "emails": [e.strip() for e in (self.emails.value or "").split(",")
                                           if e.strip()]}
        if self.kind.value in ("spike", "drop", "goal"):
            body["threshold"] = _whole(self.threshold.value)
        if self.kind.value in ("drop", "silence", "goal"):
            body["minutes"] = _whole(self.minutes.value)
        if self.kind.value == "goal":
            body["event"] = (self.event.value or "").strip()
        try:
            rule = self.engine.create_rule(self.website, body)
        except AlertError as error:
            self.rule_error.text = sentence(f"{error.field.replace('_', ' ')}: {error.message}")
            return
        log.info("alert rule %s created for %s in the panel", rule.id, self.website.id)
        ui.notify("Rule added", type="positive")
        self.rule_list.refresh()

    async def delete_rule(self, rule_id: int) -> None:
        rule = rule_of(self.website.id, rule_id)
        if rule is None or not self.allowed():
            self.rule_list.refresh()
            return
        if not await confirm(f"Delete the rule '{rule.describe()}' and its history?", "Delete"):
            return
        self.engine.delete_rule(rule)
        ui.notify("Rule deleted")
        self.rule_list.refresh()
        self.history_list.refresh()

    # -- webhooks -----------------------------------------------------------------------------
    def webhooks_card(self) -> None:
        with ui.card().classes("w-full gap-2"):
            ui.label("Webhooks").classes("text-lg font-semibold")
            ui.label("Pulse POSTs a JSON body to each; the header X-Pulse-Signature is "
                     "sha256=<HMAC-SHA256 of the body with the webhook's secret>.") \
                .classes("text-sm text-slate-600")
            self.webhook_list()
            with ui.row().classes("w-full items-start gap-2"):
                self.hook_url = ui.input("URL", placeholder="https://example.com/hooks/pulse") \
                    .classes("grow").mark("webhook-url")
                self.hook_secret = ui.input("Secret (empty: generated)") \
                    .classes("w-64").mark("webhook-secret")
                ui.button("Add webhook", on_click=self.add_webhook).mark("add-webhook")
            self.hook_error = error_line()
            self.hook_shown = ui.column().classes("w-full gap-1")

    def fill_hooks(self) -> None:
        self.hooks.set_options({h.id: h.url for h in webhooks_of(self.website.id)})

    @ui.refreshable_method
    def webhook_list(self) -> None:
        hooks = webhooks_of(self.website.id)
        if not hooks:
            ui.label("No webhooks yet.").classes("text-slate-500")
        for hook in hooks:
            with ui.row().classes("w-full items-center justify-between") \
                    .mark(f"webhook-{hook.id}"):
                ui.label(hook.url).classes("font-mono text-sm break-all")
                with ui.row().classes("gap-1"):
                    ui.button("Send test", on_click=lambda h=hook.id: self.send_test(h)) \
                        .props("flat dense").mark(f"test-webhook-{hook.id}")
                    ui.button("Delete", on_click=lambda h=hook.id: self.delete_webhook(h)) \
                        .props("flat dense color=negative").mark(f"delete-webhook-{hook.id}")

    def add_webhook(self) -> None:
        self.hook_error.text = ""
        if not self.allowed():
            return
        secret = (self.hook_secret.value or "").strip()
        try:
            hook = create_webhook(self.website, self.hook_url.value, secret or None)
        except AlertError as error:
            self.hook_error.text = sentence(f"{error.field}: {error.message}")
            return
        log.info("webhook %s created for %s in the panel", hook.id, self.website.id)
        self.hook_url.value = ""
        self.hook_secret.value = ""
        self.hook_shown.clear()
        if not secret:
            with self.hook_shown:
                ui.label("The webhook's secret, shown once: verify the signature with it.") \
                    .classes("text-sm text-amber-700")
                copyable(hook.secret, "webhook-secret-value")
        self.webhook_list.refresh()
        self.fill_hooks()

    def send_test(self, webhook_id: int) -> None:
        hook = webhook_of(self.website.id, webhook_id)
        if hook is None or not self.allowed():
            return
        self.engine.send_test(hook)
        ui.notify("Test sent: see Deliveries")
        self.delivery_list.refresh()

    async def delete_webhook(self, webhook_id: int) -> None:
        hook = webhook_of(self.website.id, webhook_id)
        if hook is None or not self.allowed():
            return
        if not await confirm(f"Delete the webhook {hook.url}?", "Delete"):
            return
        self.engine.delete_webhook(hook)
        ui.notify("Webhook deleted")
        self.webhook_list.refresh()
        self.rule_list.refresh()
        self.fill_hooks()

    # -- deliveries and history ---------------------------------------------------------------
    @ui.refreshable_method
    def delivery_list(self) -> None:
        deliveries = deliveries_of(self.website.id, 20)
        if not deliveries:
            ui.label("Nothing sent yet.").classes("text-slate-500")
        for d in deliveries:
            code = f"HTTP {d.response_code}" if d.response_code else ""
            with ui.row().classes("w-full items-center gap-3 text-sm").mark(f"delivery-{d.id}"):
                ui.badge(d.status, color={"sent": "positive", "failed": "negative"}
                         .get(d.status, "warning")).mark("delivery-status")
                ui.label(utc_text(d.created_at)).classes("text-slate-500")
                ui.label(f"{d.channel} → {d.target}").classes("font-mono break-all")
                ui.label(" · ".join(x for x in (code, f"{d.attempts} attempt(s)", d.error) if x)) \
                    .classes("text-slate-500")

    @ui.refreshable_method
    def history_list(self) -> None:
        entries = history_of(self.website.id, 50)
        if not entries:
            ui.label("No alert has fired yet.").classes("text-slate-500")
        for entry in entries:
            with ui.row().classes("w-full items-center gap-3 text-sm"):
                ui.badge(entry.state, color="negative" if entry.state == "fired"
                         else "positive")
                ui.label(utc_text(entry.at)).classes("text-slate-500")
                ui.label(f"{entry.rule.describe()} · value {entry.value}")


def _whole(value: Any) -> Any:
    """A number input's value as an int when it is a whole number (else as it is, refused)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
