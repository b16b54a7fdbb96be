"""The management API, /api/v1/…: every answer checked against docs/openapi.yaml; the issue's
shapes; 4xx errors naming the field; another user's token sees nothing of a website (404)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from backend.auth import create_user
from models.alerts import AlertRule, Share, Webhook
from models.entities import ApiToken, Membership
from tests.openapi_check import SPEC, check_response
from tests.server_support import Response

TEMPLATES = [(re.compile("^" + re.sub(r"\{[a-z_]+\}", "[^/]+", path) + "$"), path)
             for path in SPEC["paths"]]


class Api:
    """Calls the API with a token and checks each answer against the spec."""

    def __init__(self, http_client: Any, base_url: str, token: str | None) -> None:
        self.http_client = http_client
        self.base_url = base_url
        self.token = token

    async def __call__(self, method: str, path: str, body: Any = None,
                       raw: bytes | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        data = raw if raw is not None else (json.dumps(body).encode()
                                            if body is not None else None)
        if method in ("POST", "PUT", "PATCH") and data is None:
            data = b""
        response = await self.http_client.fetch(
            self.base_url + path, method=method, body=data, headers=headers, raise_error=False,
            allow_nonstandard_methods=True)
        template = next(t for pattern, t in TEMPLATES if pattern.match(path))
        check_response(template, method, Response(
            response.code, response.reason or "",
            {k.lower(): v for k, v in response.headers.get_all()}, response.body or b""))
        return response.code, json.loads(response.body) if response.body else None


@pytest.fixture
def api(http_client: Any, base_url: str, token: str) -> Api:
    return Api(http_client, base_url, token)


@pytest.fixture
def stranger(http_client: Any, base_url: str, services: Any) -> Api:
    bob = create_user("bob@example.com", "bob's long password")
    return Api(http_client, base_url, ApiToken.issue(bob, "bob")[1])


@pytest.mark.gen_test
async def test_the_issue_shapes(api: Api, website: Any, base_url: str) -> None:
    status, hook = await api("POST", f"/api/v1/websites/{website.id}/webhooks",
                             {"url": "https://hooks.example/pulse", "secret": "s3cret"})
    assert status == 201
    assert hook["url"] == "https://hooks.example/pulse" and isinstance(hook["id"], int)
    assert "secret" not in hook
    assert Webhook.get_by_id(hook["id"]).secret == "s3cret"

    status, rule = await api("POST", f"/api/v1/websites/{website.id}/alerts", {
        "kind": "spike", "threshold": 50, "webhooks": [hook["id"]],
        "emails": ["ops@example.com"], "cooldown_minutes": 15})
    assert status == 201 and isinstance(rule["id"], int)
    for body in ({"kind": "drop", "threshold": 2, "minutes": 10},
                 {"kind": "silence", "minutes": 30},
                 {"kind": "goal", "event": "signup", "threshold": 5, "minutes": 10}):
        status, _ = await api("POST", f"/api/v1/websites/{website.id}/alerts", body)
        assert status == 201
    status, rules = await api("GET", f"/api/v1/websites/{website.id}/alerts")
    assert [r["kind"] for r in rules] == ["spike", "drop", "silence", "goal"]
    assert rules[0]["webhooks"] == [hook["id"]] and rules[0]["firing"] is False

    status, share = await api("POST", f"/api/v1/websites/{website.id}/shares",
                              {"label": "Team TV", "password": None})
    assert status == 201
    slug = Share.get_by_id(share["id"]).slug
    assert share["url"] == f"{base_url}/share/{slug}"
    status, _ = await api("DELETE", f"/api/v1/websites/{website.id}/shares/{share['id']}")
    assert status == 204
    status, shares = await api("GET", f"/api/v1/websites/{website.id}/shares")
    assert shares == []

    status, _ = await api("DELETE", f"/api/v1/websites/{website.id}/alerts/{rule['id']}")
    assert status == 204
    assert AlertRule.get_or_none(AlertRule.id == rule["id"]) is None


@pytest.mark.gen_test
@pytest.mark.parametrize(("body", "message"), [
    ({"kind": "spike"}, "threshold: is required for this kind"),
    ({"kind": "nope"}, "kind: must be one of spike, drop, silence, goal"),
    ({"kind": "goal", "threshold": 1, "minutes": 5}, "event: "),
    ({"kind": "spike", "threshold": 5, "webhooks": [12345]}, "webhooks: "),
    ({"kind": "spike", "threshold": True}, "threshold: "),
])
async def test_a_bad_rule_gets_400_naming_the_field(api: Api, website: Any, body: Any,
                                                    message: str) -> None:
    status, error = await api("POST", f"/api/v1/websites/{website.id}/alerts", body)
    assert status == 400
    assert error["error"].startswith(message)


@pytest.mark.gen_test
async def test_bad_bodies_and_fields(api: Api, website: Any) -> None:
    path = f"/api/v1/websites/{website.id}"
    assert (await api("POST", path + "/webhooks", raw=b"{nope"))[1] == \
        {"error": "body: is not valid JSON"}
    assert (await api("POST", path + "/webhooks", [1]))[1] == \
        {"error": "body: must be a JSON object"}
    status, error = await api("POST", path + "/webhooks", {"url": "ftp://x.org"})
    assert (status, error["error"]) == (400, "url: must be an http:// or https:// URL")
    status, error = await api("POST", path + "/shares", {"password": "short"})
    assert status == 400 and error["error"].startswith("password: ")
    status, error = await api("POST", "/api/v1/websites", {"domain": "not a domain"})
    assert status == 400 and error["error"].startswith("domain: ")
    status, error = await api("POST", "/api/v1/websites", {"domain": "ok.example",
                                                           "timezone": "Mars/Base"})
    assert status == 400 and error["error"].startswith("timezone: ")
    assert Webhook.select().count() == 0


@pytest.mark.gen_test
async def test_another_users_token_sees_nothing_of_the_website(api: Api, stranger: Api,
                                                               website: Any) -> None:
    _, hook = await api("POST", f"/api/v1/websites/{website.id}/webhooks",
                        {"url": "https://hooks.example/x"})
    _, rule = await api("POST", f"/api/v1/websites/{website.id}/alerts",
                        {"kind": "spike", "threshold": 5})
    _, share = await api("POST", f"/api/v1/websites/{website.id}/shares", {"label": "x"})
    site = f"/api/v1/websites/{website.id}"
    for method, path, body in [
        ("GET", site, None), ("DELETE", site, None), ("GET", site + "/members", None),
        ("POST", site + "/members", {"email": "bob@example.com"}),
        ("GET", site + "/alerts", None), ("POST", site + "/alerts", {"kind": "silence",
                                                                   "minutes": 1}),
        ("GET", f"{site}/alerts/{rule['id']}", None),
        ("DELETE", f"{site}/alerts/{rule['id']}", None),
        ("GET", site + "/alert-history", None),
        ("GET", site + "/webhooks", None),
        ("POST", site + "/webhooks", {"url": "https://evil.example/"}),
        ("DELETE", f"{site}/webhooks/{hook['id']}", None),
        ("POST", f"{site}/webhooks/{hook['id']}/test", None),
        ("GET", site + "/deliveries", None),
        ("GET", site + "/shares", None), ("POST", site + "/shares", {}),
        ("DELETE", f"{site}/shares/{share['id']}", None),
    ]:
        status, error = await stranger(method, path, body)
        assert (status, error) == (404, {"error": "website: no such website"}), (method, path)
    assert (await stranger("GET", "/api/v1/websites"))[1] == []
    assert AlertRule.select().count() == 1 and Webhook.select().count() == 1
    assert Share.get_by_id(share["id"]).revoked_at is None


@pytest.mark.gen_test
async def test_a_viewer_reads_but_cannot_change(api: Api, stranger: Api, website: Any) -> None:
    site = f"/api/v1/websites/{website.id}"
    status, _ = await api("POST", site + "/members", {"email": "Bob@Example.com"})
    assert status == 201
    status, found = await stranger("GET", site)
    assert status == 200 and found["can_manage"] is False
    assert (await stranger("GET", site + "/alerts"))[0] == 200
    status, error = await stranger("POST", site + "/alerts", {"kind": "silence", "minutes": 1})
    assert (status, error) == (403, {"error": "only the website's owners may change this"})
    assert (await stranger("DELETE", site))[0] == 403


@pytest.mark.gen_test
async def test_no_token_or_a_revoked_one_is_401(http_client: Any, base_url: str, api: Api,
                                                website: Any) -> None:
    anonymous = Api(http_client, base_url, None)
    assert (await anonymous("GET", "/api/v1/websites"))[0] == 401
    status, created = await api("POST", "/api/v1/tokens", {"name": "script"})
    assert status == 201 and created["token"].startswith("pulse_")
    script = Api(http_client, base_url, created["token"])
    assert (await script("GET", f"/api/v1/websites/{website.id}"))[0] == 200
    assert (await api("DELETE", f"/api/v1/tokens/{created['id']}"))[0] == 204
    assert (await script("GET", f"/api/v1/websites/{website.id}"))[0] == 401
    assert (await api("DELETE", f"/api/v1/tokens/{created['id']}"))[0] == 404


@pytest.mark.gen_test
async def test_websites_and_members(api: Api, admin: Any, services: Any) -> None:
    bob = create_user("bob@example.com", "bob's long password")
    status, site = await api("POST", "/api/v1/websites", {"domain": "https://Shop.Example/",
                                                          "name": "Shop"})
    assert status == 201 and (site["domain"], site["name"], site["can_manage"]) == \
        ("shop.example", "Shop", True)
    assert [w["id"] for w in (await api("GET", "/api/v1/websites"))[1]] == [site["id"]]
    path = f"/api/v1/websites/{site['id']}/members"
    status, error = await api("POST", path, {"email": "nobody@example.com"})
    assert status == 400 and error["error"].startswith("email: No account has the email")
    assert (await api("POST", path, {"email": "bob@example.com"}))[0] == 201
    assert Membership.allows(bob, site["id"])
    assert (await api("DELETE", f"{path}/{bob.get_id()}"))[0] == 204
    assert not Membership.allows(bob, site["id"])
    assert (await api("DELETE", f"{path}/{admin.get_id()}"))[0] == 409  # the last owner stays
    assert (await api("DELETE", f"/api/v1/websites/{site['id']}"))[0] == 204
    assert (await api("GET", f"/api/v1/websites/{site['id']}"))[0] == 404


@pytest.mark.gen_test
async def test_a_webhook_test_is_queued_and_listed(api: Api, website: Any,
                                                   services: Any) -> None:
    site = f"/api/v1/websites/{website.id}"
    _, hook = await api("POST", site + "/webhooks", {"url": "http://127.0.0.1:9/nothing"})
    assert len(hook["secret"]) >= 32  # generated, shown once
    status, queued = await api("POST", f"{site}/webhooks/{hook['id']}/test")
    assert status == 202
    status, deliveries = await api("GET", site + "/deliveries")
    assert [d["id"] for d in deliveries] == [queued["delivery_id"]]
    assert deliveries[0]["channel"] == "webhook"
    await services.alerts.deliveries.close()


@pytest.mark.gen_test
async def test_the_live_counter_is_turned_on_and_off(api: Api, stranger: Api, website: Any,
                                                     base_url: str) -> None:
    path = f"/api/v1/websites/{website.id}/counter"
    assert (await api("GET", path))[1] == {"enabled": False,
                                            "url": f"{base_url}/embed/{website.id}"}
    status, error = await api("PUT", path, {"enabled": "yes"})
    assert (status, error) == (400, {"error": "enabled: must be true or false"})
    assert (await api("PUT", path, {"enabled": True}))[1]["enabled"] is True
    assert (await stranger("PUT", path, {"enabled": False}))[0] == 404
    assert (await api("GET", path))[1]["enabled"] is True
    assert (await api("PUT", path, {"enabled": False}))[1]["enabled"] is False
