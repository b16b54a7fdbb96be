"""Alert rules, webhooks, their deliveries and the alert history of a website; share links.

The functions here are the one place rules, webhooks and share links are checked, created and
deleted: the panel and the management API both call them.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

import peewee

from models.db import BaseModel, database
from models.entities import Website, now_ms

KINDS = ("spike", "drop", "silence", "goal")
MAX_THRESHOLD = 10_000_000
MAX_MINUTES = 24 * 60
MAX_EMAILS = 10
MAX_COOLDOWN = 7 * 24 * 60
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}\.[^@\s.]{1,63}$")
_EVENT_NAME = re.compile(r"^[A-Za-z0-9_.:\- ]{1,64}$")


class AlertError(ValueError):
    """A rule, webhook or share link cannot be created as asked; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Webhook(BaseModel):
    """Where a website's alerts are POSTed, signed with the webhook's secret."""

    id = peewee.AutoField()
    website_id: str

    website = peewee.ForeignKeyField(Website, backref="webhooks", on_delete="CASCADE")
    url = peewee.CharField(max_length=2048)
    secret = peewee.CharField(max_length=256)
    created_at = peewee.BigIntegerField(default=now_ms)

    def to_json(self) -> dict[str, Any]:
        """The public form (the secret is never shown again)."""
        return {"id": self.id, "url": self.url, "created_at": self.created_at}


class AlertRule(BaseModel):
    """One condition on a website's live window that notifies when it starts and ends."""

    id = peewee.AutoField()
    website_id: str

    website = peewee.ForeignKeyField(Website, backref="alert_rules", on_delete="CASCADE")
    kind = peewee.CharField(max_length=16)
    threshold = peewee.IntegerField(null=True)
    minutes = peewee.IntegerField(null=True)
    event = peewee.CharField(max_length=64, default="")
    cooldown_minutes = peewee.IntegerField(default=15)
    webhook_ids = peewee.TextField(default="[]")  # JSON list of Webhook ids
    emails = peewee.TextField(default="[]")  # JSON list of addresses
    created_at = peewee.BigIntegerField(default=now_ms)

    def webhooks(self) -> list[int]:
        """The ids of the webhooks this rule notifies."""
        return [int(i) for i in json.loads(self.webhook_ids or "[]")]

    def email_list(self) -> list[str]:
        """The addresses this rule emails."""
        return [str(e) for e in json.loads(self.emails or "[]")]

    def describe(self) -> str:
        """The rule in words, e.g. 'current visitors ≥ 50'."""
        if self.kind == "spike":
            return f"current visitors ≥ {self.threshold}"
        if self.kind == "drop":
            return f"current visitors ≤ {self.threshold} for {self.minutes} min"
        if self.kind == "silence":
            return f"no event for {self.minutes} min"
        return f"'{self.event}' more than {self.threshold} times in {self.minutes} min"

    def to_json(self) -> dict[str, Any]:
        """The public form of the rule."""
        return {"id": self.id, "kind": self.kind, "threshold": self.threshold,
                "minutes": self.minutes, "event": self.event or None,
                "cooldown_minutes": self.cooldown_minutes, "webhooks": self.webhooks(),
                "emails": self.email_list(), "created_at": self.created_at}


class AlertHistory(BaseModel):
    """A rule fired or resolved: what, when and the value that did it."""

    id = peewee.AutoField()
    website_id: str
    rule_id: int

    website = peewee.ForeignKeyField(Website, backref="alert_history", on_delete="CASCADE")
    rule = peewee.ForeignKeyField(AlertRule, backref="history", on_delete="CASCADE")
    kind = peewee.CharField(max_length=16)
    state = peewee.CharField(max_length=16)  # fired | resolved
    value = peewee.IntegerField()
    threshold = peewee.IntegerField(null=True)
    at = peewee.BigIntegerField(default=now_ms)

    class Meta:
        indexes = ((("website", "at"), False),)


class Delivery(BaseModel):
    """One notification (a webhook POST or an email) and how sending it went."""

    id = peewee.AutoField()
    website_id: str
    webhook_id: int | None

    website = peewee.ForeignKeyField(Website, backref="deliveries", on_delete="CASCADE")
    webhook = peewee.ForeignKeyField(Webhook, null=True, backref="deliveries",
                                     on_delete="CASCADE")
    channel = peewee.CharField(max_length=8)  # webhook | email
    target = peewee.CharField(max_length=2048)  # the URL or the address
    body = peewee.TextField()  # the JSON sent (every retry sends the same bytes)
    status = peewee.CharField(max_length=16, default="pending")  # pending|retrying|sent|failed
    attempts = peewee.IntegerField(default=0)
    response_code = peewee.IntegerField(null=True)
    error = peewee.CharField(max_length=500, default="")
    created_at = peewee.BigIntegerField(default=now_ms)
    updated_at = peewee.BigIntegerField(default=now_ms)

    class Meta:
        indexes = ((("website", "created_at"), False),)


