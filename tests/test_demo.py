"""The demo: a visitor simulator with a realistic mix, fed through the real pipeline, and
``pulse demo`` printing where to look while events reach the live stream."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from backend.demo import (
    DEMO_DATA_DIR,
    DEMO_DOMAIN,
    DEMO_EMAIL,
    demo_ready,
    demo_settings,
    feed,
    prepare_demo,
)
from backend.ingest.enrichment import campaign_source, country_of, describe_agent, is_bot, source_of
from backend.ingest.validation import validate
from backend.services import Services
from backend.settings import Settings, SettingsError
from backend.simulator import COUNTRY_BLOCKS, Hit, VisitorSimulator
from models.entities import Event, Membership, User, Website
from tests.e2e_support import PulseProcess, pulse_cli
from tests.sse_client import SSEReader


def simulate(seconds: float, **options: Any) -> tuple[VisitorSimulator, list[tuple[float, Hit]],
                                                      list[int]]:
    """Run a simulator on a virtual clock; return it, its timed hits and the crowd sizes."""
    simulator = VisitorSimulator("site-1", DEMO_DOMAIN, seed=7, **options)
    hits: list[tuple[float, Hit]] = []
    crowd: list[int] = []
    now = 0.0
    while now < seconds:
        due, wake = simulator.step(now)
        hits += [(now, hit) for hit in due]
        crowd.append(simulator.active)
        now = max(wake, now + 0.001)
    return simulator, hits, crowd


@pytest.fixture(scope="module")
def hour() -> tuple[VisitorSimulator, list[tuple[float, Hit]], list[int]]:
    """One simulated hour at the default rate."""
    return simulate(3600.0)


def test_every_simulated_hit_is_a_valid_browser_event(hour: Any) -> None:
    _, hits, _ = hour
    for _, hit in hits:
        payload = validate(hit.body)
        assert payload.website_id == "site-1" and payload.hostname == DEMO_DOMAIN
        assert not is_bot(hit.user_agent)


def test_the_mix_of_devices_countries_sources_and_events_is_realistic(hour: Any) -> None:
    _, hits, _ = hour
    pageviews = [hit for _, hit in hits if hit.body["event_type"] == "pageview"]
    devices = Counter(describe_agent(hit.user_agent)[2] for hit in pageviews)
    assert set(devices) == {"desktop", "mobile", "tablet"}
    assert devices["desktop"] > devices["mobile"] > devices["tablet"] > 0.02 * len(pageviews)
    browsers = Counter(describe_agent(hit.user_agent)[0] for hit in pageviews)
    assert {"Chrome", "Mobile Safari", "Safari", "Firefox", "Edge"} <= set(browsers)
    countries = Counter(country_of(hit.ip) for hit in pageviews)
    assert "" not in countries  # real public addresses, each in a known country
    assert set(countries) == set(COUNTRY_BLOCKS)
    assert countries.most_common(1)[0][0] == "US"
    sources = Counter(campaign_source(validate(hit.body).query)
                      or source_of(hit.body["referrer"], DEMO_DOMAIN) for hit in pageviews)
    assert {"direct", "google", "twitter", "reddit", "hacker news", "newsletter"} <= set(sources)
    assert sources["direct"] + sources["google"] < 0.8 * len(pageviews)
    events = Counter(hit.body["event_type"] for _, hit in hits)
    assert events["pageview"] > 0.7 * len(hits)
    assert {"signup", "purchase", "add_to_cart", "outbound", "newsletter"} <= set(events)
    plans = {hit.body["props"]["plan"] for _, hit in hits if hit.body["event_type"] == "signup"}
    assert plans == {"free", "pro", "team"}
    assert len(Counter(hit.body["pathname"] for hit in pageviews)) >= 10


def test_visitors_browse_several_pages_come_back_and_leave(hour: Any) -> None:
    simulator, hits, crowd = hour
    sessions: dict[str, list[tuple[float, Hit]]] = {}
    for at, hit in hits:
        sessions.setdefault(hit.body["session_id"], []).append((at, hit))
    lengths = Counter(min(len(visit), 5) for visit in sessions.values())
    assert lengths[1] > 0.15 * len(sessions)  # some bounce
    assert lengths[5] > 0.1 * len(sessions)  # some read on
    # Think time between the pages of one visit.
    gaps = [b[0] - a[0] for visit in sessions.values() for a, b in pairwise(visit)]
    assert min(gaps) > 0 and sorted(gaps)[len(gaps) // 2] > 5
    # One visitor, several visits (sessions); one visit, one visitor, device and IP.
    visitors = {hit.body["visitor_id"] for _, hit in hits}
    assert len(visitors) < len(sessions)
    for visit in sessions.values():
        assert len({(h.body["visitor_id"], h.ip, h.user_agent) for _, h in visit}) == 1
    # People leave: nearly everyone who came has gone, and the crowd stays bounded.
    assert simulator.left > 0.97 * simulator.arrived
    assert simulator.arrived == simulator.left + simulator.active
    steady = sorted(crowd[len(crowd) // 10:])
    assert 20 <= steady[len(steady) // 2] <= 60
    assert max(crowd) <= 60


@pytest.mark.parametrize("rate", [1.0, 3.0, 40.0])
def test_the_event_rate_follows_the_setting(rate: float) -> None:
    simulator, hits, crowd = simulate(1800.0, rate=rate)
    assert 0.85 * rate * 1800 <= len(hits) <= 1.15 * rate * 1800
    assert simulator.sent == len(hits)
    steady = sorted(crowd[len(crowd) // 10:])
    assert 20 <= steady[len(steady) // 2] <= 60


def test_the_first_visitors_arrive_within_seconds() -> None:
    _, hits, _ = simulate(10.0)
    assert len([at for at, _ in hits if at <= 3.0]) >= 5


def test_a_seeded_simulator_is_reproducible() -> None:
    first = [hit for _, hit in simulate(300.0)[1]]
    second = [hit for _, hit in simulate(300.0)[1]]
    assert first == second


def test_demo_account_and_website_are_created_once(services: Services, tmp_path: Path) -> None:
    first = prepare_demo(tmp_path)
    again = prepare_demo(tmp_path)
    assert first == again
    assert first.email == DEMO_EMAIL and len(first.password) >= 12
    assert (tmp_path / "demo-password").read_text().strip() == first.password
    assert User.select().count() == 1 and User.by_email(DEMO_EMAIL).is_admin
    assert Website.select().count() == 1
    assert Membership.allows(User.by_email(DEMO_EMAIL), first.website_id)


def test_demo_settings_use_their_own_data_dir_and_loopback() -> None:
    base = Settings()
    chosen = demo_settings(base, host_given=False, environ={})
    assert (chosen.data_dir, chosen.host) == (DEMO_DATA_DIR, "127.0.0.1")
    kept = demo_settings(Settings(data_dir=Path("/srv/pulse"), host="0.0.0.0"), host_given=False,
                         environ={"PULSE_DATA_DIR": "/srv/pulse", "PULSE_HOST": "0.0.0.0"})
    assert (kept.data_dir, kept.host) == (Path("/srv/pulse"), "0.0.0.0")
    with pytest.raises(SettingsError, match="--rate"):
        demo_ready(0)


@pytest.mark.asyncio
async def test_simulated_hits_go_through_the_real_pipeline(services: Services,
                                                           tmp_path: Path) -> None:
    account = prepare_demo(tmp_path)
    received: list[Any] = []
    services.hub.subscribe(account.website_id, lambda message: received.extend(message.events))
    simulator = VisitorSimulator(account.website_id, DEMO_DOMAIN, seed=3)
    hits, _ = simulator.step(30.0)
    assert len(hits) >= 10
    await asyncio.gather(*(feed(services, hit) for hit in hits))
    await services.writer.close()
    assert len(received) == len(hits) == Event.select().count()
    assert all(len(record.country) == 2 for record in received)  # enriched from the IP
    assert {record.browser for record in received} - {"Other"}
    assert all(record.visitor_id.startswith("sim-") for record in received)
    assert [r.pathname for r in received] == [validate(h.body).pathname for h in hits]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_pulse_demo_prints_where_to_look_and_the_live_stream_moves(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    with PulseProcess(data_dir, command=("demo", "--rate", "20")) as demo:
        live = demo.wait_for_line(r"Live view: ")
        login = demo.wait_for_line(r"Sign in: ")
    match = re.search(r"(http://127\.0\.0\.1:(\d+))/websites/([0-9a-f-]{36})/live", live)
    assert match is not None, live
    assert int(match.group(2)) == demo.port
    website_id = match.group(3)
    email, password = re.search(r"Sign in:\s+(\S+) / (\S+)", login).groups()  # type: ignore
    assert email == DEMO_EMAIL
    assert (data_dir / "demo-password").read_text().strip() == password

    # The same demo again: same website, same sign-in; now follow its live stream.
    token = pulse_cli(data_dir, "create-token", email, "--name", "test")
    with PulseProcess(data_dir, command=("demo", "--rate", "20")) as demo:
        assert website_id in demo.wait_for_line(r"Live view: ")
        assert password in demo.wait_for_line(r"Sign in: ")
        reader = SSEReader(f"{demo.base_url}/admin/analytics/live?website_id={website_id}",
                           {"Authorization": f"Bearer {token}"}).start()
        try:
            await reader.wait_for(lambda r: len(r.of_type("new_event")) >= 5, timeout=60)
        finally:
            reader.close()
    assert reader.status == 200
    events = [frame.data["data"] for frame in reader.of_type("new_event")]
    assert {event["website_id"] for event in events} == {website_id}
    assert all(event["country"] and event["browser"] for event in events)
