"""The benchmark scripts keep working: each runs in a tiny smoke mode (seconds, a handful of
clients) and its JSON has the figures RESULTS.md quotes. Nothing here asserts a speed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.common import nchan_available, parse_wrk
from bench.sse_load import PLAIN_PATTERN, PULSE_PATTERN, SubscriberProtocol, Totals
from tests.required_tools import require_tool

ROOT = Path(__file__).resolve().parent.parent


def run_bench(tmp_path: Path, script: str, *args: str, timeout: float = 180) -> dict[str, Any]:
    """Run bench/SCRIPT with ARGS; return the JSON it kept."""
    env = {**os.environ, "BENCH_RESULTS_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--name", "smoke"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                         check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return json.loads((tmp_path / "smoke.json").read_text())


def feed(protocol: SubscriberProtocol, *chunks: bytes) -> None:
    for chunk in chunks:
        protocol.data_received(chunk)


def test_the_subscriber_parses_frames_split_anywhere() -> None:
    totals = Totals()
    protocol = SubscriberProtocol(b"", totals, PULSE_PATTERN)
    frame = (b'id: %d\ndata: {"type":"new_event","data":{"id":%d,"props":{"sq":%d,"st":1}}}\n\n')
    body = b"retry: 3000\n\n" + b"".join(frame % (i, i, i) for i in (5, 6, 4))
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
    stream = head + body
    feed(protocol, stream[:20], stream[20:77], stream[77:140], stream[140:])
    assert totals.connected == 1
    assert protocol.count == 3 and totals.messages == 3
    assert totals.out_of_order == 1  # 4 after 6
    assert len(totals.latencies_us) == 3


def test_the_subscriber_reads_nchan_ids_and_skips_stats_frames() -> None:
    totals = Totals()
    protocol = SubscriberProtocol(b"", totals, PLAIN_PATTERN)
    feed(protocol, b"HTTP/1.1 200 OK\r\n\r\n: hi\n\n",
         b'id: 17:9\ndata: {"props":{"sq":0,"st":1}}\n\n',
         b'id: 18:0\ndata: {"props":{"sq":1,"st":2}}\n\n')
    assert protocol.count == 2 and totals.out_of_order == 0
    pulse = SubscriberProtocol(b"", Totals(), PULSE_PATTERN)
    feed(pulse, b"HTTP/1.1 200 OK\r\n\r\n",
         b'data: {"type":"stats","data":{"recentEvents":[{"props":{"sq":1,"st":2}}]}}\n\n')
    assert pulse.count == 0


def test_parse_wrk_reads_rate_latency_and_errors() -> None:
    out = """Running 10s test @ http://127.0.0.1:1/web/analytics/track
  Latency Distribution
     50%    7.43ms
     99%   21.50ms
  31234 requests in 10.01s, 4.1MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   3120.41
