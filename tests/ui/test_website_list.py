"""The all-websites view: natural order, search, sort by current visitors, paging, counts and
sparklines pushed from the hub; and with 1,000 websites the list appears at once and the event
loop is never busy for more than 50 ms at a stretch while the page opens and the live windows
of every website are read."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from nicegui import ui

from models.db import database
from models.entities import Website
from models.websites import create_website
from tests.test_loop_lag import probe
from tests.ui.conftest import SLOW, eventually
from tests.ui.test_live_page import new_event
from ui.components.website_list import PAGE_SIZE, natural_key, sparkline

MAX_BUSY = 0.050


def names_on_screen(user: Any) -> list[str]:
    """The names of the visible rows, top to bottom."""
    return [e.text for e in user.current_layout.descendants()
            if isinstance(e, ui.link) and "font-medium" in e.classes
            and all(a.visible for a in (e, *e.ancestors()))]


def test_names_sort_in_natural_order() -> None:
    names = ["Site 10", "site 2", "Site 1", "Alpha", "Site 2b", "10 Downing"]
    assert sorted(names, key=natural_key) == ["10 Downing", "Alpha", "Site 1", "site 2",
                                              "Site 2b", "Site 10"]


def test_a_sparkline_is_numbers_only() -> None:
    svg = sparkline([0, 1, 4, 2])
    assert svg.startswith("<svg") and "polyline" in svg and 'aria-hidden="true"' in svg
    assert sparkline([]).startswith("<svg")


def make_websites(count: int) -> list[Website]:
    """``count`` websites named 'Site 1' … owned by the admin, in one transaction."""
    with database.atomic():
        return [create_website(f"site{n}.example", name=f"Site {n}") for n in range(1, count + 1)]


@pytest.mark.asyncio
async def test_the_list_pages_searches_and_sorts(user: Any, signed_in: Any, admin: Any,
                                                 services: Any) -> None:
    sites = make_websites(45)
    await user.open("/")
    await user.should_see("45 websites")
    await user.should_see(marker="website-page", content="1–20 of 45")
    user.find(marker="website-sort").elements.pop().value = "name"
    await user.should_see("Site 2")
    shown = names_on_screen(user)
    assert shown[:3] == ["Site 1", "Site 2", "Site 3"] and len(shown) == PAGE_SIZE
    await user.should_not_see("Site 21")

    user.find(marker="next-page").click()
    await user.should_see(marker="website-page", content="21–40 of 45")
    assert names_on_screen(user)[0] == "Site 21"

    user.find(marker="website-search").type("site 4")
    await user.should_see("Site 45")
    await user.should_not_see(marker="next-page")  # one page: no pager
    assert names_on_screen(user) == ["Site 4", "Site 40", "Site 41", "Site 42", "Site 43",
                                     "Site 44", "Site 45"]
    user.find(marker="website-search").clear().type("nothing like it")
    await user.should_see("No website matches.")
    user.find(marker="website-search").clear()

    # Sorted by current visitors, pushed from the hub: Site 37 comes first once it has one.
    user.find(marker="website-sort").elements.pop().value = "visitors"
    await services.writer.write(new_event(sites[36].id, "/", "v1"))
    await user.should_see(marker=f"visitors-{sites[36].id}", content="1 current visitor",
                          retries=SLOW)
    assert names_on_screen(user)[:2] == ["Site 37", "Site 1"]
    (row,) = user.find(marker=f"website-{sites[36].id}").elements
    spark = [e for e in row.descendants() if "pulse-site-spark" in e.classes][0]
    assert "polyline" in spark.content


@pytest.mark.asyncio
async def test_a_thousand_websites_appear_at_once_without_stalling_the_loop(
        user: Any, signed_in: Any, admin: Any, services: Any, capsys: Any) -> None:
    sites = make_websites(1000)
    for n in range(0, 1000, 50):  # some websites with visitors, so their windows have a seed
        for v in range(3):
            await services.writer.write(new_event(sites[n].id, f"/p{v}", f"v{n}-{v}"))
    for site in sites:  # nothing in memory: every window is read from the database
        services.hub.forget_website(site.id)
    assert not any(services.hub.has_stats(site.id) for site in sites)

    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()
    probing = asyncio.create_task(probe(stop, lags))
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    await user.open("/")
    await user.should_see(marker=f"website-{sites[0].id}", retries=SLOW)
    appeared = time.perf_counter() - started
    await eventually(lambda: all(services.hub.has_stats(site.id) for site in sites), 1200)
    seeded = time.perf_counter() - started
    await user.should_see(marker=f"visitors-{sites[0].id}", content="3 current visitors",
                          retries=SLOW)
    stop.set()
    await probing

    assert services.hub.listener_count() >= 1000
    late = sorted(lag for lag, _ in lags)
    busiest = max(cpu for _, cpu in lags)
    with capsys.disabled():
        print(f"\n1,000 websites: the list appeared in {appeared * 1000:.0f} ms, every window "
              f"read in {seeded:.1f} s; probe delay median {late[len(late) // 2] * 1000:.1f} ms,"
              f" p99 {late[len(late) * 99 // 100] * 1000:.1f} ms, max {late[-1] * 1000:.1f} ms;"
              f" loop busy at most {busiest * 1000:.1f} ms at a stretch ({len(lags)} probes)")
    assert busiest <= MAX_BUSY, f"the loop was busy for {busiest * 1000:.0f} ms at a stretch"