class Share(BaseModel):
    """A public, read-only link to a website's live view."""

    id = peewee.AutoField()
    website_id: str

    website = peewee.ForeignKeyField(Website, backref="shares", on_delete="CASCADE")
    slug = peewee.CharField(max_length=64, unique=True)
    label = peewee.CharField(max_length=200, default="")
    password_hash = peewee.CharField(max_length=255, null=True)
    created_at = peewee.BigIntegerField(default=now_ms)
    revoked_at = peewee.BigIntegerField(null=True)

    def to_json(self, base_url: str) -> dict[str, Any]:
        """The public form, with the absolute URL of the shared view."""
        return {"id": self.id, "label": self.label, "url": share_url(base_url, self.slug),
                "password": self.password_hash is not None, "created_at": self.created_at}


class Embed(BaseModel):
    """Whether a website's live counter may be embedded on other sites (off until turned on)."""

    website = peewee.ForeignKeyField(Website, primary_key=True, backref="embed",
                                     on_delete="CASCADE")
    website_id: str
    enabled = peewee.BooleanField(default=False)
    updated_at = peewee.BigIntegerField(default=now_ms)


ALERT_MODELS: list[type[BaseModel]] = [Webhook, AlertRule, AlertHistory, Delivery, Share, Embed]


def share_url(base_url: str, slug: str) -> str:
    """The absolute URL of a share link."""
    return f"{base_url.rstrip('/')}/share/{slug}"


# -- webhooks ---------------------------------------------------------------------------------
def check_url(url: Any) -> str:
    """An http(s) URL a webhook may be sent to."""
    if not isinstance(url, str) or not url.strip():
        raise AlertError("url", "is required")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2048:
        raise AlertError("url", "must be an http:// or https:// URL")
    return url


def create_webhook(website: Website, url: Any, secret: Any = None) -> Webhook:
    """A new webhook of ``website``; without a secret, a random one is made."""
    url = check_url(url)
    if secret is None or secret == "":
        secret = secrets.token_urlsafe(32)
    if not isinstance(secret, str) or len(secret) > 256:
        raise AlertError("secret", "must be a string of at most 256 characters")
    return Webhook.create(website=website, url=url, secret=secret)


def webhooks_of(website_id: str) -> list[Webhook]:
    """The website's webhooks, oldest first."""
    return list(Webhook.select().where(Webhook.website == website_id).order_by(Webhook.id))


def webhook_of(website_id: str, webhook_id: Any) -> Webhook | None:
    """The website's webhook with this id, or None."""
    if not isinstance(webhook_id, int) or isinstance(webhook_id, bool):
        return None
    return Webhook.get_or_none((Webhook.id == webhook_id) & (Webhook.website == website_id))


def delete_webhook(webhook: Webhook) -> None:
    """Delete a webhook and take it off every rule that named it."""
    with database.atomic():
        for rule in AlertRule.select().where(AlertRule.website == webhook.website_id):
            ids = rule.webhooks()
            if webhook.id in ids:
                rule.webhook_ids = json.dumps([i for i in ids if i != webhook.id])
                rule.save()
        webhook.delete_instance()


# -- rules ------------------------------------------------------------------------------------
def _count(body: dict[str, Any], name: str, *, low: int, high: int) -> int:
    value = body.get(name)
    if value is None:
        raise AlertError(name, "is required for this kind")
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise AlertError(name, f"must be a whole number from {low} to {high}")
    return value


def create_rule(website: Website, body: dict[str, Any]) -> AlertRule:
    """A new alert rule of ``website`` from its JSON form (``AlertError`` names a bad field)."""
    kind = body.get("kind")
    if kind not in KINDS:
        raise AlertError("kind", "must be one of " + ", ".join(KINDS))
    threshold = minutes = None
    event = ""
    if kind in ("spike", "drop", "goal"):
        threshold = _count(body, "threshold", low=0 if kind != "spike" else 1, high=MAX_THRESHOLD)
    if kind in ("drop", "silence", "goal"):
        minutes = _count(body, "minutes", low=1, high=MAX_MINUTES)
    if kind == "goal":
        name = body.get("event")
        if not isinstance(name, str) or not _EVENT_NAME.match(name):
            raise AlertError("event", "must be an event name of 1 to 64 letters, digits or _.:-")
        event = name
    cooldown = body.get("cooldown_minutes", 15)
    if not isinstance(cooldown, int) or isinstance(cooldown, bool) or \
            not 0 <= cooldown <= MAX_COOLDOWN:
        raise AlertError("cooldown_minutes", f"must be a whole number from 0 to {MAX_COOLDOWN}")
    hooks = body.get("webhooks") or []
    if not isinstance(hooks, list):
        raise AlertError("webhooks", "must be a list of webhook ids")
    for hook in hooks:
        if webhook_of(website.id, hook) is None:
            raise AlertError("webhooks", f"{hook!r} is not a webhook of this website")
    emails = body.get("emails") or []
    if not isinstance(emails, list) or len(emails) > MAX_EMAILS:
        raise AlertError("emails", f"must be a list of at most {MAX_EMAILS} addresses")
    for email in emails:
        if not isinstance(email, str) or not _EMAIL.match(email.strip()):
            raise AlertError("emails", f"{email!r} is not an email address")
    return AlertRule.create(
        website=website, kind=kind, threshold=threshold, minutes=minutes, event=event,
        cooldown_minutes=cooldown, webhook_ids=json.dumps(list(dict.fromkeys(hooks))),
        emails=json.dumps([e.strip().lower() for e in emails]))


