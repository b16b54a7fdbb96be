"""The management API, ``/api/v1/…``: websites, members, tokens, alert rules, webhooks and share
links over JSON with a Bearer token, through the same service functions as the panel.

A website the token's user is not a member of is a 404, exactly like one that does not exist;
a member who is not an owner (or an administrator) may read but gets 403 on changes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from backend.auth import hash_password, user_from_authorization
from backend.handlers.base import ApiError, BaseHandler
from backend.website_deletion import delete_website
from models.accounts import AccessError, active_tokens, issue_token, revoke_token
from models.alerts import (
    AlertError,
    check_share,
    counter_enabled,
    create_share,
    create_webhook,
    deliveries_of,
    history_of,
    revoke_share,
    rule_of,
    rules_of,
    set_counter,
    share_of,
    shares_of,
    webhook_of,
    webhooks_of,
)
from models.entities import ApiToken, User, Website
from models.websites import (
    WebsiteError,
    add_member,
    can_manage,
    check_timezone,
    create_website,
    members_of,
    normalize_domain,
    normalize_origins,
    remove_member,
    website_for,
    websites_of,
)

MAX_LIST = 200


def website_json(website: Website, user: User) -> dict[str, Any]:
    """The public form of a website, as its member ``user`` sees it."""
    return {"id": website.id, "name": website.name, "domain": website.domain,
            "origins": website.origins(), "timezone": website.timezone,
            "created_at": website.created_at, "can_manage": can_manage(user, website.id)}


class ManageHandler(BaseHandler):
    """Base of the management API: Bearer token only, JSON in and out."""

    user: User

    def prepare(self) -> None:
        """Only a Bearer token opens the API (a panel cookie never does: no cross-site
        requests)."""
        user = user_from_authorization(self.request.headers.get("Authorization"))
        if user is None:
            raise ApiError(401, "authentication required: Authorization: Bearer <token>",
                           {"WWW-Authenticate": 'Bearer realm="pulse"'})
        self.user = user

    def body(self) -> dict[str, Any]:
        """The request's JSON object."""
        try:
            value = json.loads(self.request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "body: is not valid JSON") from None
        if not isinstance(value, dict):
            raise ApiError(400, "body: must be a JSON object")
        return value

    def website(self, website_id: str, *, manage: bool = False) -> Website:
        """The website if the user is a member (404 otherwise); ``manage`` also asks for an
        owner or administrator (403)."""
        website = website_for(self.user, website_id)
        if website is None:
            raise ApiError(404, "website: no such website")
        if manage and not can_manage(self.user, website.id):
            raise ApiError(403, "only the website's owners may change this")
        return website

    def reply(self, status: int, payload: Any) -> None:
        """Answer ``payload`` (an object or a list) as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))

    def no_content(self) -> None:
        """Answer 204."""
        self.set_status(204)
        self.finish()

    def base_url(self) -> str:
        """Pulse's public address: PULSE_PUBLIC_URL, else the address this request reached."""
        configured = self.services.settings.public_url.rstrip("/")
        return configured or f"{self.request.protocol}://{self.request.host}"


def alert_error(error: AlertError) -> ApiError:
    """A refused field as a 400 naming it."""
    return ApiError(400, f"{error.field}: {error.message}")


class WebsitesHandler(ManageHandler):
    """``/api/v1/websites``: the user's websites; create one (the user becomes its owner)."""

    def get(self) -> None:
        """List the websites the user is a member of."""
        self.reply(200, [website_json(w, self.user) for w in websites_of(self.user)])

    def post(self) -> None:
        """Create a website: ``{"domain", "name"?, "timezone"?, "origins"?: [...]}``."""
        body = self.body()
        fields: dict[str, Any] = {}
        try:
            domain = body.get("domain")
            if not isinstance(domain, str):
                raise WebsiteError("is required")
            fields["domain"] = normalize_domain(domain)
        except WebsiteError as error:
            raise ApiError(400, f"domain: {error}") from None
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or not 1 <= len(name.strip()) <= 200):
            raise ApiError(400, "name: must have 1 to 200 characters")
        origins = body.get("origins", [])
        if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
            raise ApiError(400, "origins: must be a list of origins like https://example.com")
        try:
            normalize_origins(origins)
        except WebsiteError as error:
            raise ApiError(400, f"origins: {error}") from None
        timezone = body.get("timezone", "UTC")
        try:
            if not isinstance(timezone, str):
                raise WebsiteError("must be an IANA time zone name")
            check_timezone(timezone)
        except WebsiteError as error:
            raise ApiError(400, f"timezone: {error}") from None
        website = create_website(fields["domain"], name=name, origins=origins, timezone=timezone,
                                 owner=self.user)
        self.reply(201, website_json(website, self.user))


