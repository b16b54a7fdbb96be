"""The tracker snippet a website embeds, with the origin the browser reached Pulse at."""

from __future__ import annotations

import re

from fastapi import Request
from nicegui import ui

from backend.tracker_script import tracker_script
from ui.components.copyable import copyable

_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def request_origin(request: Request) -> str:
    """scheme://host the browser used (the forwarding proxy passes X-Forwarded-Proto/Host)."""
    headers = request.headers
    scheme = headers.get("x-forwarded-proto", "").split(",")[0].strip() or request.url.scheme
    host = (headers.get("x-forwarded-host", "").split(",")[0].strip()
            or headers.get("host", "") or request.url.netloc)
    if scheme not in ("http", "https"):
        scheme = "http"
    if not _HOST.match(host):  # a forged Host header must not end up in a copied snippet
        host = request.url.netloc
    return f"{scheme}://{host}"


def snippet_text(website_id: str, origin: str) -> str:
    """The <script> tag that loads the tracker for ``website_id`` (its versioned URL, which
    browsers cache for a year; a new Pulse release serves a new one)."""
    return (f'<script defer data-website-id="{website_id}" '
            f'src="{origin}{tracker_script().path}"></script>')


def tracker_snippet(website_id: str, origin: str) -> None:
    """The snippet as copyable text, with a one-line explanation."""
    ui.label("Add this to every page of the website, inside <head>:").classes("text-sm")
    copyable(snippet_text(website_id, origin), f"snippet-{website_id}")
