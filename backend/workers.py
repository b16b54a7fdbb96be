"""``pulse serve --workers N``: N processes on one public port, sharing the store and the bus.

The supervisor (this module) reserves the public port and the panel's loopback port with
``SO_REUSEPORT`` sockets that never listen, then starts N ``pulse serve --worker I`` processes
that bind the same ports and listen: the kernel spreads new connections over them. Worker 0 runs
the NiceGUI panel; the others forward panel HTTP and WebSocket traffic to it, so a page's
websocket always reaches the process that rendered it. A worker that dies is started again;
SIGTERM or SIGINT stops them all.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from backend.settings import Settings, SettingsError

log = logging.getLogger("pulse.workers")

RESTART_PAUSE = 1.0  # seconds before a dead worker is started again
STOP_GRACE = 30.0  # seconds a worker may take to drain and stop
PANEL_START = 60.0  # seconds worker 0 may take to open the panel before the others start


def check_workers(settings: Settings) -> None:
    """Refuse several workers where they cannot share state (SQLite, or no Redis bus)."""
    if settings.workers <= 1:
        return
    if not settings.database.startswith(("postgresql://", "postgres://")) or \
            not settings.redis_url:
        raise SettingsError(
            f"--workers {settings.workers} needs a shared store and bus: set "
            "PULSE_DATABASE_URL=postgresql://… and PULSE_REDIS_URL=redis://… "
            "(SQLite and the in-process bus serve one process; run --workers 1)")


def reserve(host: str, port: int) -> socket.socket:
    """A bound, never listening ``SO_REUSEPORT`` socket holding ``host:port`` (0: any port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class Supervisor:
    """Starts the workers, restarts one that dies, stops them all on a signal."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._public = reserve(settings.host, settings.port)
        self._panel = reserve("127.0.0.1", 0)
        self.port: int = self._public.getsockname()[1]
        self.panel_port: int = self._panel.getsockname()[1]
        self._workers: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = False

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "app", "serve", "--host", self.settings.host,
                   "--port", str(self.port), "--worker", str(index),
                   "--panel-port", str(self.panel_port)]
        return subprocess.Popen(command)

    def _wait_for_panel(self) -> None:
        deadline = time.monotonic() + PANEL_START
        while not self._stopping and time.monotonic() < deadline:
            if self._workers[0].poll() is not None:
                return  # the loop below starts it again
            try:
                socket.create_connection(("127.0.0.1", self.panel_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        log.warning("worker 0's panel did not start within %.0f s", PANEL_START)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        """Run the workers until SIGTERM or SIGINT; return the exit status."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        log.info("Pulse: %d workers on http://%s:%d (panel in worker 0)", self.settings.workers,
                 self.settings.host, self.port)
        self._workers[0] = self._spawn(0)
        self._wait_for_panel()  # the others forward panel requests to worker 0
        for index in range(1, self.settings.workers):
            self._workers[index] = self._spawn(index)
        while not self._stopping:
            time.sleep(0.2)
            for index, proc in list(self._workers.items()):
                if proc.poll() is not None and not self._stopping:
                    log.warning("worker %d exited with status %s; starting it again", index,
                                proc.returncode)
                    time.sleep(RESTART_PAUSE)
                    self._workers[index] = self._spawn(index)
        for proc in self._workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for index, proc in self._workers.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop in time: killing it", index)
                proc.kill()
                proc.wait()
        self._public.close()
        self._panel.close()
        log.info("stopped")
        return 0
