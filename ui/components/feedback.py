"""Telling the user why their input was refused."""

from __future__ import annotations

from nicegui import ui


def sentence(error: Exception | str) -> str:
    """An error message as a sentence: capitalised, with a full stop."""
    text = str(error).strip()
    if not text:
        return "Something went wrong."
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def error_line() -> ui.label:
    """An empty red line under a form, for the latest error."""
    return ui.label().classes("text-negative text-sm").mark("form-error")
