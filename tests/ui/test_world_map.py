"""The live page's world map: shading and pulses follow the hub, a click filters the feed and the
active pages to one country, and a second click (or Clear) removes the filter."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.conftest import eventually
from tests.ui.test_live_page import WAIT, new_event, row_text
from ui.components.world_map import codes_by_name, countries, country_name


def map_of(user: Any) -> Any:
    """The WorldMap element of the open page."""
    (chart,) = user.find(marker="world-map").elements
    return chart


def click_country(user: Any, name: str) -> None:
    """Click a country's shape, as ECharts reports it."""
    user.find(marker="world-map").trigger("componentClick",
                                          {"componentType": "geo", "name": name})


def regions(chart: Any) -> dict[str, str]:
    """Region name → its tooltip text."""
    return {r["name"]: r.get("tooltip", {}).get("formatter", "")
            for r in chart.options["geo"]["regions"]}


def test_the_shapes_have_every_common_country_by_its_alpha2_code() -> None:
    known = countries()
    for code in ("DE", "FR", "US", "BR", "IN", "CN", "JP", "AU", "ZA", "GB", "XK"):
        assert code in known, code
    assert country_name("DE") == "Germany"
    assert country_name("ZZ") == "ZZ"
    assert codes_by_name()["United States of America"] == "US"
    lon, lat = known["FR"][1]
    assert -5 < lon < 10 and 40 < lat < 52  # the centre where France's pulses show


@pytest.mark.asyncio
async def test_the_map_shades_countries_and_pulses_new_events(user: Any, signed_in: Any,
                                                               website: Any,
                                                               services: Any) -> None:
    await user.open(f"/websites/{website.id}/live")
    await user.should_see("Visitors by country")
    chart = map_of(user)
    assert chart.options["geo"]["regions"] == []

    await services.writer.write(new_event(website.id, "/a", "v1", country="DE"))
    await services.writer.write(new_event(website.id, "/b", "v2", country="DE"))
    await services.writer.write(new_event(website.id, "/c", "v3", country="FR"))
    await user.should_see("/c", retries=WAIT)
    await eventually(lambda: len(regions(chart)) == 2)  # the map redraws at most once a second
    assert regions(chart) == {"Germany": "Germany: 2 current visitors",
                              "France": "France: 1 current visitor"}
    shades = {r["name"]: r["itemStyle"][":areaColor"] for r in chart.options["geo"]["regions"]}
    assert shades == {"Germany": "pulseMapShade(1.00)", "France": "pulseMapShade(0.50)"}
    assert {p["name"] for p in chart.options["series"][0]["data"]} <= {"Germany", "France"}

    def japan_pulses() -> bool:
        return "Japan" in {p["name"] for p in chart.options["series"][0]["data"]}

    await services.writer.write(new_event(website.id, "/tokyo", "v4", country="JP"))
    await eventually(japan_pulses)  # a fresh event pulses at its country
    assert regions(chart)["Japan"] == "Japan: 1 current visitor"


@pytest.mark.asyncio
async def test_clicking_a_country_filters_the_feed_and_pages(user: Any, signed_in: Any,
                                                            website: Any, services: Any) -> None:
    await user.open(f"/websites/{website.id}/live")
    await services.writer.write(new_event(website.id, "/berlin", "v1", country="DE"))
    await services.writer.write(new_event(website.id, "/paris", "v2", country="FR"))
    await user.should_see("/paris", retries=WAIT)
    await user.should_see("/berlin")
    await user.should_not_see(marker="country-filter")

    click_country(user, "France")
    await user.should_see("Showing visitors from France")
    assert "/paris" in row_text(user, "active-pages", 0)
    await user.should_not_see("/berlin")
    outline = [r for r in map_of(user).options["geo"]["regions"] if r["name"] == "France"]
    assert outline[0]["itemStyle"]["borderWidth"] == 2

    # New events of other countries stay out; the chosen country's come in.
    await services.writer.write(new_event(website.id, "/munich", "v3", country="DE"))
    await services.writer.write(new_event(website.id, "/lyon", "v4", country="FR"))
    await user.should_see("/lyon", retries=WAIT)
    await user.should_not_see("/munich")

    click_country(user, "France")  # the same country again: no filter
    await user.should_see("/munich", retries=WAIT)
    await user.should_not_see("Showing visitors from France")

    click_country(user, "Germany")
    await user.should_see("Showing visitors from Germany")
    await user.should_not_see("/lyon")
    user.find(marker="clear-country").click()
    await user.should_see("/lyon", retries=WAIT)
    await user.should_not_see(marker="country-filter")


@pytest.mark.asyncio
async def test_the_country_picker_filters_by_keyboard(user: Any, signed_in: Any, website: Any,
                                                      services: Any) -> None:
    await user.open(f"/websites/{website.id}/live")
    await services.writer.write(new_event(website.id, "/berlin", "v1", country="DE"))
    await services.writer.write(new_event(website.id, "/paris", "v2", country="FR"))
    await user.should_see("/paris", retries=WAIT)
    (picker,) = user.find(marker="country-picker").elements
    await eventually(lambda: len(picker.options) == 2)
    assert picker.options == {"FR": "France", "DE": "Germany"}
    picker.value = "DE"
    await user.should_see("Showing visitors from Germany")
    await user.should_not_see("/paris")
    click_country(user, "Germany")  # the map and the picker are one filter
    await user.should_see("/paris", retries=WAIT)
    assert picker.value is None
