"""Creating, changing and deleting websites (shared by the CLI and the panel)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.db import database
from models.entities import Event, Membership, User, Website

_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


class WebsiteError(ValueError):
    """A website cannot be created or changed as asked."""


def normalize_domain(domain: str) -> str:
    """A bare, lower-case host name ('https://www.Example.com/' → 'www.example.com')."""
    domain = domain.strip().lower()
    if "://" in domain:
        domain = urlsplit(domain).hostname or ""
    domain = domain.strip("/").split("/")[0].split(":")[0]
    if not _DOMAIN.match(domain):
        raise WebsiteError(f"{domain!r} is not a valid domain name")
    return domain


def normalize_origins(origins: list[str] | str) -> str:
    """Checked origins (scheme://host[:port]), one per line."""
    if isinstance(origins, str):
        origins = origins.replace(",", "\n").split("\n")
    cleaned = []
    for origin in origins:
        origin = origin.strip().rstrip("/")
        if not origin:
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
            raise WebsiteError(f"{origin!r} is not an origin like https://example.com")
        cleaned.append(origin.lower())
    return "\n".join(dict.fromkeys(cleaned))


def check_timezone(timezone: str) -> str:
    """An IANA time zone name, checked."""
    timezone = (timezone or "UTC").strip()
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise WebsiteError(f"{timezone!r} is not a known time zone") from None
    return timezone


def create_website(
    domain: str,
    *,
    name: str | None = None,
    origins: list[str] | str = (),  # type: ignore[assignment]
    timezone: str = "UTC",
    owner: User | None = None,
) -> Website:
    """Create a website; its owner (or, without one, every admin) becomes a member."""
    domain = normalize_domain(domain)
    name = (name or domain).strip()
    if not name or len(name) > 200:
        raise WebsiteError("the name must have 1 to 200 characters")
    with database.atomic():
        website = Website.create(name=name, domain=domain, allowed_origins=normalize_origins(
            list(origins) if not isinstance(origins, str) else origins),
            timezone=check_timezone(timezone))
        owners = [owner] if owner is not None else list(User.select().where(User.is_admin))
        for user in owners:
            Membership.create(user=user, website=website, role="owner")
    return website


def update_website(website: Website, *, name: str, domain: str, origins: list[str] | str,
                   timezone: str) -> Website:
    """Change a website's settings after checking them."""
    website.domain = normalize_domain(domain)
    website.name = name.strip() or website.domain
    if len(website.name) > 200:
        raise WebsiteError("the name must have at most 200 characters")
    website.allowed_origins = normalize_origins(origins)
    website.timezone = check_timezone(timezone)
    website.save()
    return website


def delete_website(website_id: str) -> int:
    """Delete a website with its events and memberships; return the number of events removed."""
    with database.atomic():
        removed = Event.delete().where(Event.website == website_id).execute()
        Membership.delete().where(Membership.website == website_id).execute()
        Website.delete().where(Website.id == website_id).execute()
    return removed


def grant_access(website: Website, user: User, role: str = "viewer") -> Membership:
    """Let ``user`` see ``website`` (idempotent)."""
    membership, _ = Membership.get_or_create(user=user, website=website,
                                             defaults={"role": role})
    return membership
