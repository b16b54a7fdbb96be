"""The panel's pages, registered for one server's services."""

from __future__ import annotations

from nicegui import ui

from backend.services import Services
from ui.pages import live


def register_pages(services: Services) -> None:
    """Register every panel page (NiceGUI keeps pages in a global router)."""
    live.register(services)

    @ui.page("/")
    def index_page() -> None:
        ui.label("Pulse")
