"""Text the user copies: shown as selectable monospace text with a Copy button."""

from __future__ import annotations

from nicegui import ui


def copyable(text: str, marker: str) -> ui.label:
    """Show ``text`` (as text, never HTML) with a Copy button; return its label."""
    with ui.row().classes("w-full items-center gap-2 no-wrap"):
        label = ui.label(text).mark(marker).classes(
            "font-mono text-sm bg-slate-100 rounded px-3 py-2 select-all break-all grow")

        def copy() -> None:
            ui.clipboard.write(text)
            ui.notify("Copied to the clipboard")

        ui.button("Copy", icon="content_copy", on_click=copy).props("flat dense")
    return label