def delete_rule(rule: AlertRule) -> None:
    """Delete a rule with its history."""
    rule.delete_instance(recursive=True)


def rules_of(website_id: str) -> list[AlertRule]:
    """The website's alert rules, oldest first."""
    return list(AlertRule.select().where(AlertRule.website == website_id).order_by(AlertRule.id))


def rule_of(website_id: str, rule_id: Any) -> AlertRule | None:
    """The website's rule with this id, or None."""
    if not isinstance(rule_id, int) or isinstance(rule_id, bool):
        return None
    return AlertRule.get_or_none((AlertRule.id == rule_id) & (AlertRule.website == website_id))


def history_of(website_id: str, limit: int = 100) -> list[AlertHistory]:
    """The website's latest alerts (fired and resolved), newest first."""
    return list(AlertHistory.select(AlertHistory, AlertRule).join(AlertRule)
                .where(AlertHistory.website == website_id)
                .order_by(AlertHistory.at.desc(), AlertHistory.id.desc()).limit(limit))


def deliveries_of(website_id: str, limit: int = 50) -> list[Delivery]:
    """The website's latest deliveries, newest first."""
    return list(Delivery.select().where(Delivery.website == website_id)
                .order_by(Delivery.id.desc()).limit(limit))


# -- share links ------------------------------------------------------------------------------
MAX_LABEL = 200
MIN_SHARE_PASSWORD = 8


def check_share(label: Any, password: Any) -> tuple[str, str | None]:
    """A share link's label and password, checked (the password is hashed by the caller)."""
    if label is None:
        label = ""
    if not isinstance(label, str) or len(label.strip()) > MAX_LABEL:
        raise AlertError("label", f"must be a string of at most {MAX_LABEL} characters")
    if password is not None and password != "":
        if not isinstance(password, str) or not MIN_SHARE_PASSWORD <= len(password) <= 256:
            raise AlertError("password", f"must be null or {MIN_SHARE_PASSWORD} to 256 "
                             "characters")
    else:
        password = None
    return label.strip(), password


def create_share(website: Website, label: str, password_hash: str | None) -> Share:
    """A new share link of ``website`` with a random, unguessable slug."""
    return Share.create(website=website, slug=secrets.token_urlsafe(24), label=label,
                        password_hash=password_hash)


def shares_of(website_id: str) -> list[Share]:
    """The website's live (unrevoked) share links, oldest first."""
    return list(Share.select().where((Share.website == website_id) & Share.revoked_at.is_null())
                .order_by(Share.id))


def share_of(website_id: str, share_id: Any) -> Share | None:
    """The website's live share link with this id, or None."""
    if not isinstance(share_id, int) or isinstance(share_id, bool):
        return None
    return Share.get_or_none((Share.id == share_id) & (Share.website == website_id)
                             & Share.revoked_at.is_null())


def share_by_slug(slug: str) -> Share | None:
    """The live share link with this slug, or None (revoked and unknown look alike)."""
    if not slug or len(slug) > 64:
        return None
    return Share.get_or_none((Share.slug == slug) & Share.revoked_at.is_null())


def revoke_share(share: Share) -> None:
    """Make a share link a 404 from now on."""
    Share.update(revoked_at=now_ms()).where(Share.id == share.id).execute()


# -- the embeddable live counter ---------------------------------------------------------------
def counter_enabled(website_id: str) -> bool:
    """Whether the website's live counter is on."""
    if not website_id or len(website_id) > 64:
        return False
    return Embed.select().where((Embed.website == website_id) & Embed.enabled).exists()


def set_counter(website: Website, enabled: bool) -> None:
    """Turn the website's live counter on or off."""
    Embed.insert(website=website, enabled=enabled, updated_at=now_ms()).on_conflict(
        conflict_target=[Embed.website],
        update={Embed.enabled: enabled, Embed.updated_at: now_ms()}).execute()
