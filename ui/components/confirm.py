"""A yes/no question before something that cannot be undone."""

from __future__ import annotations

from nicegui import ui


async def confirm(question: str, action: str) -> bool:
    """Ask ``question`` in a dialog; True only if the user clicks ``action``."""
    with ui.dialog().props(f'aria-label="{action}"') as dialog, ui.card().classes("gap-4"):
        ui.label(question).classes("text-base")
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat")
            ui.button(action, on_click=lambda: dialog.submit(True)) \
                .props("color=negative").mark("confirm")
    answer = await dialog
    if not dialog.is_deleted:
        dialog.delete()
    return answer is True
