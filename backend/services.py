"""Services: the long-lived objects of one Pulse server, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from backend.alerts.engine import AlertEngine
from backend.auth import LoginThrottle
from backend.bus import Bus
from backend.ingest.enrichment import Enricher
from backend.ingest.limits import RateLimiter
from backend.ingest.websites import WebsiteCache
from backend.ingest.writer import EventWriter
from backend.live.counter import LiveCounters
from backend.live.hub import Hub
from backend.live.sse import LiveStreams
from backend.metrics import Metrics
from backend.settings import Settings


@dataclass
class Services:
    """What the handlers and the panel share; passed in through ``initialize``, never global."""

    settings: Settings
    metrics: Metrics
    hub: Hub
    bus: Bus
    writer: EventWriter
    enricher: Enricher
    websites: WebsiteCache
    streams: LiveStreams
    ip_limiter: RateLimiter
    website_limiter: RateLimiter
    login_throttle: LoginThrottle
    alerts: AlertEngine
    counters: LiveCounters
