"""A visitor simulator for the demo: people arrive from real-looking sources, devices and
countries, browse a few pages with think time, sometimes fire custom events, then leave.

It is pure and clock-driven: ``step(now)`` returns the hits due by ``now`` and when to call it
again, so tests can run hours of traffic in milliseconds and the demo runs it on the event loop.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import iptocc


@dataclass(frozen=True, slots=True)
class Page:
    """A page of the demo website and where its visitors tend to go next."""

    path: str
    title: str
    next: tuple[tuple[str, int], ...] = ()  # (path, weight)
    event: tuple[str, float] | None = None  # (custom event name, probability per view)


SHOP_PAGES: dict[str, Page] = {page.path: page for page in (
    Page("/", "Nimbus — furniture for small rooms",
         (("/products", 5), ("/pricing", 2), ("/blog", 2), ("/about", 1), ("/signup", 1))),
    Page("/products", "All products — Nimbus",
         (("/products/aurora-lamp", 4), ("/products/nimbus-chair", 4),
          ("/products/fold-desk", 3), ("/", 1))),
    Page("/products/aurora-lamp", "Aurora lamp — Nimbus",
         (("/checkout", 2), ("/products", 3), ("/products/nimbus-chair", 1)),
         ("add_to_cart", 0.25)),
    Page("/products/nimbus-chair", "Nimbus chair — Nimbus",
         (("/checkout", 2), ("/products", 3), ("/products/fold-desk", 1)),
         ("add_to_cart", 0.3)),
    Page("/products/fold-desk", "Fold desk — Nimbus",
         (("/checkout", 1), ("/products", 3), ("/products/aurora-lamp", 1)),
         ("add_to_cart", 0.2)),
    Page("/checkout", "Checkout — Nimbus", (("/", 1), ("/products", 1)), ("purchase", 0.45)),
    Page("/pricing", "Pricing — Nimbus", (("/signup", 3), ("/", 1), ("/docs/getting-started", 1))),
    Page("/signup", "Create your account — Nimbus", (("/docs/getting-started", 2), ("/", 1)),
         ("signup", 0.5)),
    Page("/blog", "Blog — Nimbus",
         (("/blog/small-room-ideas", 3), ("/blog/live-analytics", 2), ("/", 1))),
    Page("/blog/small-room-ideas", "12 ideas for a small room — Nimbus",
         (("/products", 2), ("/blog", 1)), ("newsletter", 0.1)),
    Page("/blog/live-analytics", "Why we watch our shop live — Nimbus",
         (("/blog", 1), ("/pricing", 1)), ("newsletter", 0.12)),
    Page("/docs/getting-started", "Getting started — Nimbus", (("/pricing", 1), ("/", 1))),
    Page("/about", "About us — Nimbus", (("/", 2), ("/blog", 1))),
)}

OUTBOUND_LINKS = ("https://github.com/nimbus-furniture", "https://www.instagram.com/nimbus",
                  "https://docs.example.org/assembly")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a visitor comes from: a referrer (or none), a campaign, and a likely landing page."""

    name: str
    referrer: str
    landing: tuple[str, ...]
    weight: int
    campaign: str = ""  # utm_source on the landing page's URL


SOURCES = (
    Source("direct", "", ("/", "/", "/products", "/pricing"), 30),
    Source("google", "https://www.google.com/", ("/", "/products/aurora-lamp",
           "/products/nimbus-chair", "/blog/small-room-ideas", "/pricing"), 26),
    Source("bing", "https://www.bing.com/", ("/", "/products"), 4),
    Source("duckduckgo", "https://duckduckgo.com/", ("/", "/products/fold-desk"), 4),
    Source("twitter", "https://t.co/", ("/blog/live-analytics", "/"), 6),
    Source("reddit", "https://www.reddit.com/r/malelivingspace/", ("/blog/small-room-ideas",), 6),
    Source("hacker news", "https://news.ycombinator.com/", ("/blog/live-analytics",), 5),
    Source("github", "https://github.com/", ("/docs/getting-started",), 3),
    Source("linkedin", "https://www.linkedin.com/", ("/about", "/"), 3),
    Source("instagram", "https://l.instagram.com/", ("/products/aurora-lamp",), 4),
    Source("newsletter", "", ("/products", "/blog"), 5, campaign="newsletter"),
    Source("design blog", "https://smallspaces-weekly.example/issues/42", ("/products",), 4),
)


@dataclass(frozen=True, slots=True)
class Device:
    """A browser on a device: its User-Agent and screen width."""

    kind: str  # desktop | mobile | tablet
    user_agent: str
    screen_width: int
    weight: int


