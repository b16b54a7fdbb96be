"""The page a user gets for something that does not exist or is not theirs."""

from __future__ import annotations

from nicegui import ui

from models.entities import User
from ui.layout import frame


def not_found(user: User | None, message: str = "This page does not exist.") -> None:
    """Render a 'not found' page (unknown and forbidden look alike)."""
    with frame("Not found", user):
        ui.label(message)
        ui.link("Back to your websites", "/")
