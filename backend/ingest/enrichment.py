"""Server-side enrichment: browser, OS and device from the User-Agent, bots, country, source,
and the anonymous daily visitor id. The IP address and the User-Agent are used here and dropped."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

import iptocc
import ua_parser
from crawlerdetect import CrawlerDetect
from publicsuffixlist import PublicSuffixList

from backend.ingest.validation import TrackPayload
from models.records import NewEvent

_suffixes = PublicSuffixList()

# Registrable domain (or host) of a referrer → the source name shown in the panel.
KNOWN_SOURCES = {
    "google": "google", "bing.com": "bing", "duckduckgo.com": "duckduckgo",
    "yahoo.com": "yahoo", "yandex": "yandex", "baidu.com": "baidu", "ecosia.org": "ecosia",
    "brave.com": "brave", "qwant.com": "qwant", "startpage.com": "startpage",
    "twitter.com": "twitter", "t.co": "twitter", "x.com": "twitter",
    "facebook.com": "facebook", "fb.me": "facebook", "instagram.com": "instagram",
    "linkedin.com": "linkedin", "lnkd.in": "linkedin", "reddit.com": "reddit",
    "news.ycombinator.com": "hacker news", "github.com": "github", "youtube.com": "youtube",
    "pinterest.com": "pinterest", "tiktok.com": "tiktok", "mastodon.social": "mastodon",
    "bsky.app": "bluesky", "threads.net": "threads", "medium.com": "medium",
    "wikipedia.org": "wikipedia", "chatgpt.com": "chatgpt", "perplexity.ai": "perplexity",
}


class _UncachedCrawlerDetect(CrawlerDetect):
    """crawlerdetect without its own cache, which keeps 1,024 whole User-Agents (up to 16 KB
    each); ``is_bot`` keeps a cache bounded in bytes instead."""

    CACHE_SIZE = 0


_crawlers = _UncachedCrawlerDetect()

BOT_CACHE_ENTRIES = 8192
BOT_CACHE_KEY_CHARS = 256  # longer User-Agents are cached under a 32-character digest


class BotVerdicts:
    """Bot verdicts by User-Agent, at most ``entries`` of them, each keyed by at most
    ``BOT_CACHE_KEY_CHARS`` characters: about 3 MiB at most, however long the User-Agents sent.
    The oldest entry leaves first."""

    def __init__(self, entries: int = BOT_CACHE_ENTRIES) -> None:
        self.entries = entries
        self._verdicts: dict[str, bool] = {}

    @staticmethod
    def key(user_agent: str) -> str:
        """The User-Agent itself, or a digest of it when it is long."""
        if len(user_agent) <= BOT_CACHE_KEY_CHARS:
            return user_agent
        return hashlib.blake2b(user_agent.encode("utf-8", "surrogatepass"),
                               digest_size=16).hexdigest()

    def __len__(self) -> int:
        return len(self._verdicts)

    def verdict(self, user_agent: str) -> bool:
        """Whether ``user_agent`` is a bot, from the cache or decided now."""
        key = self.key(user_agent)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = _detect_bot(user_agent)
            if len(self._verdicts) >= self.entries:
                del self._verdicts[next(iter(self._verdicts))]
            self._verdicts[key] = verdict
        return verdict

    def largest_key(self) -> int:
        """The longest key kept, in characters."""
        return max(map(len, self._verdicts), default=0)


def _detect_bot(user_agent: str) -> bool:
    if not user_agent.strip():
        return True
    lowered = user_agent.lower()
    if "headlesschrome" in lowered or "phantomjs" in lowered:
        return True
    return bool(_crawlers.isCrawler(user_agent))


bot_verdicts = BotVerdicts()


def is_bot(user_agent: str) -> bool:
    """Whether the User-Agent belongs to a crawler, a headless tool or nothing at all."""
    return bot_verdicts.verdict(user_agent)


def warm_up() -> None:
    """Build the crawler regex and the User-Agent parser now (about half a second), at start,
    rather than during the first tracked event, on the event loop."""
    sample = "Mozilla/5.0 (X11; Linux x86_64) Pulse warm-up"
    _crawlers.isCrawler(sample)
    describe_agent(sample)


@lru_cache(maxsize=8192)
def describe_agent(user_agent: str) -> tuple[str, str, str]:
    """(browser, os, device) from a User-Agent; device is desktop, mobile or tablet."""
    result = ua_parser.parse(user_agent)
    browser = result.user_agent.family if result.user_agent else "Other"
    os_name = result.os.family if result.os else "Other"
    lowered = user_agent.lower()
    device_family = (result.device.family if result.device else "").lower()
    if "ipad" in lowered or "tablet" in lowered or "ipad" in device_family or (
        "android" in lowered and "mobile" not in lowered
    ):
        device = "tablet"
    elif "mobi" in lowered or "iphone" in lowered or "phone" in device_family:
        device = "mobile"
    else:
        device = "desktop"
    return browser, os_name, device


def device_from_width(width: int) -> str:
    """Device type from the screen width, the way Plausible buckets it."""
    if width < 576:
        return "mobile"
    if width < 992:
        return "tablet"
    return "desktop"


def country_of(ip: str) -> str:
    """ISO country code of an IP address, or '' (loopback, private, unknown)."""
    try:
        return iptocc.country_code(ip) or ""
    except (ValueError, TypeError):
        return ""


@lru_cache(maxsize=4096)
def source_of(referrer: str, own_host: str = "") -> str:
    """The traffic source of a referrer URL: a known name, the referring domain, or 'direct'."""
    if not referrer:
        return "direct"
    try:
        host = (urlsplit(referrer).hostname or "").lower()
    except ValueError:
        return "direct"
    if not host:
        return "direct"
    host = host.removeprefix("www.").removeprefix("m.")
    if own_host and (host == own_host.removeprefix("www.") or host.endswith("." + own_host)):
        return "direct"
    if host in KNOWN_SOURCES:
        return KNOWN_SOURCES[host]
    domain = _suffixes.privatesuffix(host) or host
    if domain in KNOWN_SOURCES:
        return KNOWN_SOURCES[domain]
    label = domain.split(".", 1)[0]
    if label in KNOWN_SOURCES:  # google.de, yandex.ru …
        return KNOWN_SOURCES[label]
    return domain


def campaign_source(query: str) -> str:
    """``utm_source`` (or ``ref``/``source``) from a page's query string, lower-cased."""
    if not query:
        return ""
    params = parse_qs(query, max_num_fields=50)
    for key in ("utm_source", "ref", "source"):
        if params.get(key):
            return params[key][0].strip().lower()[:100]
    return ""


