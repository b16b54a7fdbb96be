"""A cluster of real ``pulse serve`` processes on PostgreSQL and Redis: one order per website on
every instance, nothing lost when a publish is (SIGKILL, a dropped publish, Redis emptied),
Last-Event-ID honoured on any instance, and ``reset`` for the ids that cannot be."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.cluster_support import Cluster, Follower, post, stored
from tests.real_services import RedisTarget, delete_redis_prefix

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str, redis_target: RedisTarget) -> Iterator[Cluster]:
    built = Cluster(tmp_path, postgres_url, redis_target).setup()
    try:
        yield built
    finally:
        built.stop()


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                 timeout=aiohttp.ClientTimeout(total=30))


@pytest.mark.asyncio
async def test_three_instances_deliver_every_event_in_one_order(cluster: Cluster) -> None:
    nodes = [cluster.start() for _ in range(3)]
    async with session() as http:
        followers = [Follower(cluster.live_url(n), cluster.token).start(http) for n in nodes]
        for follower in followers:
            await follower.wait_for(lambda f: "connected" in f.kinds)
        counter = itertools.count()

        async def client(k: int) -> None:  # 10 clients, each spreading its posts over the 3
            for i in range(100):
                node = nodes[(k + i) % 3]
                assert await post(http, node, cluster.website_id,
                                  f"/c{k}/{i}-{next(counter)}") is not None

        await asyncio.gather(*(client(k) for k in range(10)))
        for follower in followers:
            await follower.wait_for(lambda f: len(f.ids) >= 1000)
        rows = stored(cluster.database_url, cluster.website_id)
        assert [seq for seq, _ in rows] == list(range(1, 1001))
        for follower in followers:
            assert follower.ids == list(range(1, 1001))
            paths = [data["pathname"] for kind, _, data in follower.frames if kind == "new_event"]
            assert paths == [pathname for _, pathname in rows]
        for follower in followers:
            await follower.close()


@pytest.mark.asyncio
async def test_a_publish_dropped_after_commit_still_reaches_every_subscriber(
        tmp_path: Path, postgres_url: str, redis_target: RedisTarget) -> None:
    cluster = Cluster(tmp_path, postgres_url, redis_target,
                      env={"PULSE_FAULT_DROP_PUBLISH": "/lost"}).setup()
    try:
        nodes = [cluster.start() for _ in range(2)]
        async with session() as http:
            followers = [Follower(cluster.live_url(n), cluster.token).start(http) for n in nodes]
            for follower in followers:
                await follower.wait_for(lambda f: "connected" in f.kinds)
            assert await post(http, nodes[0], cluster.website_id, "/before") == 1
            for follower in followers:
                await follower.wait_for(lambda f: f.ids == [1])
            posted = time.monotonic()
            assert await post(http, nodes[0], cluster.website_id, "/lost/1") == 2
            latencies = []
            for follower in followers:
                await follower.wait_for(lambda f: f.ids == [1, 2])
                latencies.append(time.monotonic() - posted)
            print(f"a dropped publish reached the subscribers after {latencies} s")
            assert await post(http, nodes[1], cluster.website_id, "/after") == 3
            for follower in followers:
                await follower.wait_for(lambda f: f.ids == [1, 2, 3])
                await follower.close()
            for node in nodes:  # each instance read the lost event from the store
                async with http.get(node.url + "/metrics") as response:
                    assert "\npulse_hub_refills 1.0\n" in await response.text()
        assert "fault hook: dropped the publish of 1 events" in nodes[0].output()
    finally:
        cluster.stop()


@pytest.mark.asyncio
async def test_redis_emptied_mid_stream_loses_and_repeats_nothing(cluster: Cluster) -> None:
    assert cluster.redis is not None
    nodes = [cluster.start() for _ in range(2)]
    async with session() as http:
        followers = [Follower(cluster.live_url(n), cluster.token).start(http) for n in nodes]
        for follower in followers:
            await follower.wait_for(lambda f: "connected" in f.kinds)
        for i in range(50):
            assert await post(http, nodes[i % 2], cluster.website_id, f"/a/{i}") is not None
        for follower in followers:
            await follower.wait_for(lambda f: len(f.ids) >= 50)
        delete_redis_prefix(cluster.redis.url, cluster.redis.prefix)  # as a restart would
        for i in range(50):
            assert await post(http, nodes[i % 2], cluster.website_id, f"/b/{i}") is not None
        for follower in followers:
            await follower.wait_for(lambda f: len(f.ids) >= 100)
        await asyncio.sleep(1.5)  # a periodic check passes: anything repeated would be here
        assert await post(http, nodes[0], cluster.website_id, "/marker") == 101
        for follower in followers:
            await follower.wait_for(lambda f: len(f.ids) >= 101)
            assert follower.ids == list(range(1, 102))
            await follower.close()


@pytest.mark.asyncio
async def test_sigkill_while_ingesting_loses_no_acknowledged_event(cluster: Cluster) -> None:
    nodes = [cluster.start() for _ in range(3)]
    acknowledged: list[str] = []
    async with session() as http:
        followers = [Follower(cluster.live_url(n), cluster.token).start(http)
                     for n in nodes[1:]]
        for follower in followers:
            await follower.wait_for(lambda f: "connected" in f.kinds)
        killed = asyncio.Event()

        async def client(k: int) -> None:
            for i in range(60):
                node = nodes[(k + i) % 3]
                pathname = f"/k{k}/{i}"
                if await post(http, node, cluster.website_id, pathname) is not None:
                    acknowledged.append(pathname)
                if k == 0 and i == 20:
                    nodes[0].proc.send_signal(signal.SIGKILL)
                    killed.set()

        await asyncio.gather(*(client(k) for k in range(6)))
        assert killed.is_set() and nodes[0].proc.wait(10) == -signal.SIGKILL
        rows = stored(cluster.database_url, cluster.website_id)
        paths = [pathname for _, pathname in rows]
        assert len(paths) == len(set(paths))  # stored once
        assert set(acknowledged) <= set(paths)  # every 202 is stored
        assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1))
        for follower in followers:
            await follower.wait_for(lambda f: len(f.ids) >= len(rows))
            assert follower.ids == list(range(1, len(rows) + 1))
            await follower.close()


@pytest.mark.asyncio
async def test_reconnecting_to_another_instance_gets_exactly_the_rest(cluster: Cluster) -> None:
    nodes = [cluster.start() for _ in range(2)]
    async with session() as http:
        for i in range(30):
            assert await post(http, nodes[0], cluster.website_id, f"/p/{i}") == i + 1
        # The live window is the same on every instance.
        states = []
        for node in nodes:
            fresh = Follower(cluster.live_url(node), cluster.token).start(http)
            await fresh.wait_for(lambda f: "connected" in f.kinds)
            states.append(fresh.frames[0][2])
            await fresh.close()
        assert states[0] == states[1]
        assert states[0]["currentVisitors"] == 1 and len(states[0]["recentEvents"]) == 20
        follower = Follower(cluster.live_url(nodes[1]), cluster.token, last_event_id=12)
        follower.start(http)
        await follower.wait_for(lambda f: len(f.ids) >= 18)
        assert await post(http, nodes[0], cluster.website_id, "/live") == 31
        await follower.wait_for(lambda f: len(f.ids) >= 19)
        assert follower.kinds[0] == "connected"
        assert follower.ids == list(range(13, 32))
        await follower.close()


@pytest.mark.asyncio
async def test_ids_no_instance_can_honour_get_a_reset_then_live_events(
        tmp_path: Path, postgres_url: str, redis_target: RedisTarget) -> None:
    cluster = Cluster(tmp_path, postgres_url, redis_target,
                      env={"PULSE_REPLAY_LIMIT": "10"}).setup()
    try:
        nodes = [cluster.start() for _ in range(2)]
        async with session() as http:
            watcher = Follower(cluster.live_url(nodes[1]), cluster.token).start(http)
            await watcher.wait_for(lambda f: "connected" in f.kinds)
            for i in range(30):
                assert await post(http, nodes[0], cluster.website_id, f"/p/{i}") == i + 1
            await watcher.wait_for(lambda f: len(f.ids) >= 30)  # instance 1 has them all
            future = Follower(cluster.live_url(nodes[1]), cluster.token, last_event_id=10**9)
            old = Follower(cluster.live_url(nodes[1]), cluster.token, last_event_id=2)
            for follower in (future.start(http), old.start(http)):
                await follower.wait_for(lambda f: "reset" in f.kinds)
            assert await post(http, nodes[0], cluster.website_id, "/live") == 31
            for follower in (future, old):
                await follower.wait_for(lambda f: f.ids == [31])
                assert follower.kinds == ["reset", "new_event"]
                await follower.close()
    finally:
        cluster.stop()