"""
    result = parse_wrk(out)
    assert (result.rps, result.p50_ms, result.p99_ms) == (3120.41, 7.43, 21.5)
    assert (result.requests, result.non_2xx, result.socket_errors) == (31234, 4, 3)


@pytest.mark.slow
def test_b5_window_smoke(tmp_path: Path) -> None:
    data = run_bench(tmp_path, "b5_window.py", "--rounds", "1", "--events", "2000",
                     "--sizes", "100,1000")
    assert set(data["summary"]) == {"100", "1000"}
    assert data["summary"]["1000"]["add_us"] > 0 and data["summary"]["1000"]["stats_ms"] > 0
    assert data["machine"]["nproc"] >= 1


@pytest.mark.slow
def test_b8_reports_smoke(tmp_path: Path) -> None:
    data = run_bench(tmp_path, "b8_reports.py", "--events", "20000", "--days", "10",
                     "--rounds", "1", "--repeat", "1", "--db", str(tmp_path / "b8.db"))
    summary = data["summary"]
    assert summary["events"] > 10_000 and summary["rollup_days"] >= 9
    assert summary["engine_ms"] > 0 and summary["plain_group_by_ms"] > 0
    assert summary["page_filter_ms"] > 0 and summary["store"] == "sqlite"


@pytest.mark.slow
def test_b8_visits_ingest_smoke(tmp_path: Path) -> None:
    data = run_bench(tmp_path, "b8_visits_ingest.py", "--rounds", "1", "--events", "1000")
    summary = data["summary"]
    assert summary["each_eps"] > 0 and summary["gathered_eps"] > 0 and summary["baseline_eps"] > 0


@pytest.mark.slow
def test_b1_ingest_smoke(tmp_path: Path) -> None:
    require_tool(shutil.which("wrk") is not None, "wrk is missing (make tools)")
    data = run_bench(tmp_path, "b1_ingest.py", "--rounds", "1", "--seconds", "2",
                     "--warmup", "1", "--connections", "4", "--subscribers", "3")
    baseline, pulse = data["rounds"][0]["baseline"], data["rounds"][0]["pulse"]
    assert baseline["requests"] > 0 and baseline["non_2xx"] == 0  # wrk and the Lua body work
    assert pulse["non_2xx"] == 0  # Pulse accepts what post_event.lua sends (no 400)
    assert pulse["subscribers"]["connected"] == 3
    assert pulse["server_cpu_us_per_request"] > 0
    assert 0 < pulse["server_core_busy"] <= 1 and 0 < pulse["load_core_busy"] <= 1
    assert "ratio_median" in data["summary"]


@pytest.mark.slow
def test_b2_fanout_smoke(tmp_path: Path) -> None:
    require_tool(nchan_available(), "nginx with nchan is missing (make tools)")
    data = run_bench(tmp_path, "b2_fanout.py", "--rounds", "1", "--subscribers", "4",
                     "--sample", "2", "--rate", "20", "--seconds", "1", "--drain", "5")
    for target in ("pulse", "nchan"):
        run = data["rounds"][0][target]
        assert run["connected"] == 4, run
        assert run["delivered"] == run["expected"] == 4 * 20, run
        assert run["out_of_order"] == 0


@pytest.mark.slow
def test_b3_idle_smoke(tmp_path: Path) -> None:
    require_tool(nchan_available(), "nginx with nchan is missing (make tools)")
    data = run_bench(tmp_path, "b3_idle.py", "--rounds", "1", "--streams", "30",
                     "--seconds", "1")
    for target in ("pulse", "nchan"):
        run = data["rounds"][0][target]
        assert run["connected"] == 30 and run["closed_early"] == 0, run
        assert run["rss_end_kb"] > 0


@pytest.mark.slow
def test_b9_pg_writer_smoke(tmp_path: Path, postgres_url: str,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.real_services import POSTGRES_ADMIN_URL
    monkeypatch.setenv("PULSE_BENCH_POSTGRES_URL", POSTGRES_ADMIN_URL)  # makes its own database
    data = run_bench(tmp_path, "b9_pg_writer.py", "--rounds", "1", "--events", "10",
                     "--sizes", "1,20")
    assert set(data["summary"]) == {"1", "20"}
    for size in ("1", "20"):
        assert data["summary"][size]["fastest"] in ("multirow", "executemany", "copy", "unnest")
        assert data["summary"][size]["pulse"]["events_per_s"] > 0
    assert data["machine"]["postgresql"]


def test_b7_cross_instance_smoke(tmp_path: Path, postgres_url: str,
                                 redis_target: Any) -> None:
    data = run_bench(tmp_path, "b7_cross_instance.py", "--rounds", "1", "--subscribers", "3",
                     "--rate", "20", "--seconds", "1", "--drain", "5")
    for mode in ("single", "cluster"):
        run = data["rounds"][0][mode]
        assert run["connected"] == 3, run
        assert run["delivered"] == run["expected"] == 3 * 20, run
        assert run["out_of_order"] == 0
    assert "p99_extra_ms_median" in data["summary"]


@pytest.mark.slow
def test_b6_workers_smoke(tmp_path: Path, postgres_url: str, redis_target: Any) -> None:
    data = run_bench(tmp_path, "b6_workers.py", "--rounds", "1", "--seconds", "1",
                     "--warmup", "1", "--connections", "4", "--subscribers", "3")
    row = data["rounds"][0]
    for key in ("w1", "w2", "sqlite"):
        assert row[key]["requests"] > 0 and row[key]["non_2xx"] == 0, row[key]
        assert row[key]["subscribers"]["connected"] == 3
        assert 0 < row[key]["machine_busy"] <= 1
    assert "ratio_median" in data["summary"]


def test_b10_counters_smoke(tmp_path: Path) -> None:
    data = run_bench(tmp_path, "b10_counters.py", "--streams", "20", "--seconds", "3")
    run = data["rounds"][0]
    assert run["connected"] == 20 and run["closed_early"] == 0, run
    assert run["frames_per_stream_min"] == run["frames_per_stream_max"] >= 2, run
    assert run["non_202"] == 0


@pytest.mark.slow
def test_b11_alert_latency_smoke(tmp_path: Path) -> None:
    data = run_bench(tmp_path, "b11_alert_latency.py", "--rounds", "2", "--threshold", "2")
    assert data["summary"]["rounds"] == 2 and data["summary"]["all_signed"] is True