class WebsiteHandler(ManageHandler):
    """``/api/v1/websites/{id}``: one website; delete it with its events."""

    def get(self, website_id: str) -> None:
        """The website."""
        self.reply(200, website_json(self.website(website_id), self.user))

    async def delete(self, website_id: str) -> None:
        """Delete the website, its events, rules, webhooks and share links."""
        website = self.website(website_id, manage=True)
        await delete_website(self.services, website.id)
        self.no_content()


class MembersHandler(ManageHandler):
    """``/api/v1/websites/{id}/members``: who sees the website; add one by email."""

    def get(self, website_id: str) -> None:
        """The members and their roles."""
        website = self.website(website_id)
        self.reply(200, [{"user_id": m.user.get_id(), "email": m.user.email, "role": m.role}
                         for m in members_of(website.id)])

    def post(self, website_id: str) -> None:
        """Give an existing account access: ``{"email": …}``."""
        website = self.website(website_id, manage=True)
        email = self.body().get("email")
        if not isinstance(email, str) or not email.strip():
            raise ApiError(400, "email: is required")
        try:
            person = add_member(self.user, website.id, email)
        except WebsiteError as error:
            raise ApiError(400, f"email: {error}") from None
        self.reply(201, {"user_id": person.get_id(), "email": person.email, "role": "viewer"})


class MemberHandler(ManageHandler):
    """``/api/v1/websites/{id}/members/{user_id}``: take access away."""

    def delete(self, website_id: str, user_id: str) -> None:
        """Remove a member (a website keeps at least one owner)."""
        website = self.website(website_id, manage=True)
        try:
            remove_member(self.user, website.id, int(user_id))
        except WebsiteError as error:
            raise ApiError(409, str(error)) from None
        self.no_content()


class AlertsHandler(ManageHandler):
    """``/api/v1/websites/{id}/alerts``: the website's alert rules; add one."""

    def get(self, website_id: str) -> None:
        """The rules, each with whether it is firing now."""
        website = self.website(website_id)
        engine = self.services.alerts
        rules = []
        for rule in rules_of(website.id):
            state = engine.state(rule.id)
            rules.append(dict(rule.to_json(), firing=bool(state and state.firing)))
        self.reply(200, rules)

    def post(self, website_id: str) -> None:
        """Add a rule: ``{"kind", "threshold"?, "minutes"?, "event"?, "webhooks"?, "emails"?,
        "cooldown_minutes"?}``."""
        website = self.website(website_id, manage=True)
        try:
            rule = self.services.alerts.create_rule(website, self.body())
        except AlertError as error:
            raise alert_error(error) from None
        self.reply(201, rule.to_json())


class AlertHandler(ManageHandler):
    """``/api/v1/websites/{id}/alerts/{rule_id}``."""

    def get(self, website_id: str, rule_id: str) -> None:
        """One rule."""
        rule = rule_of(self.website(website_id).id, int(rule_id))
        if rule is None:
            raise ApiError(404, "rule: no such alert rule")
        self.reply(200, rule.to_json())

    def delete(self, website_id: str, rule_id: str) -> None:
        """Delete a rule with its history."""
        rule = rule_of(self.website(website_id, manage=True).id, int(rule_id))
        if rule is None:
            raise ApiError(404, "rule: no such alert rule")
        self.services.alerts.delete_rule(rule)
        self.no_content()