class VisitorHasher:
    """Anonymous visitor ids: hash(daily random salt + website + IP + User-Agent)."""

    def __init__(self, salt_for_day: Callable[[str], str]) -> None:
        self._salt_for_day = salt_for_day
        self._day = ""
        self._salt = b""

    def visitor_id(self, website_id: str, ip: str, user_agent: str) -> str:
        """A stable id for today that cannot be turned back into the IP."""
        day = time.strftime("%Y-%m-%d", time.gmtime())
        if day != self._day:
            self._salt = self._salt_for_day(day).encode()
            self._day = day
        digest = hashlib.blake2b(
            b"\x00".join((website_id.encode(), ip.encode(), user_agent.encode())),
            key=self._salt[:64], digest_size=10,
        )
        return "h-" + digest.hexdigest()


VISIT_IDLE_MS = 30 * 60 * 1000
MAX_OPEN_VISITS = 100_000


class Visits:
    """Server-side visits for events that come without a session id (the default tracker keeps
    nothing in the browser): one visitor id's events at most 30 minutes apart share a session
    id. Held in memory, at most ``max_visits`` visitors (the least recently seen leave first)."""

    def __init__(self, idle_ms: int = VISIT_IDLE_MS, max_visits: int = MAX_OPEN_VISITS) -> None:
        self.idle_ms = idle_ms
        self.max_visits = max_visits
        # hash of (website, visitor) → (the visit's first ts, its last ts): about 200 bytes each
        self._open: OrderedDict[int, tuple[int, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def session_id(self, website_id: str, visitor_id: str, ts: int) -> str:
        """The id of the visit this event belongs to: the open one, or a new one."""
        key = hash((website_id, visitor_id))
        found = self._open.pop(key, None)
        if found is not None and ts - found[1] <= self.idle_ms:
            start, last = found[0], max(ts, found[1])
        else:
            start, last = ts, ts
        self._open[key] = (start, last)
        visits = self._open
        while visits and (len(visits) > self.max_visits
                          or ts - visits[next(iter(visits))][1] > self.idle_ms):
            visits.popitem(last=False)
        digest = hashlib.blake2b(f"{website_id}\x00{visitor_id}\x00{start}".encode(),
                                 digest_size=10)
        return "s-" + digest.hexdigest()


class Enricher:
    """Turns a validated payload plus request facts into a ``NewEvent``."""

    def __init__(self, hasher: VisitorHasher, visits: Visits | None = None) -> None:
        self.hasher = hasher
        self.visits = visits if visits is not None else Visits()

    def enrich(self, payload: TrackPayload, ip: str, user_agent: str, ts: int) -> NewEvent:
        """The event to store; the IP and User-Agent do not leave this method."""
        browser, os_name, device = describe_agent(user_agent[:512])
        if payload.screen_width and device == "desktop":
            device = device_from_width(payload.screen_width)
        visitor_id = payload.visitor_id or self.hasher.visitor_id(
            payload.website_id, ip, user_agent)
        source = campaign_source(payload.query) or source_of(payload.referrer, payload.hostname)
        return NewEvent(
            website_id=payload.website_id,
            ts=ts,
            event_type=payload.event_type,
            pathname=payload.pathname,
            visitor_id=visitor_id,
            session_id=payload.session_id or self.visits.session_id(
                payload.website_id, visitor_id, ts),
            referrer=payload.referrer,
            source=source,
            hostname=payload.hostname,
            title=payload.title,
            screen_width=payload.screen_width,
            device=device,
            browser=browser,
            os=os_name,
            country=country_of(ip),
            props=payload.props,
            interactive=payload.interactive,
            revenue_amount=payload.revenue_amount,
            revenue_currency=payload.revenue_currency,
        )
