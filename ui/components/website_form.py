"""The fields of a website: name, domain, allowed origins, time zone."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import available_timezones

from nicegui import ui

from models.entities import Website


@lru_cache(maxsize=1)
def timezone_names() -> list[str]:
    """Every IANA time zone name, sorted (for the time zone field's completion)."""
    return sorted(available_timezones())


class WebsiteForm:
    """Inputs for a website's settings, empty or filled from ``website``."""

    def __init__(self, website: Website | None = None) -> None:
        self.name = ui.input("Name", value=website.name if website else "",
                             placeholder="My shop").classes("w-full").mark("website-name")
        self.domain = ui.input("Domain", value=website.domain if website else "",
                               placeholder="example.com").classes("w-full").mark("website-domain")
        self.origins = ui.textarea(
            "Allowed origins", value="\n".join(website.origins()) if website else "",
            placeholder="http://localhost:3000 (one per line; the domain is always allowed)",
        ).classes("w-full").props("autogrow").mark("website-origins")
        self.timezone = ui.input("Time zone", value=website.timezone if website else "UTC",
                                 autocomplete=timezone_names()).classes("w-full") \
            .mark("website-timezone")
        self.error = ui.label().classes("text-negative text-sm").mark("form-error")
        self.error.visible = False

    def show_error(self, message: str) -> None:
        """Show why the input was refused, next to the form and as a notification."""
        self.error.text = message
        self.error.visible = True
        ui.notify(message, type="negative")

    def clear_error(self) -> None:
        """Hide the previous error."""
        self.error.visible = False
