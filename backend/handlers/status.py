"""Health, metrics and the tracker script."""

from __future__ import annotations

from pathlib import Path

import tornado.web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from backend.handlers.base import BaseHandler
from backend.tracker_script import TrackerScript

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


class HealthHandler(BaseHandler):
    """``GET /healthz``: 200 when the database answers and the writer is alive, else 503."""

    async def get(self) -> None:
        """Check the database (on the writer's own connection, off the loop) and the writer."""
        checks = {"database": "ok", "writer": "ok"}
        writer = self.services.writer
        problem = await writer.check_database()
        if problem:
            checks["database"] = f"error: {problem}"
        if not writer.alive:
            checks["writer"] = f"error: {writer.last_error or 'stopped'}"
        healthy = all(v == "ok" for v in checks.values())
        self.set_header("Cache-Control", "no-store")
        self.write_json(200 if healthy else 503,
                        {"status": "ok" if healthy else "unhealthy", **checks,
                         "pending_events": writer.pending,
                         "live_streams": len(self.services.streams)})


class MetricsHandler(BaseHandler):
    """``GET /metrics``: Prometheus text format."""

    def get(self) -> None:
        """Export the registry."""
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.services.metrics.hub_listeners.set(self.services.hub.listener_count())
        self.services.metrics.hub_refills.set(self.services.hub.refills)
        self.services.metrics.hub_replay_bytes.set(self.services.hub.buffered_bytes)
        self.finish(generate_latest(self.services.metrics.registry))


class TrackerScriptHandler(tornado.web.RequestHandler):
    """``GET /js/pulse.js`` (cached for an hour, with an ETag) and ``GET /js/pulse.<version>.js``
    (cached forever): the minified tracker, gzip-compressed when the client accepts it,
    loadable from any origin. An outdated version is answered with the current tracker, as the
    plain URL would be, so a page cached with an old tag keeps working."""

    script: TrackerScript

    def initialize(self, script: TrackerScript) -> None:
        """Receive the tracker built once at start."""
        self.script = script

    def compute_etag(self) -> str | None:
        """Set by ``get`` itself (one ETag per encoding)."""
        return None

    def _accepts_gzip(self) -> bool:
        for part in self.request.headers.get("Accept-Encoding", "").split(","):
            name, _, params = part.strip().partition(";")
            if name.strip().lower() in ("gzip", "*"):
                quality = params.strip().removeprefix("q=").strip() or "1"
                try:
                    return float(quality) > 0
                except ValueError:
                    return False
        return False

    def get(self, version: str | None = None) -> None:
        """Answer the tracker (or ``304`` when the client's copy is current)."""
        script = self.script
        if version is not None and version == script.version:
            self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        else:
            self.set_header("Cache-Control", "public, max-age=3600")
        self.set_header("Access-Control-Allow-Origin", "*")
        self.set_header("Content-Type", "application/javascript; charset=utf-8")
        self.set_header("Vary", "Accept-Encoding")
        gzipped = self._accepts_gzip()
        etag = f'"{script.version}-gzip"' if gzipped else f'"{script.version}"'
        self.set_header("Etag", etag)
        asked = self.request.headers.get("If-None-Match", "")
        if asked and (asked.strip() == "*" or any(
                tag.strip().removeprefix("W/").strip('"') in
                (script.version, script.version + "-gzip") for tag in asked.split(","))):
            self.set_status(304)
            self.finish()
            return
        if gzipped:
            self.set_header("Content-Encoding", "gzip")
        self.finish(script.gzipped if gzipped else script.plain)

    def head(self, version: str | None = None) -> None:
        """Headers only."""
        self.get(version)
