"""Creating, changing and deleting websites (shared by the CLI and the panel)."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.db import database, delete_in_batches
from models.entities import Event, Membership, PageRollup, User, Visit, Website

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


DELETE_BATCH = 2_000  # events per transaction: a few ms of SQLite's write lock each


def delete_website(website_id: str, *, batch: int = DELETE_BATCH, pause: float = 0.002) -> int:
    """Delete a website with its memberships and events; return the number of events removed.

    Blocking, and long for a big website: run it off the event loop. Members lose it first; the
    events then go ``batch`` at a time, each batch its own short transaction with a ``pause``
    after it, so the writer's transactions get the database in between and never time out; the
    website goes last, with whatever the writer stored for it meanwhile.
    """
    Membership.delete().where(Membership.website == website_id).execute()
    # By sequence: the (website, seq) index hands out the oldest at once (by id, each batch
    # sorted every event the website had left, ~0.5 s for a million).
    removed = delete_in_batches(Event, Event.website == website_id, Event.seq, batch, pause)
    # Its visits (about one per four events) likewise, oldest first by the (website, start) index.
    delete_in_batches(Visit, Visit.website == website_id, Visit.start_ts, batch, pause,
                       key=Visit.id)
    # Its per-page rollups (about a third as many rows as events) by the (website, day) index.
    delete_in_batches(PageRollup, PageRollup.website == website_id, PageRollup.day, batch,
                       pause, key=PageRollup.id)
    with database.atomic():
        removed += Event.delete().where(Event.website == website_id).execute()
        Website.delete().where(Website.id == website_id).execute()
    return removed


def find_website(website_id: str) -> Website | None:
    """The website with this id, or None."""
    return Website.get_or_none(Website.id == website_id) if len(website_id) <= 64 else None


def websites_of(user: User) -> list[Website]:
    """The websites ``user`` is a member of, by name."""
    return list(Website.visible_to(user))


def website_for(user: User, website_id: str) -> Website | None:
    """The website if ``user`` is a member of it, else None (unknown and forbidden look alike)."""
    if len(website_id) > 64 or not Membership.allows(user, website_id):
        return None
    return Website.get_or_none(Website.id == website_id)


Access = Literal["member", "forbidden", "missing"]


def website_access(user: User, website_id: str) -> Access:
    """Whether ``user`` may see ``website_id``, is not a member, or the website is unknown."""
    if find_website(website_id) is None:
        return "missing"
    return "member" if Membership.allows(user, website_id) else "forbidden"


def can_manage(user: User, website_id: str) -> bool:
    """Admins and the website's owners change its settings and members, and delete it."""
    if user.is_admin:
        return Membership.allows(user, website_id)
    return (Membership.select().where((Membership.user == user)
                                      & (Membership.website == website_id)
                                      & (Membership.role == "owner")).exists())


def members_of(website_id: str) -> list[Membership]:
    """The website's memberships with their users, by email."""
    return list(Membership.select(Membership, User).join(User)
                .where(Membership.website == website_id).order_by(User.email))


def grant_access(website: Website, user: User, role: str = "viewer") -> Membership:
    """Let ``user`` see ``website`` (idempotent)."""
    membership, _ = Membership.get_or_create(user=user, website=website,
                                             defaults={"role": role})
    return membership


def add_member(actor: User, website_id: str, email: str) -> User:
    """Give the account with ``email`` access to a website ``actor`` manages; return it."""
    if not can_manage(actor, website_id):
        raise WebsiteError("You cannot change the members of this website.")
    address = email.strip()
    if not address:
        raise WebsiteError("Type the email of an existing account.")
    person = User.by_email(address)
    if person is None:
        raise WebsiteError(f"No account has the email {address!r}. An administrator "
                           "creates accounts under Users.")
    website = Website.get_or_none(Website.id == website_id)
    if website is None:
        raise WebsiteError("This website was deleted.")
    if Membership.allows(person, website_id):
        raise WebsiteError(f"{person.email} has access already.")
    grant_access(website, person)
    return person


def remove_member(actor: User, website_id: str, user_id: int) -> None:
    """Take a website away from one of its members (a website keeps at least one owner)."""
    if not can_manage(actor, website_id):
        raise WebsiteError("You cannot change the members of this website.")
    membership = Membership.get_or_none((Membership.user == user_id)
                                        & (Membership.website == website_id))
    if membership is None:
        return
    owners = (Membership.select().where((Membership.website == website_id)
                                        & (Membership.role == "owner")).count())
    if membership.role == "owner" and owners <= 1:
        raise WebsiteError("A website keeps at least one owner.")
    Membership.delete().where((Membership.user == user_id)
                              & (Membership.website == website_id)).execute()
