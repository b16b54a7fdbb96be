"""Websites in the panel: the list with live counts, adding, editing, deleting, the snippet."""

from __future__ import annotations

from typing import Any

import pytest
from nicegui import ui
from starlette.requests import Request

from backend.tracker_script import tracker_script
from models.entities import Event, Website, now_ms
from models.records import NewEvent
from models.websites import create_website
from tests.ui.conftest import SLOW, eventually
from ui.components.snippet import request_origin, snippet_text


def pageview(website_id: str, visitor: str) -> NewEvent:
    """A pageview of one visitor, now."""
    return NewEvent(website_id=website_id, ts=now_ms(), event_type="pageview", pathname="/",
                    visitor_id=visitor, session_id=f"session-{visitor}")


@pytest.mark.asyncio
async def test_a_new_website_appears_with_a_count_that_updates_itself(
        signed_in: Any, services: Any) -> None:
    user = signed_in
    await user.should_see("No websites yet")
    user.find("Add website").click()
    user.find(marker="website-name").type("My shop")
    user.find(marker="website-domain").type("https://Shop.Example.com/")
    user.find(marker="website-origins").type("http://localhost:3000")
    user.find("Create website").click()
    await user.should_see("Tracking snippet", retries=SLOW)

    website = Website.get(Website.domain == "shop.example.com")
    assert (website.name, website.origins(), website.timezone) == (
        "My shop", ["http://localhost:3000"], "UTC")
    await user.should_see(snippet_text(website.id, "http://test"))

    await user.open("/")
    await user.should_see(marker=f"visitors-{website.id}", content="0 current visitors")
    page = user.client
    await services.writer.write(pageview(website.id, "v1"))
    await user.should_see(marker=f"visitors-{website.id}", content="1 current visitor",
                          retries=SLOW)
    await services.writer.write(pageview(website.id, "v2"))
    await user.should_see(marker=f"visitors-{website.id}", content="2 current visitors",
                          retries=SLOW)
    assert user.client is page  # no reload: the page's timer redrew the label


@pytest.mark.asyncio
async def test_the_list_counts_visitors_already_in_the_window(
        signed_in: Any, website: Any, services: Any) -> None:
    await services.writer.write(pageview(website.id, "v1"))
    services.hub.forget_website(website.id)  # the window is seeded from the database
    await signed_in.open("/")
    await signed_in.should_see(marker=f"visitors-{website.id}", content="1 current visitor")
    await signed_in.should_see("Example")
    await signed_in.should_see("example.com")


@pytest.mark.asyncio
async def test_bad_website_input_is_explained_and_nothing_is_created(signed_in: Any) -> None:
    user = signed_in
    user.find("Add website").click()
    user.find(marker="website-domain").type("not a domain")
    user.find("Create website").click()
    await user.should_see("is not a valid domain name")

    user.find(marker="website-domain").clear().type("example.org")
    user.find(marker="website-origins").type("ftp://files.example.org")
    user.find("Create website").click()
    await user.should_see("is not an origin like https://example.com")

    user.find(marker="website-origins").clear()
    user.find(marker="website-timezone").clear().type("Mars/Olympus_Mons")
    user.find("Create website").click()
    await user.should_see("is not a known time zone")

    user.find(marker="website-timezone").clear().type("Europe/Berlin")
    user.find(marker="website-name").type("x" * 201)
    user.find("Create website").click()
    await user.should_see("1 to 200 characters")
    assert Website.select().count() == 0


@pytest.mark.asyncio
async def test_user_text_is_shown_as_text(signed_in: Any, admin: Any) -> None:
    name = '<img src=x onerror="alert(1)"> & <b>bold</b>'
    website = create_website("example.net", name=name, owner=admin)
    await signed_in.open("/")
    await signed_in.should_see(kind=ui.link, content=name)
    await signed_in.open(f"/websites/{website.id}")
    await signed_in.should_see(marker="page-title", content=name)
    await signed_in.should_not_see(kind=ui.html)
    await signed_in.should_not_see(kind=ui.markdown)


