"""/overview: every website at a glance — natural order, search, paging, visitors pushed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from models.entities import Event, Membership, now_ms
from models.overview import natural_key, websites_summary
from models.records import NewEvent
from models.websites import create_website
from tests.ui.conftest import SLOW, eventually


def test_natural_order() -> None:
    names = ["Site 10", "site 2", "Site 1", "Alpha"]
    assert sorted(names, key=natural_key) == ["Alpha", "Site 1", "site 2", "Site 10"]


def store(website_id: str, visitor: str, ts: int) -> None:
    Event.insert(NewEvent(website_id=website_id, ts=ts, event_type="pageview", pathname="/",
                          visitor_id=visitor, session_id=visitor).row()).execute()


def test_the_summary_counts_sessions_in_the_window_and_pageviews_per_minute(
        services: Any, admin: Any) -> None:
    site = create_website("a.example", owner=admin)
    other = create_website("b.example")  # admin is a member of both (created with admins)
    now = now_ms()
    store(site.id, "v1", now - 1000)
    store(site.id, "v1", now - 2000)
    store(site.id, "v2", now - 10 * 60_000)  # outside the 5-minute window
    rows = {r.id: r for r in websites_summary(admin, services.hub.window_ms, now)}
    assert rows[site.id].current == 1 and rows[other.id].current == 0
    assert rows[site.id].minutes[-1] == 2 and sum(rows[site.id].minutes) == 3
    assert len(rows[site.id].minutes) == 30


@pytest.mark.asyncio
async def test_sorted_searched_paged_and_pushed(signed_in: Any, admin: Any,
                                                services: Any) -> None:
    user = signed_in
    sites = [create_website(f"site{n}.example", name=f"Site {n}", owner=admin)
             for n in range(1, 61)]
    Membership.delete().where(Membership.website == create_website("x.example").id).execute()
    busy = sites[41]  # "Site 42"
    store(busy.id, "v1", now_ms())
    store(busy.id, "v2", now_ms())

    await user.open("/")
    user.find(marker="overview-link").click()
    await user.should_see("60 websites · 2 current visitors", retries=SLOW)
    def order() -> list[str]:
        html = user.find(marker="overview-rows").elements.pop().content
        return re.findall(r'data-site="([^"]+)"', html)

    assert order()[0] == busy.id  # most visitors first
    assert sites[0].id in order() and sites[59].id not in order()  # on page 2
    assert len(order()) == 50

    user.find(marker="overview-sort").click()
    user.find("Name").click()
    await eventually(lambda: order()[:3] == [s.id for s in sites[:3]])  # not Site 10 second
    user.find(marker="overview-next").click()
    await eventually(lambda: sites[59].id in order() and len(order()) == 10)

    user.find(marker="overview-search").type("site 42")
    await user.should_see("1 match")
    await eventually(lambda: order() == [busy.id])

    quiet = sites[6]
    services.hub.publish([NewEvent(website_id=quiet.id, ts=now_ms(), event_type="pageview",
                                   pathname="/", visitor_id="n", session_id="n").stored(1)])
    store(quiet.id, "n", now_ms())  # what the writer stored before the hub heard of it
    await user.should_see("60 websites · 3 current visitors", retries=SLOW)


def test_names_are_escaped() -> None:
    from models.overview import SiteSummary
    from ui.pages.overview import rows_html

    html = rows_html([SiteSummary("id", "<script>x</script>", "a.example")])
    assert "<script>" not in html and "&lt;script&gt;" in html
