"""``pulse demo``: a demo account and website, fed by the visitor simulator through the real
pipeline (validate → enrich → write; the hub publishes what the writer committed)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from backend.auth import create_user, hash_password, verify_password
from backend.ingest.validation import ValidationError, decode_body, validate
from backend.ingest.writer import WriterClosed
from backend.services import Services
from backend.settings import Settings, SettingsError
from backend.simulator import Hit, VisitorSimulator
from models.entities import User, Website, now_ms
from models.websites import create_website, grant_access

if TYPE_CHECKING:
    from backend.server import PulseServer

log = logging.getLogger("pulse.demo")

DEMO_EMAIL = "demo@pulse.local"
DEMO_DOMAIN = "shop.example"
DEMO_NAME = "Nimbus shop (demo)"
DEMO_DATA_DIR = Path("data-demo")
PASSWORD_FILE = "demo-password"


@dataclass(frozen=True)
class DemoAccount:
    """What a newcomer needs to sign in and find the demo website."""

    email: str
    password: str
    website_id: str


def _demo_password(data_dir: Path) -> str:
    """The demo password: made once, kept in the data directory so it is printed each run."""
    path = data_dir / PASSWORD_FILE
    if path.exists():
        password = path.read_text().strip()
        if len(password) >= 8:
            return password
    data_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def prepare_demo(data_dir: Path) -> DemoAccount:
    """Create the demo admin and website, or find them again (blocking: argon2 hashing)."""
    password = _demo_password(data_dir)
    user = User.by_email(DEMO_EMAIL)
    if user is None:
        user = create_user(DEMO_EMAIL, password, is_admin=True)
    elif not verify_password(user.password_hash, password):
        user.password_hash = hash_password(password)  # the password file was replaced
        user.save()
    website = Website.get_or_none((Website.domain == DEMO_DOMAIN) & (Website.name == DEMO_NAME))
    if website is None:
        website = create_website(DEMO_DOMAIN, name=DEMO_NAME, owner=user)
    grant_access(website, user, "owner")
    return DemoAccount(DEMO_EMAIL, password, website.id)


async def feed(services: Services, hit: Hit) -> None:
    """Send one simulated hit through validation, enrichment and the writer."""
    try:
        payload = validate(decode_body(json.dumps(hit.body).encode()))
    except ValidationError as exc:
        log.warning("the simulator made an invalid event: %s", exc)
        return
    event = services.enricher.enrich(payload, hit.ip, hit.user_agent, now_ms())
    try:
        await services.writer.write(event)
    except WriterClosed:
        pass
    except Exception as exc:
        log.warning("a simulated event was not stored: %s", exc)


async def run_simulator(services: Services, simulator: VisitorSimulator) -> None:
    """Play the simulator in real time on the event loop until cancelled."""
    loop = asyncio.get_running_loop()
    writes: set[asyncio.Task[None]] = set()
    while True:
        hits, wake = simulator.step(loop.time())
        for hit in hits:
            task = asyncio.create_task(feed(services, hit))
            writes.add(task)
            task.add_done_callback(writes.discard)
        await asyncio.sleep(max(0.0, min(wake - loop.time(), 1.0)))


def start_demo(services: Services, account: DemoAccount, rate: float) -> asyncio.Task[None]:
    """Start feeding the demo website with simulated visitors; cancel the task to stop."""
    simulator = VisitorSimulator(account.website_id, DEMO_DOMAIN, rate=rate,
                                 start=asyncio.get_running_loop().time())
    log.info("simulating about %.1f events/s", rate)
    return asyncio.create_task(run_simulator(services, simulator))


def demo_banner(base_url: str, account: DemoAccount, data_dir: Path, rate: float,
                database_url: str = "") -> str:
    """The text ``pulse demo`` prints once it is listening."""
    data = f"{data_dir} (delete it to start over)"
    if database_url.startswith(("postgres://", "postgresql://")):
        name = urlsplit(database_url).path.lstrip("/")
        data = f"PostgreSQL database {name!r}; the demo password is kept in {data_dir}"
    return "\n".join((
        "",
        "Pulse demo is running.",
        f"  Live view: {base_url}/websites/{account.website_id}/live",
        f"  Sign in:   {account.email} / {account.password}",
        f"  Data:      {data}",
        f"Simulated visitors send about {rate:g} events/s. Press Ctrl+C to stop.",
        "",
    ))


def demo_settings(settings: Settings, *, host_given: bool,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """The demo's settings: its own data directory and loopback, unless configured otherwise."""
    environ = os.environ if environ is None else environ
    overrides: dict[str, object] = {}
    if not environ.get("PULSE_DATA_DIR"):
        overrides["data_dir"] = DEMO_DATA_DIR
    if not host_given and not environ.get("PULSE_HOST"):
        overrides["host"] = "127.0.0.1"
    return dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]


def demo_ready(rate: float) -> Callable[[PulseServer], None]:
    """The ``ready`` callback of ``serve()`` for the demo: account, simulator, banner."""
    if not rate > 0:
        raise SettingsError(f"--rate {rate:g}: must be a positive number of events per second")

    def ready(server: PulseServer) -> None:
        settings = server.settings
        account = prepare_demo(settings.data_dir)
        server.on_stop(start_demo(server.services, account, rate).cancel)
        host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "localhost"
        host = f"[{host}]" if ":" in host else host
        print(demo_banner(f"http://{host}:{server.port}", account, settings.data_dir, rate,
                          settings.database_url), flush=True)

    return ready
