"""The panel's shared chrome: header with navigation and sign-out, and a content column."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import ui

from models.entities import User
from ui.session import sign_out


@contextmanager
def frame(title: str, user: User | None = None) -> Iterator[ui.column]:
    """Wrap a page: a header (brand, navigation, who is signed in) and the page's column."""
    ui.page_title(f"{title} · Pulse")
    with ui.header().classes("items-center justify-between bg-slate-900 text-white px-6 py-3"):
        with ui.row().classes("items-center gap-6"):
            ui.link("Pulse", "/").classes("text-xl font-bold text-white no-underline")
            if user is not None:
                ui.link("Websites", "/").classes("text-white no-underline")
                ui.link("API tokens", "/tokens").classes("text-white no-underline")
                if user.is_admin:
                    ui.link("Users", "/users").classes("text-white no-underline")
        if user is not None:
            with ui.row().classes("items-center gap-3"):
                ui.label(user.email).classes("text-sm opacity-80")
                ui.button("Sign out", on_click=sign_out).props("flat color=white dense")
    with ui.column().classes("w-full max-w-6xl mx-auto p-6 gap-4") as column:
        ui.label(title).classes("text-2xl font-semibold break-all").mark("page-title")
        yield column


def heading_of(column: ui.column) -> ui.label:
    """The title label ``frame`` put first into its column (pages that rename it use this)."""
    first = column.default_slot.children[0]
    assert isinstance(first, ui.label)
    return first
