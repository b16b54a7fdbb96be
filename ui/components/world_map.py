"""The live page's world map: countries shaded by current visitors, a brief pulse where events
arrive, a tooltip with each country's count, and a click that filters the page to one country.

The country shapes ship with Pulse (ui/static/world-countries.js, built by
scripts/build_world_map.py from Natural Earth): a classic script defines them and a module script
registers them with NiceGUI's ECharts before any chart starts. Nothing is fetched at run time
from anywhere but this server.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from nicegui import app, ui
from nicegui.events import EChartComponentClickEventArguments

from backend.live.hub import HubMessage
from backend.live.stats import ENGAGEMENT, RECENT_EVENTS
from models.records import EventRecord
from ui.components.live_widgets import heading, tag

GEO_FILE = Path(__file__).resolve().parent.parent / "static" / "world-countries.js"
GEO_URL = "/pulse-static/world-countries.js"
MAP_NAME = "pulse-world"
MAP_SECONDS = 1.0  # the map's options are sent at most this often (a page redraws up to 4 Hz)

# pulseMapShade(share) colours a country by its share of the busiest one (indigo, readable on both
# themes); pulseMapStyle() is the map's base look for the current theme, re-applied when it flips.
MAP_JS = f"""
<script src="{GEO_URL}"></script>
<script>
window.pulseMapShade = function (share) {{
  var light = [224, 231, 255], deep = [67, 56, 202];
  var t = Math.max(0.15, Math.min(1, share));
  return "rgb(" + light.map(function (c, i) {{ return Math.round(c + (deep[i] - c) * t); }})
    .join(",") + ")";
}};
window.pulseMapStyle = function () {{
  var dark = pulseDark();
  return {{itemStyle: {{areaColor: dark ? "#334155" : "#e2e8f0",
                        borderColor: dark ? "#0f172a" : "#ffffff", borderWidth: 0.5}},
           emphasis: {{itemStyle: {{areaColor: dark ? "#64748b" : "#cbd5e1"}},
                       label: {{show: false}}}}}};
}};
document.addEventListener("DOMContentLoaded", function () {{
  var dark = pulseDark();
  new MutationObserver(function () {{
    if (pulseDark() === dark) return;
    dark = pulseDark();
    document.querySelectorAll(".pulse-world-map").forEach(function (el) {{
      var chart = getElement(el) && getElement(el).chart;
      if (chart) chart.setOption({{geo: pulseMapStyle()}});
    }});
  }}).observe(document.body, {{attributes: true, attributeFilter: ["class"]}});
}});
</script>
<script type="module">
import {{ echarts }} from "nicegui-echart";
echarts.registerMap("{MAP_NAME}", window.pulseWorldGeo);
</script>
"""


@cache
def countries() -> dict[str, tuple[str, list[float]]]:
    """ISO 3166-1 alpha-2 code → (name, centre [lon, lat]) of every shape on the map."""
    text = GEO_FILE.read_text()
    collection = json.loads(text[text.index("{"):text.rindex("}") + 1])
    found: dict[str, tuple[str, list[float]]] = {}
    for feature in collection["features"]:
        props = feature["properties"]
        found.setdefault(props["code"], (props["name"], props["cp"]))
    return found


@cache
def codes_by_name() -> dict[str, str]:
    """A shape's name (what a click reports) → its country code."""
    text = GEO_FILE.read_text()
    collection = json.loads(text[text.index("{"):text.rindex("}") + 1])
    return {f["properties"]["name"]: f["properties"]["code"] for f in collection["features"]}


def country_name(code: str) -> str:
    """'Germany' for 'DE'; the code itself for one the map does not have."""
    known = countries().get(code)
    return known[0] if known else code


def serve_map_assets() -> None:
    """Serve the country shapes (once, at start-up: the file never changes while we run)."""
    app.add_static_file(local_file=GEO_FILE, url_path=GEO_URL)


def add_map_assets() -> None:
    """Add the map's scripts to the current page."""
    ui.add_head_html(MAP_JS)


