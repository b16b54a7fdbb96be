"""The live page's banner: the website's alert rules that are firing now."""

from __future__ import annotations

from nicegui import ui

from backend.alerts.engine import AlertEngine
from ui.components.dates import utc_text

REFRESH_SECONDS = 1.0


class AlertBanner:
    """A red strip naming each firing rule; hidden while none fires (read from memory)."""

    def __init__(self, engine: AlertEngine, website_id: str) -> None:
        self.engine = engine
        self.website_id = website_id
        self.shown: tuple[tuple[int, int], ...] = ()
        self.box = ui.column().classes(
            "w-full gap-1 bg-red-50 border border-red-300 text-red-900 rounded p-3") \
            .props('role="alert"').mark("alert-banner")
        self.box.visible = False
        self.update()
        ui.timer(REFRESH_SECONDS, self.update)

    def update(self) -> None:
        """Show the rules firing now (redrawn only when that changed)."""
        active = self.engine.active(self.website_id)
        key = tuple((a.rule_id, a.value) for a in active)
        if key == self.shown:
            return
        self.shown = key
        self.box.clear()
        self.box.visible = bool(active)
        with self.box:
            for alert in active:
                ui.label(f"Alert: {alert.text} (now {alert.value}, since "
                         f"{utc_text(alert.since)})").classes("font-medium")
