"""Alerts: rules evaluated on a simulated clock, signed webhooks to a real local server (retried
after a 500), a dead webhook that never slows tracking, and email to a real local SMTP server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from email import message_from_bytes
from typing import Any

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession

from backend.alerts.delivery import DeliveryQueue, SmtpConfig
from backend.alerts.engine import AlertEngine
from backend.services import Services
from models.alerts import (
    AlertError,
    AlertHistory,
    Delivery,
    create_rule,
    create_webhook,
    history_of,
)
from models.entities import Website, now_ms
from models.records import EventRecord, NewEvent
from tests.conftest import event_body, post_event

MINUTE = 60_000


class Clock:
    """A simulated clock in epoch milliseconds."""

    def __init__(self) -> None:
        self.now = now_ms()

    def __call__(self) -> int:
        return self.now


class Visits:
    """Committed events for one website, numbered 1, 2, 3… as the writer numbers them."""

    def __init__(self, services: Services, website: Website) -> None:
        self.hub = services.hub
        self.website_id = website.id
        self.seq = 0

    def add(self, ts: int, visitor: str, event_type: str = "pageview") -> None:
        self.seq += 1
        record: EventRecord = NewEvent(
            website_id=self.website_id, ts=ts, event_type=event_type, pathname="/",
            visitor_id=visitor, session_id=visitor).stored(self.seq)
        self.hub.publish([record])


def states(website: Website) -> list[tuple[str, int]]:
    return [(h.state, h.value) for h in reversed(history_of(website.id))]


def engine_for(services: Services, clock: Clock) -> AlertEngine:
    return AlertEngine(services.hub, DeliveryQueue(None), "http://pulse.test", clock=clock)


def test_a_spike_fires_once_resolves_and_respects_the_cooldown(services: Services,
                                                               website: Website) -> None:
    clock = Clock()
    t0 = clock.now
    create_rule(website, {"kind": "spike", "threshold": 3, "cooldown_minutes": 15})
    engine = engine_for(services, clock)
    engine.load()
    visits = Visits(services, website)
    for name in ("a", "b"):
        visits.add(t0, name)
    assert states(website) == []
    visits.add(t0, "c")
    visits.add(t0, "c")  # still the same spike: no second notification
    assert states(website) == [("fired", 3)]
    assert [a.kind for a in engine.active(website.id)] == ["spike"]

    clock.now = t0 + 6 * MINUTE  # the 5-minute window emptied
    engine.tick()
    assert states(website) == [("fired", 3), ("resolved", 0)]
    assert engine.active(website.id) == []

    clock.now = t0 + 7 * MINUTE  # a new spike inside the cool-down: quiet
    for name in ("d", "e", "f"):
        visits.add(clock.now, name)
    clock.now = t0 + 11 * MINUTE
    for name in ("g", "h", "i"):
        visits.add(clock.now, name)
    engine.tick()
    assert states(website) == [("fired", 3), ("resolved", 0)]

    clock.now = t0 + 15 * MINUTE  # the cool-down is over and the spike still holds
    engine.tick()
    assert states(website) == [("fired", 3), ("resolved", 0), ("fired", 3)]
    engine.close()


def test_silence_fires_after_m_minutes_without_events_and_resolves_on_the_next(
        services: Services, website: Website) -> None:
    clock = Clock()
    t0 = clock.now
    create_rule(website, {"kind": "silence", "minutes": 10, "cooldown_minutes": 0})
    engine = engine_for(services, clock)
    engine.load()
    visits = Visits(services, website)
    visits.add(t0, "a")
    clock.now = t0 + 10 * MINUTE - 1000
    engine.tick()
    assert states(website) == []
    clock.now = t0 + 10 * MINUTE
    engine.tick()
    assert states(website) == [("fired", 10)]
    visits.add(clock.now + 1, "b")
    assert states(website) == [("fired", 10), ("resolved", 0)]
    engine.close()


def test_a_drop_fires_after_m_minutes_at_or_below_the_threshold(services: Services,
                                                                website: Website) -> None:
    clock = Clock()
    t0 = clock.now
    create_rule(website, {"kind": "drop", "threshold": 1, "minutes": 10, "cooldown_minutes": 0})
    engine = engine_for(services, clock)
    engine.load()
    visits = Visits(services, website)
    visits.add(t0, "a")
    visits.add(t0, "b")
    clock.now = t0 + 6 * MINUTE  # both left the window: 0 ≤ 1 from now on
    engine.tick()
    clock.now = t0 + 15 * MINUTE
    engine.tick()
    assert states(website) == []
    clock.now = t0 + 16 * MINUTE
    engine.tick()
    assert states(website) == [("fired", 0)]
    visits.add(clock.now, "c")
    visits.add(clock.now, "d")
    assert states(website) == [("fired", 0), ("resolved", 2)]
    engine.close()


def test_a_goal_surge_counts_one_event_name_in_the_last_minutes(services: Services,
                                                                website: Website) -> None:
    clock = Clock()
    t0 = clock.now
    create_rule(website, {"kind": "goal", "event": "js_error", "threshold": 2, "minutes": 5})
    engine = engine_for(services, clock)
    engine.load()
    visits = Visits(services, website)
    visits.add(t0, "a", "js_error")
    visits.add(t0, "a", "signup")
    visits.add(t0, "b", "js_error")
    assert states(website) == []
    visits.add(t0 + 1000, "c", "js_error")
    assert states(website) == [("fired", 3)]
    clock.now = t0 + 5 * MINUTE + 1000
    engine.tick()
    assert states(website) == [("fired", 3), ("resolved", 0)]
    engine.close()


def test_a_restart_keeps_a_firing_rule_firing(services: Services, website: Website) -> None:
    clock = Clock()
    create_rule(website, {"kind": "spike", "threshold": 1})
    engine = engine_for(services, clock)
    engine.load()
    Visits(services, website).add(clock.now, "a")
    engine.close()
    again = engine_for(services, clock)
    again.load()
    assert [a.kind for a in again.active(website.id)] == ["spike"]
    assert AlertHistory.select().count() == 1
    again.close()


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "flood"}, "kind"),
    ({"kind": "spike"}, "threshold"),
    ({"kind": "spike", "threshold": "50"}, "threshold"),
    ({"kind": "drop", "threshold": 1}, "minutes"),
    ({"kind": "goal", "threshold": 1, "minutes": 5}, "event"),
    ({"kind": "spike", "threshold": 5, "webhooks": [999]}, "webhooks"),
    ({"kind": "spike", "threshold": 5, "emails": ["not-an-address"]}, "emails"),
    ({"kind": "spike", "threshold": 5, "cooldown_minutes": -1}, "cooldown_minutes"),
])
def test_a_bad_rule_names_its_field(services: Services, website: Website, body: dict[str, Any],
                                    field: str) -> None:
    with pytest.raises(AlertError) as error:
        create_rule(website, body)
    assert error.value.field == field


# -- webhooks over real sockets ----------------------------------------------------------------
class Receiver(tornado.web.RequestHandler):
    """A webhook target that checks the signature and answers 500 to the first POST."""

    def initialize(self, received: list[dict[str, Any]], secret: str) -> None:
        self.received = received
        self.secret = secret

    def post(self) -> None:
        body = self.request.body
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        good = hmac.compare_digest(self.request.headers.get("X-Pulse-Signature", ""), expected)
        self.received.append({"body": json.loads(body), "signed": good})
        self.set_status(500 if len(self.received) == 1 else 200 if good else 401)


def serve(app: tornado.web.Application) -> tuple[tornado.httpserver.HTTPServer, int]:
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]


async def until(check: Any, attempts: int = 400) -> None:
    for _ in range(attempts):
        if check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the condition never held")


@pytest.mark.gen_test(timeout=30)
async def test_a_webhook_is_signed_and_retried_after_a_500(services: Services,
                                                           website: Website) -> None:
    received: list[dict[str, Any]] = []
    server, port = serve(tornado.web.Application(
        [(r"/hook", Receiver, {"received": received, "secret": "s3cret"})]))
    queue = DeliveryQueue(None, first_backoff=0.05)
    engine = AlertEngine(services.hub, queue, "https://pulse.example")
    try:
        webhook = create_webhook(website, f"http://127.0.0.1:{port}/hook", "s3cret")
        rule = create_rule(website, {"kind": "spike", "threshold": 1, "webhooks": [webhook.id]})
        engine.load()
        Visits(services, website).add(now_ms(), "a")
        await until(lambda: Delivery.get().status == "sent")
        delivery = Delivery.get()
        assert (delivery.attempts, delivery.response_code) == (2, 200)
        assert len(received) == 2 and all(r["signed"] for r in received)
        assert received[0]["body"] == received[1]["body"]
        body = received[1]["body"]
        assert set(body) == {"website_id", "website", "rule_id", "kind", "state", "value",
                             "threshold", "at", "url"}
        assert body["website_id"] == website.id and body["website"] == "example.com"
        assert (body["rule_id"], body["kind"], body["state"]) == (rule.id, "spike", "fired")
        assert (body["value"], body["threshold"]) == (1, 1)
        assert body["at"].endswith("Z")
        assert body["url"] == f"https://pulse.example/websites/{website.id}/live"
    finally:
        engine.close()
        await queue.close()
        server.stop()


@pytest.mark.gen_test(timeout=30)
async def test_a_dead_webhook_never_slows_tracking(http_client: Any, base_url: str,
                                                   services: Services, website: Website) -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead.listen(8)  # connections are accepted by the kernel, and never answered
    services.alerts.deliveries = queue = DeliveryQueue(None, timeout=3600)
    try:
        webhook = create_webhook(website, f"http://127.0.0.1:{dead.getsockname()[1]}/hook")
        create_rule(website, {"kind": "spike", "threshold": 1, "webhooks": [webhook.id]})
        services.alerts.reload(website.id)
        response = await post_event(http_client, base_url, event_body(website.id))
        assert response.code == 202
        await until(lambda: Delivery.select().count() == 1)
        for n in range(30):
            response = await post_event(http_client, base_url,
                                        event_body(website.id, visitor_id=f"w{n}"))
            assert response.code == 202
        assert Delivery.get().status == "pending"  # still waiting for the dead target
        assert services.hub.stats(website.id).unique_visitors == 31
    finally:
        services.alerts.close()
        await queue.close()
        dead.close()


@pytest.mark.gen_test(timeout=30)
async def test_the_queue_is_bounded(services: Services, website: Website) -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead.listen(8)
    queue = DeliveryQueue(None, size=2, workers=1, timeout=3600)
    try:
        webhook = create_webhook(website, f"http://127.0.0.1:{dead.getsockname()[1]}/hook")
        deliveries = [queue.webhook(webhook, {"n": n}) for n in range(5)]
        statuses = [Delivery.get_by_id(d.id).status for d in deliveries]
        assert statuses[:2] == ["pending", "pending"]
        assert statuses[-1] == "failed"
        assert "queue is full" in Delivery.get_by_id(deliveries[-1].id).error
    finally:
        await queue.close()
        dead.close()


# -- email over a real SMTP server ---------------------------------------------------------------
class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: SMTP, session: SmtpSession,
                          envelope: Envelope) -> str:
        self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content or b"")))
        return "250 OK"


@pytest.mark.gen_test(timeout=30)
async def test_an_alert_email_reaches_a_real_smtp_server(services: Services,
                                                         website: Website) -> None:
    inbox = Inbox()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(inbox), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    smtp = SmtpConfig.parse(f"smtp+insecure://127.0.0.1:{port}", "alerts@pulse.test")
    queue = DeliveryQueue(smtp)
    engine = AlertEngine(services.hub, queue, "https://pulse.example")
    try:
        create_rule(website, {"kind": "spike", "threshold": 1, "emails": ["Ops@Example.com"]})
        engine.load()
        Visits(services, website).add(now_ms(), "a")
        await until(lambda: Delivery.get().status == "sent")
        [(recipients, raw)] = inbox.messages
        assert recipients == ["ops@example.com"]
        mail = message_from_bytes(raw)
        assert mail["From"] == "alerts@pulse.test"
        assert "spike alert fired" in mail["Subject"]
        text = mail.get_payload(decode=True).decode()
        assert f"https://pulse.example/websites/{website.id}/live" in text
    finally:
        engine.close()
        await queue.close()
        server.close()


def test_without_smtp_an_email_fails_with_a_clear_reason(services: Services,
                                                         website: Website) -> None:
    delivery = DeliveryQueue(None).email(website.id, "ops@example.com", {"kind": "spike"})
    stored = Delivery.get_by_id(delivery.id)
    assert stored.status == "failed"
    assert "PULSE_SMTP_URL" in stored.error


def test_smtp_urls() -> None:
    assert SmtpConfig.parse("") is None
    tls = SmtpConfig.parse("smtps://me%40x.org:p%20w@mail.x.org")
    assert tls is not None
    assert (tls.security, tls.port, tls.username, tls.password, tls.sender) == \
        ("tls", 465, "me@x.org", "p w", "pulse@mail.x.org")
    starttls = SmtpConfig.parse("smtp://mail.x.org", "a@x.org")
    assert starttls is not None and (starttls.security, starttls.port) == ("starttls", 587)
    with pytest.raises(ValueError, match="PULSE_SMTP_URL"):
        SmtpConfig.parse("http://mail.x.org")