@pytest.mark.asyncio
async def test_editing_a_website(signed_in: Any, website: Any, services: Any) -> None:
    user = signed_in
    assert services.websites.get(website.id).domain == "example.com"  # cached
    await user.open(f"/websites/{website.id}")
    user.find(marker="website-name").clear().type("Renamed")
    user.find(marker="website-domain").clear().type("renamed.example.com")
    user.find(marker="website-timezone").clear().type("Europe/Paris")
    user.find("Save").click()
    await user.should_see("Saved")
    await user.should_see(marker="page-title", content="Renamed")
    stored = Website.get_by_id(website.id)
    assert (stored.name, stored.domain, stored.timezone) == (
        "Renamed", "renamed.example.com", "Europe/Paris")
    assert services.websites.get(website.id).domain == "renamed.example.com"

    user.find(marker="website-name").clear().type("Changed again")
    user.find(marker="website-origins").clear().type("javascript:alert(1)")
    user.find("Save").click()
    await user.should_see("is not an origin like https://example.com")
    stored = Website.get_by_id(website.id)
    assert (stored.name, stored.allowed_origins) == ("Renamed", "http://localhost:3000")
    await user.should_see(marker="page-title", content="Renamed")


@pytest.mark.asyncio
async def test_deleting_asks_first_and_removes_the_events(
        signed_in: Any, website: Any, admin: Any, services: Any) -> None:
    user = signed_in
    other = create_website("other.example", name="Other", owner=admin)
    for visitor in ("v1", "v2"):
        await services.writer.write(pageview(website.id, visitor))
    await services.writer.write(pageview(other.id, "v3"))
    assert services.hub.stats(website.id).current_visitors == 2

    await user.open(f"/websites/{website.id}")
    user.find(marker="delete-website").click()
    await user.should_see("Delete Example and all its events? This cannot be undone.")
    user.find("Cancel").click()
    await user.should_not_see("Delete Example and all its events?")
    assert Website.get_or_none(Website.id == website.id) is not None

    user.find(marker="delete-website").click()
    await user.should_see("Delete Example and all its events?")
    user.find(marker="confirm").click()
    await user.should_see(marker="add-website", retries=SLOW)
    await user.should_not_see(marker=f"website-{website.id}")
    await user.should_see(marker=f"website-{other.id}")
    assert Website.get_or_none(Website.id == website.id) is None
    assert Event.select().where(Event.website == website.id).count() == 0
    assert Event.select().where(Event.website == other.id).count() == 1
    assert services.websites.get(website.id) is None
    assert services.hub.stats(website.id).current_visitors == 0  # forgotten, not kept

    await user.open(f"/websites/{website.id}")
    await user.should_see("This website does not exist, or you do not have access to it.")


@pytest.mark.asyncio
async def test_the_live_button_leads_to_the_live_page(signed_in: Any, website: Any) -> None:
    await signed_in.open("/")
    signed_in.find(marker=f"live-{website.id}").click()
    await eventually(lambda: signed_in.back_history[-1] == f"/websites/{website.id}/live")
    await signed_in.should_not_see(marker="add-website", retries=SLOW)


def test_the_snippet_origin_follows_the_forwarded_host_and_scheme() -> None:
    def request(headers: dict[str, str], scheme: str = "http") -> Request:
        return Request({"type": "http", "scheme": scheme, "method": "GET", "path": "/",
                        "server": ("127.0.0.1", 8123), "query_string": b"",
                        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]})

    assert request_origin(request({"Host": "pulse.example.com:8000"})) == \
        "http://pulse.example.com:8000"
    assert request_origin(request({"Host": "127.0.0.1:9", "X-Forwarded-Host": "stats.example.org",
                                   "X-Forwarded-Proto": "https"})) == "https://stats.example.org"
    assert request_origin(request({"Host": "[::1]:8000"})) == "http://[::1]:8000"
    forged = request({"Host": 'evil"><script>', "X-Forwarded-Proto": "javascript"})
    assert request_origin(forged) == "http://127.0.0.1:8123"
    assert snippet_text("abc", "https://stats.example.org") == (
        '<script defer data-website-id="abc" '
        f'src="https://stats.example.org/js/pulse.{tracker_script().version}.js"></script>')
