"""Share links in the panel: the read-only live view without an account (never another
website, members, tokens or settings), a password's cookie, revocation; the owners' page."""

from __future__ import annotations

from typing import Any

import pytest
import tornado.web

from backend.auth import hash_password
from backend.handlers.share import share_cookie_name, share_cookie_value
from models.alerts import Share, counter_enabled, create_share, revoke_share
from models.entities import now_ms
from models.records import NewEvent
from models.websites import create_website
from tests.ui.conftest import SLOW, eventually


@pytest.mark.asyncio
async def test_a_link_shows_the_live_view_without_an_account(user: Any, website: Any,
                                                              services: Any) -> None:
    other = create_website("secret.example", name="Secret site")
    share = create_share(website, "Office TV", None)
    await user.open(f"/share/{share.slug}/live?website_id={other.id}")
    await user.should_see("Office TV")
    await user.should_see("Current visitors")
    await user.should_see(marker="shared-domain")
    for hidden in ("secret.example", "Secret site", "API tokens", "Members", "Sign out",
                   "Website settings", "admin@example.com"):
        await user.should_not_see(hidden)
    services.hub.publish([NewEvent(website_id=website.id, ts=now_ms(), event_type="pageview",
                                   pathname="/pricing", visitor_id="v", session_id="s")
                          .stored(1)])
    await user.should_see("/pricing", retries=SLOW)


@pytest.mark.asyncio
async def test_a_revoked_or_unknown_link_is_a_404(user: Any, website: Any) -> None:
    share = create_share(website, "TV", None)
    assert (await user.http_client.get(f"/share/{share.slug}/live")).status_code == 200
    revoke_share(share)
    response = await user.http_client.get(f"/share/{share.slug}/live")
    assert response.status_code == 404
    assert "This link does not exist" in response.text
    assert (await user.http_client.get("/share/nothing-here/live")).status_code == 404
    assert (await user.http_client.get(f"/share/{website.id}/live")).status_code == 404


@pytest.mark.asyncio
async def test_a_protected_link_needs_its_cookie(user: Any, website: Any,
                                                 services: Any) -> None:
    share = create_share(website, "Board", hash_password("open sesame"))
    response = await user.http_client.get(f"/share/{share.slug}/live")
    assert response.status_code == 303
    assert response.headers["location"] == f"/share/{share.slug}"
    other = create_share(website, "Other", hash_password("open sesame"))
    name = share_cookie_name(share)
    value = tornado.web.create_signed_value(services.settings.secret, name,
                                            share_cookie_value(share)).decode()
    user.http_client.cookies.set(share_cookie_name(other), value)  # another link's name
    assert (await user.http_client.get(f"/share/{other.slug}/live")).status_code == 303
    user.http_client.cookies.set(name, value)
    await user.open(f"/share/{share.slug}/live")
    await user.should_see("Board")


@pytest.mark.asyncio
async def test_an_owner_creates_and_revokes_a_link(signed_in: Any, website: Any) -> None:
    user = signed_in
    await user.open(f"/websites/{website.id}")
    user.find(marker="shares").click()
    await user.should_see("No share links.")
    user.find(marker="share-label").type("Office TV")
    user.find(marker="share-password").type("short")
    user.find(marker="create-share").click()
    await user.should_see("Password: must be null or 8 to 256 characters.")
    user.find(marker="share-password").clear()
    user.find(marker="share-password").type("a long password")
    user.find(marker="create-share").click()
    await user.should_see(marker="share-url", retries=SLOW)  # argon2 runs off the loop
    share = Share.get()
    assert share.label == "Office TV" and share.password_hash is not None
    await user.should_see(marker=f"revoke-share-{share.id}")
    user.find(marker=f"revoke-share-{share.id}").click()
    await user.should_see(marker="confirm")
    user.find(marker="confirm").click()
    await user.should_see("No share links.")
    await eventually(lambda: Share.get_by_id(share.id).revoked_at is not None)


@pytest.mark.asyncio
async def test_an_owner_turns_the_live_counter_on_and_off(signed_in: Any, website: Any) -> None:
    await signed_in.open(f"/websites/{website.id}/shares")
    await signed_in.should_not_see(marker="counter-snippet")
    signed_in.find(marker="counter-switch").click()
    await signed_in.should_see(marker="counter-snippet")
    await signed_in.should_see(f"/embed/{website.id}/counter.js")
    assert counter_enabled(website.id)
    signed_in.find(marker="counter-switch").click()
    await signed_in.should_not_see(marker="counter-snippet")
    assert not counter_enabled(website.id)
