"""WebsiteCache: the tracking endpoint's view of websites, without a query per event."""

from __future__ import annotations

import time

from models.entities import Website

TTL_SECONDS = 10.0


class WebsiteCache:
    """Websites by id and the set of allowed origins, refreshed every few seconds."""

    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self._ttl = ttl
        self._sites: dict[str, tuple[float, Website | None]] = {}
        self._origins: tuple[float, frozenset[str], tuple[str, ...]] | None = None
        self._domains: dict[str, tuple[float, Website | None]] = {}

    def get(self, website_id: str) -> Website | None:
        """The website with this id, or None; cached for a few seconds (misses too)."""
        now = time.monotonic()
        hit = self._sites.get(website_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        if len(self._sites) > 10_000:  # ids are attacker-chosen: keep the cache bounded
            self._sites.clear()
        website = Website.get_or_none(Website.id == website_id)
        self._sites[website_id] = (now + self._ttl, website)
        return website

    def by_domain(self, domain: str) -> Website | None:
        """The website of ``domain`` (``www.`` and case ignored; the oldest if several share
        it), or None; cached like ``get``."""
        domain = domain.strip().lower().removeprefix("www.")
        now = time.monotonic()
        hit = self._domains.get(domain)
        if hit is not None and hit[0] > now:
            return hit[1]
        if len(self._domains) > 10_000:  # domains are attacker-chosen too
            self._domains.clear()
        website = (Website.select().where(Website.domain.in_([domain, "www." + domain]))
                   .order_by(Website.created_at, Website.id).first())
        self._domains[domain] = (now + self._ttl, website)
        return website

    def origin_known(self, origin: str) -> bool:
        """Whether any website allows ``origin`` (what a CORS preflight can check)."""
        now = time.monotonic()
        if self._origins is None or self._origins[0] <= now:
            explicit: set[str] = set()
            domains: list[str] = []
            for site in Website.select(Website.domain, Website.allowed_origins):
                explicit.update(site.origins())
                domains.append(site.domain)
            self._origins = (now + self._ttl, frozenset(explicit), tuple(domains))
        _, explicit_origins, all_domains = self._origins
        if origin.rstrip("/") in explicit_origins:
            return True
        probe = Website(domain="", allowed_origins="")
        for domain in all_domains:
            probe.domain = domain
            if probe.allows_origin(origin):
                return True
        return False

    def invalidate(self, website_id: str | None = None) -> None:
        """Forget cached entries after the panel changed or deleted a website."""
        if website_id is None:
            self._sites.clear()
        else:
            self._sites.pop(website_id, None)
        self._domains.clear()
        self._origins = None
