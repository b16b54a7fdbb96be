"""The alerts page: owners add webhooks and rules, send a test, read deliveries; the live page's
banner shows a firing rule; viewers never see the page."""

from __future__ import annotations

from typing import Any

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web

from backend.auth import create_user
from models.alerts import AlertRule, Delivery, Webhook
from models.entities import Membership, now_ms
from models.records import NewEvent
from tests.ui.conftest import SLOW, eventually


class Ok(tornado.web.RequestHandler):
    def post(self) -> None:
        self.set_status(204)


@pytest.mark.asyncio
async def test_an_owner_adds_a_webhook_and_a_rule_and_sends_a_test(
        signed_in: Any, website: Any, services: Any) -> None:
    user = signed_in
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    target = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/hook", Ok)]))
    target.add_sockets(sockets)
    try:
        await user.open(f"/websites/{website.id}")
        user.find(marker="alerts").click()
        await user.should_see("Rules")
        await user.should_see(marker="smtp-missing")

        user.find(marker="webhook-url").type("not a url")
        user.find(marker="add-webhook").click()
        await user.should_see("Url: must be an http:// or https:// URL.")
        user.find(marker="webhook-url").clear()
        user.find(marker="webhook-url").type(f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
                                             "/hook")
        user.find(marker="add-webhook").click()
        await user.should_see(marker="webhook-secret-value")
        hook = Webhook.get()
        await user.should_see(marker=f"webhook-{hook.id}")

        user.find(marker=f"test-webhook-{hook.id}").click()
        await eventually(lambda: Delivery.select().where(Delivery.status == "sent").exists())
        await user.should_see("HTTP 204", retries=SLOW)

        user.find(marker="add-rule").click()  # a spike with the default threshold 50
        await user.should_see("current visitors ≥ 50")
        rule = AlertRule.get()
        assert services.alerts.state(rule.id) is not None

        user.find(marker=f"delete-rule-{rule.id}").click()
        await user.should_see(marker="confirm")
        user.find(marker="confirm").click()
        await user.should_not_see(marker=f"rule-{rule.id}")
        assert services.alerts.state(rule.id) is None
    finally:
        target.stop()
        await services.alerts.deliveries.close()


@pytest.mark.asyncio
async def test_a_bad_rule_is_refused_naming_the_field(signed_in: Any, website: Any) -> None:
    await signed_in.open(f"/websites/{website.id}/alerts")
    signed_in.find(marker="rule-kind").click()
    signed_in.find("goal").click()
    signed_in.find(marker="add-rule").click()
    await signed_in.should_see("Event: must be an event name")
    assert AlertRule.select().count() == 0


@pytest.mark.asyncio
async def test_a_viewer_never_sees_the_alerts_page(user: Any, website: Any,
                                                   sign_in_as: Any) -> None:
    bob = create_user("bob@example.com", "bob's long password")
    Membership.create(user=bob, website=website, role="viewer")
    await sign_in_as("bob@example.com", "bob's long password")
    await user.open(f"/websites/{website.id}/alerts")
    await user.should_see("This website does not exist, or you are not one of its owners.")
    await user.should_not_see("Rules")
    await user.open(f"/websites/{website.id}")
    await user.should_not_see(marker="alerts")


@pytest.mark.asyncio
async def test_the_live_page_shows_a_firing_rule(signed_in: Any, website: Any,
                                                 services: Any) -> None:
    services.alerts.create_rule(website, {"kind": "spike", "threshold": 1})
    await signed_in.open(f"/websites/{website.id}/live")
    await signed_in.should_not_see("Alert: current visitors ≥ 1")
    services.hub.publish([NewEvent(website_id=website.id, ts=now_ms(), event_type="pageview",
                                   pathname="/", visitor_id="v", session_id="s").stored(1)])
    await signed_in.should_see("Alert: current visitors ≥ 1", retries=SLOW)
