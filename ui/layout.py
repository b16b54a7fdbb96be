"""The panel's shared chrome: a header with navigation (a menu on phones), the theme toggle and
sign-out, and the page's main column with its one h1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nicegui import ui

from models.entities import THEMES, User
from ui.session import sign_out

PANEL_CSS = (Path(__file__).parent / "static" / "panel.css").read_text()

# Charts follow the theme: their colours come from pulseChartStyle() (ECharts options with a
# ":" prefix are evaluated in the browser), and a change of <body>'s dark class restyles every
# chart on the page at once, without a round trip to the server.
PANEL_JS = """
<script>
window.pulseDark = function () { return document.body.classList.contains("body--dark"); };
window.pulseReducedMotion = function () {
  return window.matchMedia("(prefers-reduced-motion: reduce)").matches;
};
window.pulseChartColors = function () {
  return pulseDark()
    ? {text: "#cbd5e1", line: "#1f2937", axis: "#475569"}
    : {text: "#475569", line: "#e2e8f0", axis: "#94a3b8"};
};
window.pulseChartStyle = function () {
  var c = pulseChartColors();
  return {animation: !pulseReducedMotion(), textStyle: {color: c.text},
          legend: {textStyle: {color: c.text}},
          xAxis: {axisLabel: {color: c.text}, axisLine: {lineStyle: {color: c.axis}}},
          yAxis: {axisLabel: {color: c.text}, splitLine: {lineStyle: {color: c.line}}}};
};
document.addEventListener("DOMContentLoaded", function () {
  var dark = pulseDark();
  new MutationObserver(function () {
    if (pulseDark() === dark) return;
    dark = pulseDark();
    document.querySelectorAll(".pulse-chart").forEach(function (el) {
      var chart = getElement(el) && getElement(el).chart;
      if (chart) chart.setOption(pulseChartStyle());
    });
  }).observe(document.body, {attributes: true, attributeFilter: ["class"]});
});
</script>
"""

THEME_LOOK = {  # theme → (ui.dark_mode value, icon, what the button says it is)
    "auto": (None, "brightness_auto", "Theme: same as the system"),
    "dark": (True, "dark_mode", "Theme: dark"),
    "light": (False, "light_mode", "Theme: light"),
}


class ThemeToggle:
    """A header button that cycles the signed-in user's theme: system, dark, light."""

    def __init__(self, user: User | None) -> None:
        self.user = user
        self.theme = user.theme if user is not None and user.theme in THEMES else "auto"
        value, icon, label = THEME_LOOK[self.theme]
        self.dark = ui.dark_mode(value)
        self.button = ui.button(icon=icon, on_click=self.next_theme) \
            .props(f'flat round dense color=white aria-label="{label}"').mark("theme-toggle")
        self.tooltip = self.button.tooltip(label)
        if user is None:
            self.button.set_visibility(False)  # signed out: follow the system

    def next_theme(self) -> None:
        """Switch to the next theme and remember it for this user."""
        theme = THEMES[(THEMES.index(self.theme) + 1) % len(THEMES)]
        value, icon, label = THEME_LOOK[theme]
        if self.user is not None:
            self.user.save_theme(theme)
        self.theme = theme
        self.dark.set_value(value)
        self.button.props(f'icon={icon} aria-label="{label}"')
        self.tooltip.text = label
        ui.notify(label)


def navigation(user: User) -> list[tuple[str, str]]:
    """The header's links for ``user``: (text, address)."""
    links = [("Websites", "/"), ("API tokens", "/tokens")]
    if user.is_admin:
        links.append(("Users", "/users"))
    return links


@contextmanager
def frame(title: str, user: User | None = None) -> Iterator[ui.column]:
    """Wrap a page: a header (brand, navigation, who is signed in) and the page's column."""
    ui.page_title(f"{title} · Pulse")
    ui.add_css(PANEL_CSS)
    ui.add_head_html(PANEL_JS)
    with ui.header().classes("items-center justify-between no-wrap bg-slate-900 text-white "
                             "px-3 sm:px-6 py-2 gap-2"):
        ui.link("Skip to content", "#main").classes("pulse-skip")
        with ui.element("nav").props('aria-label="Main"').classes("flex items-center gap-6"):
            ui.link("Pulse", "/").classes("text-xl font-bold text-white no-underline")
            if user is not None:
                with ui.element("div").classes("pulse-nav-wide items-center gap-6"):
                    for text, address in navigation(user):
                        ui.link(text, address).classes("text-white no-underline")
        with ui.row().classes("items-center gap-2 no-wrap min-w-0"):
            ThemeToggle(user)
            if user is not None:
                with ui.element("div").classes("pulse-nav-wide items-center gap-3 min-w-0"):
                    ui.label(user.email).classes("text-sm text-white truncate max-w-[16rem]")
                    ui.button("Sign out", on_click=sign_out).props("flat color=white dense")
                with ui.button(icon="menu").classes("pulse-nav-narrow") \
                        .props('flat round dense color=white aria-label="Menu"').mark("menu"):
                    with ui.menu().props('aria-label="Menu"'):
                        ui.label(user.email).classes("px-4 py-2 text-sm pulse-muted break-all")
                        for text, address in navigation(user):
                            ui.menu_item(text, lambda a=address: ui.navigate.to(a)) \
                                .props("role=menuitem")
                        ui.separator()
                        ui.menu_item("Sign out", sign_out).props("role=menuitem")
    # NiceGUI's page is the <main> landmark already; this is where "Skip to content" lands.
    with ui.element("div").props("id=main tabindex=-1").classes("w-full"), \
            ui.column().classes("pulse-content w-full max-w-6xl mx-auto p-3 sm:p-6 gap-4") \
            as column:
        title_label = ui.label(title).classes("text-2xl font-semibold break-all") \
            .mark("page-title")
        title_label.tag = "h1"
        yield column


def section_heading(text: str) -> ui.label:
    """A section's title under the page's h1 (an h2, so screen readers can jump to it)."""
    label = ui.label(text).classes("text-lg font-semibold")
    label.tag = "h2"
    return label


def heading_of(column: ui.column) -> ui.label:
    """The title label ``frame`` put first into its column (pages that rename it use this)."""
    first = column.default_slot.children[0]
    assert isinstance(first, ui.label)
    return first
