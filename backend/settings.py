"""Pulse settings: one frozen object read from ``PULSE_*`` environment variables."""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A ``PULSE_*`` variable holds a value Pulse cannot use."""


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Every knob of a Pulse server, each with a default and a one-line help."""

    data_dir: Path = _setting(Path("./data"), "Directory for the SQLite database and the secret.")
    database_url: str = _setting(
        "", "Database URL (sqlite:///path or postgresql://…); empty means data_dir/pulse.db."
    )
    host: str = _setting("0.0.0.0", "Address the public port binds to.")
    port: int = _setting(8000, "The public port: tracking, SSE, tracker script and the panel.")
    secret: str = _setting(
        "", "Secret for session cookies; empty means generated once and kept in data_dir/secret."
    )
    sse_heartbeat: float = _setting(30.0, "Seconds between SSE heartbeat comments.")
    live_window: float = _setting(
        300.0, "Seconds a visitor stays 'current' after their last event.")
    batch_size: int = _setting(500, "The writer commits once this many events are waiting.")
    batch_delay_ms: float = _setting(2.0, "…or once the oldest waiting event is this many ms old.")
    visit_flush_ms: float = _setting(
        1000.0, "SQLite: ms the writer gathers visit changes before writing them (0: each batch).")
    replay_limit: int = _setting(1000, "Most events replayed to an SSE client after Last-Event-ID.")
    replay_buffer_bytes: int = _setting(
        1_048_576, "Bytes of recent events kept in memory per website for replay.")
    replay_memory: int = _setting(
        33_554_432, "Bytes of replay buffers for all websites; the least recently active go.")
    redis_url: str = _setting(
        "", "Redis URL (redis://host:6379/0) of the live bus of a cluster; empty: in-process.")
    redis_prefix: str = _setting("pulse:", "Prefix of Pulse's Redis keys (share a server).")
    redis_stream_maxlen: int = _setting(
        10_000, "Entries kept per website's Redis stream (approximately, MAXLEN ~).")
    workers: int = _setting(1, "Processes serving the public port (needs PostgreSQL and Redis).")
    fault_drop_publish: str = _setting(
        "", "Testing only: never publish events whose path starts with this (a lost publish).")
    live_max_bytes: int = _setting(
        67_108_864, "Bytes one website's live window may hold (visitors, sessions, 30-min chart).")
    sse_max_backlog: int = _setting(
        1_048_576, "Bytes an SSE client may fall behind before it is disconnected."
    )
    sse_max_per_user: int = _setting(50, "Concurrent SSE streams one user may hold.")
    max_body_bytes: int = _setting(16_384, "Largest accepted tracking request body, in bytes.")
    rate_per_ip: float = _setting(50.0, "Tracking events per second accepted from one IP (0: off).")
    rate_per_website: float = _setting(
        5000.0, "Tracking events per second accepted for one website (0: off)."
    )
    login_attempts: int = _setting(5, "Failed sign-ins per account or IP within 15 minutes.")
    trust_proxy: bool = _setting(
        False, "Take the client IP from X-Forwarded-For / X-Real-IP (behind a reverse proxy)."
    )
    log_level: str = _setting("INFO", "Logging level (DEBUG, INFO, WARNING, ERROR).")
    retention_days: int = _setting(
        0, "Delete raw events older than this many days (0: keep all); visits keep reports.")
    public_url: str = _setting(
        "", "Pulse's address as users reach it (links in alerts); empty: http://localhost:PORT.")
    smtp_url: str = _setting(
        "", "Mail server for alert emails: smtp://user:pass@host:587 (STARTTLS), smtps://… "
        "(TLS) or smtp+insecure://host:25 (no TLS); empty: no email.")
    smtp_from: str = _setting("", "The From address of alert emails (default pulse@<host>).")
    alerts: bool = _setting(
        True, "Evaluate alert rules and send their notifications in this process (in a cluster "
        "of several instances, keep it on in exactly one).")

    @property
    def base_url(self) -> str:
        """Pulse's public address, without a trailing slash."""
        return self.public_url.rstrip("/") or f"http://localhost:{self.port}"

    @property
    def database(self) -> str:
        """The database URL in force."""
        return self.database_url or f"sqlite:///{self.data_dir / 'pulse.db'}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``PULSE_<FIELD>`` variables, then apply ``overrides``."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f"PULSE_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.name, raw, f.default)
        values.update(overrides)
        return cls(**values)

    def with_secret(self) -> Settings:
        """Return settings whose secret is set, creating data_dir/secret on first use."""
        if self.secret:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return dataclasses.replace(self, secret=path.read_text().strip())


def _convert(name: str, raw: str, default: Any) -> Any:
    env = f"PULSE_{name.upper()}"
    try:
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            value: Any = int(raw)
        elif isinstance(default, float):
            value = float(raw)
        elif isinstance(default, Path):
            return Path(raw)
        else:
            return raw
    except ValueError:
        raise SettingsError(f"{env}={raw!r} is not a valid {type(default).__name__}") from None
    if value < 0:
        raise SettingsError(f"{env}={raw!r} must not be negative")
    return value


def settings_help() -> list[tuple[str, str, str]]:
    """(variable, default, help) for every setting, for the README and ``pulse --help``."""
    return [
        (f"PULSE_{f.name.upper()}", str(f.default), f.metadata["help"])
        for f in dataclasses.fields(Settings)
    ]
