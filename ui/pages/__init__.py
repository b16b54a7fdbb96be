"""The panel's pages, registered for one server's services."""

from __future__ import annotations

from backend.services import Services
from ui.pages import (
    alerts,
    dashboard,
    live,
    login,
    setup,
    share,
    tokens,
    users,
    website,
    websites,
)


def register_pages(services: Services) -> None:
    """Register every panel page (NiceGUI keeps pages in a global router)."""
    setup.register(services)
    login.register(services)
    websites.register(services)
    website.register(services)
    tokens.register(services)
    users.register(services)
    live.register(services)
    dashboard.register(services)
    alerts.register(services)
    share.register(services)
