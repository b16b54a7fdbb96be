"""A website's current visitors, kept up to date from the hub's live window."""

from __future__ import annotations

from nicegui import background_tasks, ui

from backend.live.hub import Hub, HubMessage

REFRESH_SECONDS = 1.0


def visitors_text(count: int) -> str:
    """'1 current visitor', '5 current visitors'."""
    return f"{count} current visitor{'' if count == 1 else 's'}"


class CurrentVisitors:
    """A label showing a website's current visitors; redrawn on a timer, never per event.

    While the page is open it listens to the hub, which keeps the website's window in memory
    (no database query to re-seed it) and tells it when the numbers may have changed.
    """

    def __init__(self, hub: Hub, website_id: str, interval: float = REFRESH_SECONDS) -> None:
        self.hub = hub
        self.website_id = website_id
        self._changed = False
        # A window not in memory yet is read in a worker thread: the page never waits for it.
        known = hub.has_stats(website_id)
        self.label = ui.label(visitors_text(hub.stats(website_id).current_visitors)
                              if known else "… current visitors") \
            .mark(f"visitors-{website_id}").classes("text-sm text-emerald-700 font-medium")
        unsubscribe = hub.subscribe(website_id, self._on_message)
        ui.context.client.on_delete(unsubscribe)
        if not known:
            background_tasks.create(self._seed(), name=f"seed {website_id}")
        ui.timer(interval, self._refresh)

    async def _seed(self) -> None:
        stats = await self.hub.seeded_stats(self.website_id)
        self.label.text = visitors_text(stats.current_visitors)

    def _on_message(self, message: HubMessage) -> None:
        self._changed = True

    def _refresh(self) -> None:
        if not self._changed:
            return
        self._changed = False
        self.label.text = visitors_text(self.hub.stats(self.website_id).current_visitors)