DEVICES = (
    Device("desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
           "Gecko) Chrome/126.0.0.0 Safari/537.36", 1920, 26),
    Device("desktop", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML,"
           " like Gecko) Chrome/126.0.0.0 Safari/537.36", 1440, 10),
    Device("desktop", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML"
           ", like Gecko) Version/17.5 Safari/605.1.15", 1512, 8),
    Device("desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 "
           "Firefox/127.0", 1920, 5),
    Device("desktop", "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
           1366, 3),
    Device("desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
           "Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", 1536, 6),
    Device("mobile", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", 390, 17),
    Device("mobile", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like "
           "Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", 412, 12),
    Device("mobile", "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like "
           "Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36", 360, 4),
    Device("tablet", "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
           "like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", 820, 5),
    Device("tablet", "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like "
           "Gecko) Chrome/126.0.0.0 Safari/537.36", 800, 2),
)

# Public address blocks that the IP-to-country table maps to one country each.
COUNTRY_BLOCKS: dict[str, tuple[tuple[str, ...], int]] = {
    "US": (("23.20.0.0/14", "104.16.0.0/13"), 24),
    "DE": (("85.214.0.0/15", "91.0.0.0/10", "217.0.0.0/13"), 12),
    "GB": (("81.2.64.0/18", "86.128.0.0/10"), 9),
    "FR": (("86.192.0.0/11", "82.64.0.0/14"), 7),
    "IN": (("117.192.0.0/10", "59.88.0.0/13"), 7),
    "CA": (("142.112.0.0/13", "99.224.0.0/11"), 5),
    "NL": (("77.160.0.0/12",), 4),
    "BR": (("177.32.0.0/12",), 4),
    "JP": (("133.0.0.0/8", "60.32.0.0/12"), 4),
    "ES": (("83.32.0.0/11",), 3),
    "IT": (("79.0.0.0/10",), 3),
    "AU": (("1.120.0.0/13",), 3),
    "PL": (("89.64.0.0/12",), 3),
    "SE": (("90.224.0.0/12",), 2),
    "CH": (("85.0.0.0/13",), 2),
    "KR": (("211.32.0.0/11",), 2),
    "MX": (("189.128.0.0/10",), 2),
    "ZA": (("41.0.0.0/11",), 2),
    "NG": (("105.112.0.0/12",), 2),
}

THINK_JITTER = (0.3, 1.7)  # a think time is the mean times a factor drawn in this range
THINK_FACTOR = 1.6


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the simulated browser would send: the tracking body, its IP and UA."""

    body: dict[str, Any]
    ip: str
    user_agent: str


@dataclass(slots=True)
class Action:
    """One step of a visit: a pageview or a custom event on a page."""

    event_type: str
    page: Page
    props: dict[str, Any] = field(default_factory=dict)
    pause: float = 1.0  # think time before this action, in multiples of the mean


@dataclass(slots=True)
class Visitor:
    """One visit (one browser tab): who, from where, and what is left to do."""

    visitor_id: str
    session_id: str
    ip: str
    device: Device
    source: Source
    country: str
    actions: deque[Action]
    landed: bool = False


class VisitorSimulator:
    """Generates visits at about ``rate`` events/s with about ``visitors`` people on the site."""

    def __init__(self, website_id: str, hostname: str, *, rate: float = 3.0,
                 visitors: int = 40, max_visitors: int = 60, returning: float = 0.25,
                 seed: int | None = None, start: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.website_id = website_id
        self.hostname = hostname
        self.rate = rate
        self.max_visitors = max(1, max_visitors)
        self.returning = returning
        self.rng = random.Random(seed)
        # Arrivals set the event rate (rate / mean actions per visit); the think time sets how
        # long a visit lasts, hence how many visitors are on the site at once. The first
        # action has no pause and events follow their page quickly, so a visit lasts about
        # (actions - 1) × 0.6 × think: this factor brings the crowd to about `visitors`.
        self.think = max(0.05, THINK_FACTOR * visitors / rate)
        self._seq = itertools.count()
        self._due: list[tuple[float, int, Visitor]] = []
        self._known_visitors: deque[tuple[str, str, Device, str]] = deque(maxlen=500)
        self.arrived = 0
        self.left = 0
        self.sent = 0
        self._actions_total = 0
        # Open with a crowd arriving over a few seconds, so the live view moves at once.
        ramp = min(self.think, 8.0)
        for _ in range(min(visitors, self.max_visitors)):
            self._arrive(start + self.rng.uniform(0.0, ramp))
        self._next_arrival = start + ramp + self._interarrival()

    @property
    def active(self) -> int:
        """Visitors on the site now (arrived and not yet left)."""
        return len(self._due)

    def _interarrival(self) -> float:
        mean_actions = self._actions_total / self.arrived if self.arrived else 4.0
        return self.rng.expovariate(self.rate / mean_actions)

    def _pick_ip(self, country: str) -> str:
        blocks, _ = COUNTRY_BLOCKS[country]
        network = ipaddress.ip_network(self.rng.choice(blocks))
        address = str(network[1])
        for _ in range(20):  # registries move: keep an address the table still maps right
            candidate = str(network[self.rng.randrange(1, network.num_addresses - 1)])
            if iptocc.country_code(candidate) == country:
                return candidate
        return address

    def _plan(self, landing: Page, campaign: str) -> deque[Action]:
        """The itinerary of one visit: pages with think time, some events, maybe an exit link."""
        actions: deque[Action] = deque()
        page = landing
        views = 1 + min(9, int(self.rng.expovariate(1 / 2.6)))  # about a third bounce
        props = {"utm_source": campaign} if campaign else {}
        for number in range(views):
            actions.append(Action("pageview", page, {}, 0.0 if number == 0 else 1.0))
            if page.event is not None and self.rng.random() < page.event[1]:
                actions.append(Action(page.event[0], page, self._event_props(page.event[0]),
                                      0.4))
            if self.rng.random() < 0.06:
                url = self.rng.choice(OUTBOUND_LINKS)
                actions.append(Action("outbound", page, {"url": url}, 0.5))
                break
            if not page.next:
                break
            paths, weights = zip(*page.next, strict=True)
            page = SHOP_PAGES[self.rng.choices(paths, weights)[0]]
        if props:
            actions[0].props = props
        return actions

    def _event_props(self, name: str) -> dict[str, Any]:
        if name == "signup":
            return {"plan": self.rng.choices(("free", "pro", "team"), (6, 3, 1))[0]}
        if name == "purchase":
            return {"amount": self.rng.choice((49, 89, 129, 249, 399)), "currency": "EUR"}
        if name == "add_to_cart":
            return {"quantity": self.rng.choices((1, 2, 3), (8, 2, 1))[0]}
        return {}

    def _arrive(self, at: float) -> None:
        source = self.rng.choices(SOURCES, [s.weight for s in SOURCES])[0]
        if self._known_visitors and self.rng.random() < self.returning:
            visitor_id, ip, device, country = self.rng.choice(self._known_visitors)
        else:
            visitor_id = f"sim-{self.rng.getrandbits(64):016x}"
            device = self.rng.choices(DEVICES, [d.weight for d in DEVICES])[0]
            country = self.rng.choices(list(COUNTRY_BLOCKS),
                                       [w for _, w in COUNTRY_BLOCKS.values()])[0]
            ip = self._pick_ip(country)
            self._known_visitors.append((visitor_id, ip, device, country))
        landing = SHOP_PAGES[self.rng.choice(source.landing)]
        actions = self._plan(landing, source.campaign)
        visitor = Visitor(visitor_id, f"sim-{self.rng.getrandbits(64):016x}", ip, device,
                          source, country, actions)
        self.arrived += 1
        self._actions_total += len(actions)
        heapq.heappush(self._due, (at, next(self._seq), visitor))

    def _hit(self, visitor: Visitor, action: Action) -> Hit:
        pathname = action.page.path
        if not visitor.landed and visitor.source.campaign:
            pathname += f"?utm_source={visitor.source.campaign}"
        visitor.landed = True
        props = {} if action.event_type == "pageview" else action.props
        body = {
            "website_id": self.website_id, "event_type": action.event_type,
            "pathname": pathname, "visitor_id": visitor.visitor_id,
            "session_id": visitor.session_id, "referrer": visitor.source.referrer,
            "hostname": self.hostname, "title": action.page.title,
            "screen_width": visitor.device.screen_width, "props": props,
        }
        return Hit(body, visitor.ip, visitor.device.user_agent)

    def step(self, now: float) -> tuple[list[Hit], float]:
        """The hits due by ``now`` (visitors arrive, act, leave) and when to call again."""
        hits: list[Hit] = []
        while self._next_arrival <= now:
            if self.active < self.max_visitors:
                self._arrive(self._next_arrival)
            self._next_arrival += self._interarrival()
        while self._due and self._due[0][0] <= now:
            at, _, visitor = heapq.heappop(self._due)
            hits.append(self._hit(visitor, visitor.actions.popleft()))
            if visitor.actions:
                pause = visitor.actions[0].pause * self.rng.uniform(*THINK_JITTER)
                heapq.heappush(self._due, (at + pause * self.think, next(self._seq), visitor))
            else:
                self.left += 1
        self.sent += len(hits)
        wake = min(self._next_arrival, self._due[0][0]) if self._due else self._next_arrival
        return hits, wake
