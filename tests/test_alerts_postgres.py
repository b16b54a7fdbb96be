"""Alert rules, webhooks, deliveries, history, share links and the counter switch on PostgreSQL
(a private database per test; run with PULSE_REQUIRE_SERVICES=1 so it cannot skip)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backend.alerts.delivery import DeliveryQueue
from backend.alerts.engine import AlertEngine
from backend.live.hub import Hub
from models import setup_database
from models.alerts import (
    AlertHistory,
    AlertRule,
    Delivery,
    Share,
    counter_enabled,
    create_share,
    create_webhook,
    revoke_share,
    set_counter,
    share_by_slug,
)
from models.db import database
from models.entities import now_ms
from models.records import NewEvent
from models.websites import create_website, delete_website


@pytest.fixture
def pg(postgres_url: str) -> Iterator[None]:
    setup_database(postgres_url)
    yield
    database.obj.close()


@pytest.mark.asyncio
async def test_the_alert_tables_work_on_postgresql(pg: None) -> None:
    website = create_website("pg.example")
    hook = create_webhook(website, "http://127.0.0.1:9/hook", "s")
    engine = AlertEngine(Hub(), DeliveryQueue(None), "http://pulse.test")
    engine.create_rule(website, {"kind": "spike", "threshold": 1, "webhooks": [hook.id],
                                 "emails": ["ops@example.com"]})
    now = now_ms()
    engine.hub.publish([NewEvent(website_id=website.id, ts=now, event_type="pageview",
                                 pathname="/", visitor_id="v", session_id="s").stored(1)])
    assert [h.state for h in AlertHistory.select()] == ["fired"]
    deliveries = {d.channel: d.status for d in Delivery.select()}
    assert deliveries == {"webhook": "pending", "email": "failed"}  # no SMTP configured
    set_counter(website, True)
    set_counter(website, False)
    set_counter(website, True)
    assert counter_enabled(website.id)
    share = create_share(website, "TV", None)
    assert share_by_slug(share.slug) is not None
    revoke_share(share)
    assert share_by_slug(share.slug) is None
    engine.close()
    await engine.deliveries.close()
    delete_website(website.id)
    assert AlertRule.select().count() == 0 and Share.select().count() == 0
