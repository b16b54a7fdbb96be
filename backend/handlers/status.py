"""Health, metrics and the tracker script."""

from __future__ import annotations

from pathlib import Path

import peewee
import tornado.web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from backend.handlers.base import BaseHandler
from models.db import database

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


class HealthHandler(BaseHandler):
    """``GET /healthz``: 200 when the database answers and the writer is alive, else 503."""

    def get(self) -> None:
        """Check the database and the writer."""
        checks = {"database": "ok", "writer": "ok"}
        try:
            database.obj.execute_sql("SELECT 1").fetchone()
        except peewee.PeeweeException as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        writer = self.services.writer
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


class TrackerScriptHandler(tornado.web.StaticFileHandler):
    """``GET /js/pulse.js``: the tracker, cacheable for an hour, loadable from any origin."""

    def set_extra_headers(self, path: str) -> None:
        """Caching and CORS headers."""
        self.set_header("Cache-Control", "public, max-age=3600")
        self.set_header("Access-Control-Allow-Origin", "*")
        self.set_header("Content-Type", "application/javascript; charset=utf-8")