class AlertHistoryHandler(ManageHandler):
    """``/api/v1/websites/{id}/alert-history``: fired and resolved, newest first."""

    def get(self, website_id: str) -> None:
        """The latest alerts."""
        website = self.website(website_id)
        self.reply(200, [{"rule_id": h.rule_id, "kind": h.kind, "state": h.state,
                          "value": h.value, "threshold": h.threshold, "at": h.at}
                         for h in history_of(website.id, MAX_LIST)])


class WebhooksHandler(ManageHandler):
    """``/api/v1/websites/{id}/webhooks``: where alerts are POSTed; add one."""

    def get(self, website_id: str) -> None:
        """The webhooks (never their secrets)."""
        website = self.website(website_id, manage=True)
        self.reply(200, [h.to_json() for h in webhooks_of(website.id)])

    def post(self, website_id: str) -> None:
        """Add a webhook: ``{"url", "secret"?}`` (without a secret, one is made and returned
        once)."""
        website = self.website(website_id, manage=True)
        body = self.body()
        try:
            webhook = create_webhook(website, body.get("url"), body.get("secret"))
        except AlertError as error:
            raise alert_error(error) from None
        payload = webhook.to_json()
        if not body.get("secret"):
            payload["secret"] = webhook.secret
        self.reply(201, payload)


class WebhookHandler(ManageHandler):
    """``/api/v1/websites/{id}/webhooks/{webhook_id}``."""

    def delete(self, website_id: str, webhook_id: str) -> None:
        """Delete a webhook (rules naming it stop notifying it)."""
        webhook = webhook_of(self.website(website_id, manage=True).id, int(webhook_id))
        if webhook is None:
            raise ApiError(404, "webhook: no such webhook")
        self.services.alerts.delete_webhook(webhook)
        self.no_content()


class WebhookTestHandler(ManageHandler):
    """``POST /api/v1/websites/{id}/webhooks/{webhook_id}/test``: queue a test delivery."""

    def post(self, website_id: str, webhook_id: str) -> None:
        """Send a body with ``"state": "test"``; its status is under ``/deliveries``."""
        webhook = webhook_of(self.website(website_id, manage=True).id, int(webhook_id))
        if webhook is None:
            raise ApiError(404, "webhook: no such webhook")
        delivery = self.services.alerts.send_test(webhook)
        self.reply(202, {"delivery_id": delivery.id})


class DeliveriesHandler(ManageHandler):
    """``/api/v1/websites/{id}/deliveries``: the latest notifications and how they went."""

    def get(self, website_id: str) -> None:
        """The latest deliveries, newest first."""
        website = self.website(website_id, manage=True)
        self.reply(200, [{"id": d.id, "channel": d.channel, "target": d.target,
                          "status": d.status, "attempts": d.attempts,
                          "response_code": d.response_code, "error": d.error,
                          "created_at": d.created_at, "updated_at": d.updated_at}
                         for d in deliveries_of(website.id, MAX_LIST)])


class SharesHandler(ManageHandler):
    """``/api/v1/websites/{id}/shares``: public read-only links to the live view."""

    def get(self, website_id: str) -> None:
        """The live share links."""
        website = self.website(website_id, manage=True)
        base = self.base_url()
        self.reply(200, [s.to_json(base) for s in shares_of(website.id)])

    async def post(self, website_id: str) -> None:
        """Create a link: ``{"label"?, "password"?: null | "…"}``."""
        website = self.website(website_id, manage=True)
        body = self.body()
        try:
            label, password = check_share(body.get("label"), body.get("password"))
        except AlertError as error:
            raise alert_error(error) from None
        password_hash = None
        if password is not None:
            password_hash = await asyncio.get_running_loop().run_in_executor(
                None, hash_password, password)
        share = create_share(website, label, password_hash)
        self.reply(201, share.to_json(self.base_url()))


