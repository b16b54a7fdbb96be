"""The embeddable live counter, public and opt-in per website: ``/embed/{id}/count`` (SSE),
``/embed/{id}/count.json``, ``/embed/{id}/counter.js`` (a ``<script>`` that shows the count) and
``/embed/{id}`` (an ``<iframe>`` page, light or dark). A website whose counter is off answers 404
on every one of them; none gives anything but the number of current visitors."""

from __future__ import annotations

import logging
from typing import Any

from backend.handlers.base import ApiError, BaseHandler
from models.alerts import counter_enabled

log = logging.getLogger("pulse.embed")

MAX_COUNTER_STREAMS = 50_000

COUNTER_JS = r"""(function () {
  var script = document.currentScript;
  if (!script) return;
  var base = script.src.replace(/\/counter\.js(\?.*)?$/, "");
  var dark = script.getAttribute("data-theme") === "dark";
  var text = script.getAttribute("data-text") || "{n} people on this site now";
  var el = document.createElement("span");
  el.className = "pulse-counter";
  el.setAttribute("role", "status");
  el.setAttribute("aria-live", "polite");
  el.style.cssText = "font:14px/1.4 system-ui,sans-serif;padding:2px 8px;border-radius:999px;" +
    (dark ? "background:#1e293b;color:#e2e8f0" : "background:#f1f5f9;color:#0f172a");
  script.parentNode.insertBefore(el, script.nextSibling);
  function show(n) { el.textContent = text.replace("{n}", String(n)); }
  if (!window.EventSource) {
    fetch(base + "/count.json").then(function (r) { return r.json(); })
      .then(function (d) { show(d.count); });
    return;
  }
  var source = new EventSource(base + "/count");
  source.onmessage = function (e) { show(JSON.parse(e.data).count); };
})();
"""

FRAME_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>Live visitors</title>
<style>html,body{{margin:0;background:transparent}}
span{{font:14px/1.4 system-ui,sans-serif;padding:2px 8px;border-radius:999px;{colors}}}</style>
</head><body><span id="n" role="status" aria-live="polite">…</span><script>
var el = document.getElementById("n");
function show(n) {{ el.textContent = n + " people on this site now"; }}
new EventSource("{stream}").onmessage = function (e) {{ show(JSON.parse(e.data).count); }};
</script></body></html>"""

LIGHT = "background:#f1f5f9;color:#0f172a"
DARK = "background:#1e293b;color:#e2e8f0"


class EmbedHandler(BaseHandler):
    """Shared checks: the website's counter must be on; any origin may read the count."""

    def prepare(self) -> None:
        """404 unless the website's counter is on."""
        self.set_header("Access-Control-Allow-Origin", "*")
        website_id = self.path_args[0] if self.path_args else ""
        if not counter_enabled(website_id):
            raise ApiError(404, "no such live counter")
        self.website_id = website_id

    def get_current_user(self) -> None:
        """The counter is public: no cookie or token is ever read."""
        return None


class CounterStreamHandler(EmbedHandler):
    """``GET /embed/{id}/count``: an SSE stream of ``{"count": N}``, on every change."""

    def get(self, website_id: str) -> None:
        """Hand the connection to the website's counters."""
        counters = self.services.counters
        if counters.stream_count() >= MAX_COUNTER_STREAMS:
            raise ApiError(503, "too many live counters open", {"Retry-After": "30"})
        version = b"HTTP/1.1" if self.request.version == "HTTP/1.1" else b"HTTP/1.0"
        iostream = self.detach()
        iostream.write(version + b" 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                       b"Cache-Control: no-cache, no-transform\r\nX-Accel-Buffering: no\r\n"
                       b"Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n")
        counters.add(self.website_id, iostream)


class CounterJSONHandler(EmbedHandler):
    """``GET /embed/{id}/count.json``: ``{"count": N}`` once."""

    def get(self, website_id: str) -> None:
        """The count now."""
        self.set_header("Cache-Control", "no-store")
        self.write_json(200, {"count": self.services.counters.count(self.website_id)})


class CounterScriptHandler(EmbedHandler):
    """``GET /embed/{id}/counter.js``: the script of the ``<script>`` snippet."""

    def get(self, website_id: str) -> None:
        """The script (the same for every website: it reads its own URL)."""
        self.set_header("Content-Type", "application/javascript; charset=utf-8")
        self.set_header("Cache-Control", "public, max-age=300")
        self.finish(COUNTER_JS)


class CounterFrameHandler(EmbedHandler):
    """``GET /embed/{id}?theme=light|dark``: the page of the ``<iframe>`` snippet."""

    def get(self, website_id: str) -> None:
        """A tiny page showing the count, pushed."""
        theme = self.get_query_argument("theme", "light")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "public, max-age=300")
        self.set_header("Content-Security-Policy", "default-src 'none'; connect-src 'self'; "
                        "script-src 'unsafe-inline'; style-src 'unsafe-inline'")
        self.finish(FRAME_HTML.format(colors=DARK if theme == "dark" else LIGHT,
                                      stream=f"/embed/{self.website_id}/count"))


def counter_snippets(base_url: str, website_id: str) -> dict[str, str]:
    """The snippets an owner copies: script and iframe, light and dark."""
    base = f"{base_url.rstrip('/')}/embed/{website_id}"
    return {
        "script (light)": f'<script async src="{base}/counter.js"></script>',
        "script (dark)": f'<script async src="{base}/counter.js" data-theme="dark"></script>',
        "iframe (light)": f'<iframe src="{base}" title="Live visitors" width="220" '
                          'height="32" style="border:0"></iframe>',
        "iframe (dark)": f'<iframe src="{base}?theme=dark" title="Live visitors" width="220" '
                         'height="32" style="border:0"></iframe>',
    }


def embed_routes(deps: dict[str, Any]) -> list[tuple[str, type[EmbedHandler], Any]]:
    """The live counter's public routes."""
    site = r"/embed/([A-Za-z0-9\-]{1,64})"
    return [
        (site, CounterFrameHandler, deps),
        (site + r"/count", CounterStreamHandler, deps),
        (site + r"/count\.json", CounterJSONHandler, deps),
        (site + r"/counter\.js", CounterScriptHandler, deps),
    ]