class WorldMap:
    """A choropleth of current visitors by country with pulses for new events; redrawn only when
    what it shows changed (the live page's timer calls ``show`` at most four times a second)."""

    def __init__(self, on_select: Callable[[str | None], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.on_select = on_select
        self.clock = clock
        self.selected: str | None = None
        self._shown: Any = None
        self._drawn = float("-inf")
        self.chart = ui.echart({
            ":animation": "!pulseReducedMotion()",
            "animationDurationUpdate": 300,
            "aria": {"enabled": True, "label": {"description": "World map of current visitors "
                                                               "by country"}},
            "tooltip": {"trigger": "item", "confine": True},
            "geo": {
                "map": MAP_NAME, "roam": False, "selectedMode": False,
                "top": 4, "bottom": 4, "left": 4, "right": 4, "aspectScale": 0.85,
                ":itemStyle": "pulseMapStyle().itemStyle",
                ":emphasis": "pulseMapStyle().emphasis",
                "tooltip": {"show": True, "formatter": "{b}: no current visitors"},
                "regions": [],
            },
            "series": [{
                "name": "New events", "type": "effectScatter", "coordinateSystem": "geo",
                "data": [], "symbolSize": 7, "silent": True, "tooltip": {"show": False},
                "itemStyle": {"color": "#f97316"},
                "zlevel": 1,  # its own canvas: a ripple repaints the dots, not the world
                "rippleEffect": {"scale": 4, "period": 1.5, "brushType": "stroke"},
                # No pulse for those who asked for less motion: a still dot marks the country.
                ":showEffectOn": "pulseReducedMotion() ? 'emphasis' : 'render'",
            }],
        }).classes("pulse-chart pulse-world-map w-full h-52 sm:h-96 overflow-hidden")
        tag(self.chart, "world-map")
        self.chart.on_click(self._clicked)

    def _clicked(self, event: EChartComponentClickEventArguments) -> None:
        code = codes_by_name().get(event.name or "")
        if code is None:
            return
        self.on_select(None if code == self.selected else code)

    def show(self, visitors: Sequence[tuple[str, int]], pulses: Iterable[str],
             selected: str | None) -> None:
        """Shade ``visitors`` (country code, count), pulse at ``pulses``, outline ``selected``."""
        self.selected = selected
        known = countries()
        pulse_at = sorted({code for code in pulses if code in known})
        shown = (tuple(visitors), tuple(pulse_at), selected)
        if shown == self._shown:
            return
        now = self.clock()
        if (self._shown is not None and selected == self._shown[2]
                and now - self._drawn < MAP_SECONDS):
            return  # shading moves at most once a second; a click shows at once
        self._shown = shown
        self._drawn = now
        top = max((count for _code, count in visitors), default=0)
        regions = []
        for code, count in visitors:
            if code not in known:
                continue
            name = known[code][0]
            style: dict[str, Any] = {":areaColor": f"pulseMapShade({count / top:.2f})"}
            if code == selected:
                style.update({"borderColor": "#f97316", "borderWidth": 2})
            regions.append({
                "name": name, "itemStyle": style,
                "tooltip": {"formatter": f"{name}: {count:,} current "
                                         f"visitor{'' if count == 1 else 's'}"},
            })
        if selected is not None and selected not in dict(visitors) and selected in known:
            regions.append({"name": known[selected][0],
                            "itemStyle": {"borderColor": "#f97316", "borderWidth": 2}})
        options = self.chart.options
        options["geo"]["regions"] = regions
        options["series"][0]["data"] = [
            {"name": known[code][0], "value": known[code][1]} for code in pulse_at]
        self.chart.update()


class CountryFilter:
    """The live page's country filter: which country is chosen and its latest events (the hub's
    window keeps only 20 events of all countries, so the filtered feed keeps its own 20)."""

    def __init__(self) -> None:
        self.country: str | None = None
        self.events: deque[EventRecord] = deque(maxlen=RECENT_EVENTS)

    def choose(self, country: str | None, recent: Iterable[EventRecord]) -> None:
        """Filter to ``country`` (None: no filter), starting from the window's ``recent`` events
        (newest first)."""
        self.country = country
        self.events.clear()
        if country is not None:
            self.events.extend(e for e in recent if e.country == country)

    def on_message(self, message: HubMessage) -> None:
        """The hub's listener: keep the chosen country's new events (O(1) per event)."""
        country = self.country
        if country is None or message.kind != "events":
            return
        for event in message.events:
            if event.country == country and event.event_type != ENGAGEMENT:
                self.events.appendleft(event)


class WorldMapCard:
    """The map in its card, with the filter's 'Showing …' line and its Clear button."""

    def __init__(self, on_select: Callable[[str | None], None]) -> None:
        with ui.card().classes("w-full px-4 pt-3 pb-2 gap-1").props("flat bordered"):
            with ui.row().classes("w-full items-center justify-between min-h-8"):
                heading("Visitors by country")
                with ui.row().classes("items-center gap-2") as self.filter_row:
                    self.filter_text = ui.label().classes("text-sm text-slate-700")
                    tag(self.filter_text, "country-filter")
                    tag(ui.button("Clear", icon="close", on_click=lambda: on_select(None))
                        .props("flat dense no-caps"), "clear-country")
                # The same filter by keyboard (and screen reader): the countries with visitors.
                self.picker = ui.select({}, label="Country", clearable=True) \
                    .props("dense outlined options-dense").classes("w-44")
                tag(self.picker, "country-picker")
                self.picker.on_value_change(lambda e: on_select(e.value or None))
            self.filter_row.set_visibility(False)
            self._choices: dict[str, str] = {}
            self.map = WorldMap(on_select)
            ui.label("Click a country to show only its visitors in the feed and active pages.") \
                .classes("text-xs text-slate-500")

    def show(self, visitors: Sequence[tuple[str, int]], pulses: Iterable[str],
             selected: str | None) -> None:
        """Redraw the map and the filter line."""
        choices = {code: country_name(code) for code, _count in visitors
                   if code in countries()}
        if selected is not None:
            choices.setdefault(selected, country_name(selected))
        choices = dict(sorted(choices.items(), key=lambda kv: kv[1]))
        if choices != self._choices:
            self._choices = choices
            self.picker.set_options(choices, value=selected)
        elif self.picker.value != selected:
            self.picker.set_value(selected)
        self.filter_row.set_visibility(selected is not None)
        if selected is not None:
            self.filter_text.set_text(f"Showing visitors from {country_name(selected)}")
        self.map.show(visitors, pulses, selected)