class ShareHandler(ManageHandler):
    """``/api/v1/websites/{id}/shares/{share_id}``."""

    def delete(self, website_id: str, share_id: str) -> None:
        """Revoke a link: its URL is a 404 from now on."""
        share = share_of(self.website(website_id, manage=True).id, int(share_id))
        if share is None:
            raise ApiError(404, "share: no such share link")
        revoke_share(share)
        self.no_content()


class CounterHandler(ManageHandler):
    """``/api/v1/websites/{id}/counter``: the embeddable live counter, on or off."""

    def _state(self, website: Website) -> dict[str, Any]:
        return {"enabled": counter_enabled(website.id),
                "url": f"{self.base_url()}/embed/{website.id}"}

    def get(self, website_id: str) -> None:
        """Whether the counter is on, and where it lives."""
        self.reply(200, self._state(self.website(website_id, manage=True)))

    def put(self, website_id: str) -> None:
        """Turn it on or off: ``{"enabled": true|false}`` (off ends the open counters)."""
        website = self.website(website_id, manage=True)
        enabled = self.body().get("enabled")
        if not isinstance(enabled, bool):
            raise ApiError(400, "enabled: must be true or false")
        set_counter(website, enabled)
        if not enabled:
            self.services.counters.close_website(website.id)
        self.reply(200, self._state(website))


class TokensHandler(ManageHandler):
    """``/api/v1/tokens``: the user's API tokens; create one (its text is shown once)."""

    def get(self) -> None:
        """The live tokens (never their text)."""
        self.reply(200, [{"id": t.get_id(), "name": t.name, "prefix": t.prefix,
                          "created_at": t.created_at, "last_used_at": t.last_used_at}
                         for t in active_tokens(self.user)])

    def post(self) -> None:
        """Create a token: ``{"name"?}`` → ``{"id", "name", "prefix", "token"}``."""
        name = self.body().get("name", "")
        if not isinstance(name, str):
            raise ApiError(400, "name: must be a string")
        try:
            record, token = issue_token(self.user, name)
        except AccessError as error:
            raise ApiError(400, f"name: {error}") from None
        self.reply(201, {"id": record.get_id(), "name": record.name, "prefix": record.prefix,
                         "created_at": record.created_at, "last_used_at": None,
                         "token": token})


class TokenHandler(ManageHandler):
    """``/api/v1/tokens/{id}``: revoke one of the user's tokens."""

    def delete(self, token_id: str) -> None:
        """Revoke the token (programs using it lose access at once)."""
        record = ApiToken.get_or_none((ApiToken._meta.primary_key == int(token_id))
                                      & (ApiToken.user == self.user))
        if record is None or revoke_token(self.user, record.token_hash) is None:
            raise ApiError(404, "token: no such token")
        self.no_content()


def manage_routes(deps: dict[str, Any]) -> list[tuple[str, type[ManageHandler], Any]]:
    """The management API's routes."""
    site = r"/api/v1/websites/([^/]{1,64})"
    return [
        (r"/api/v1/websites", WebsitesHandler, deps),
        (site, WebsiteHandler, deps),
        (site + r"/members", MembersHandler, deps),
        (site + r"/members/([0-9]{1,18})", MemberHandler, deps),
        (site + r"/alerts", AlertsHandler, deps),
        (site + r"/alerts/([0-9]{1,18})", AlertHandler, deps),
        (site + r"/alert-history", AlertHistoryHandler, deps),
        (site + r"/webhooks", WebhooksHandler, deps),
        (site + r"/webhooks/([0-9]{1,18})", WebhookHandler, deps),
        (site + r"/webhooks/([0-9]{1,18})/test", WebhookTestHandler, deps),
        (site + r"/deliveries", DeliveriesHandler, deps),
        (site + r"/shares", SharesHandler, deps),
        (site + r"/shares/([0-9]{1,18})", ShareHandler, deps),
        (site + r"/counter", CounterHandler, deps),
        (r"/api/v1/tokens", TokensHandler, deps),
        (r"/api/v1/tokens/([0-9]{1,18})", TokenHandler, deps),
    ]
