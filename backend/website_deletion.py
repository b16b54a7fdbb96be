"""Deleting a website from a running server: its open live streams end at once, its events go
in batches off the event loop, and nothing of it stays in memory."""

from __future__ import annotations

import asyncio
import logging

from backend.services import Services
from models import websites

log = logging.getLogger("pulse")


async def delete_website(services: Services, website_id: str) -> int:
    """Delete a website with everything stored and kept for it; return the events removed."""
    services.streams.close_website(website_id, "deleted")
    services.hub.forget_website(website_id)
    removed = await asyncio.get_running_loop().run_in_executor(
        None, websites.delete_website, website_id)
    # What was published for it while the events were being deleted goes too.
    services.websites.invalidate(website_id)
    services.streams.close_website(website_id, "deleted")
    services.hub.forget_website(website_id)
    log.info("website %s deleted with %d events", website_id, removed)
    return removed
