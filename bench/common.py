"""Shared pieces of the benchmarks: a Pulse subprocess, an nginx+nchan subprocess, wrk, RSS.

Everything listens on 127.0.0.1 with free ports, lives in a temporary directory and is
stopped on exit; every wait has a timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/124.0.0.0 Safari/537.36")
PASSWORD = "bench-password-123"
EMAIL = "bench@example.com"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_nofile(wanted: int = 20_000) -> int:
    """Raise this process's open-file limit towards ``wanted``; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine_facts() -> dict[str, Any]:
    """Date, cores, CPU model, kernel, Python: what RESULTS.md records with every figure."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg()[0],
    }


def cpus() -> tuple[str | None, str | None]:
    """The core for servers and the core for load generators (the last one); none with
    BENCH_PIN=0."""
    if os.environ.get("BENCH_PIN") == "0":
        return None, None
    n = os.cpu_count() or 1
    return ("0", str(n - 1)) if n > 1 else ("0", "0")


def taskset(cpu: str | None) -> list[str]:
    """A ``taskset -c`` prefix, or nothing if taskset is missing or no core is asked for."""
    if cpu is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", cpu]


def rss_kb(pid: int) -> int:
    """Resident set size of a process, in KiB (VmRSS from /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def machine_ticks(core: str | None = None) -> tuple[int, int]:
    """(busy, total) CPU ticks so far of the whole machine, or of one core ("0"), from
    /proc/stat."""
    name = "cpu" if core is None else f"cpu{core}"
    with open("/proc/stat") as stat:
        fields = next([int(v) for v in line.split()[1:]] for line in stat
                      if line.split()[0] == name)
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def machine_busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the cores busy between two ``machine_ticks()`` readings (0–1)."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


def children(pid: int) -> list[int]:
    """Direct children of a process (nginx's workers)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(OSError):
        return [int(p) for p in path.read_text().split()]
    return []


def median(values: Sequence[float]) -> float:
    """The median (0 for no values)."""
    return statistics.median(values) if values else 0.0


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile by nearest rank of an unsorted sequence (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(pct / 100 * len(ordered) + 0.5)) - 1))
    return float(ordered[k])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[Any] | None = None) -> None:
    """Wait until ``url`` answers at all (any status), or raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# -- Pulse -------------------------------------------------------------------------------------

@dataclass
class Pulse:
    """A running Pulse server: its process, port, a website id and an API token."""

    proc: subprocess.Popen[bytes]
    port: int
    website_id: str
    token: str
    data_dir: Path

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def live_path(self) -> str:
        """The SSE path of the website."""
        return f"/admin/analytics/live?website_id={self.website_id}"

    def rss_kb(self) -> int:
        """The server's resident set size."""
        return rss_kb(self.proc.pid)

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far."""
        return cpu_seconds(self.proc.pid)


def pulse_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a benchmarked Pulse: loopback, rate limits off, quiet logs."""
    env = dict(os.environ)
    env.update({
        "PULSE_DATA_DIR": str(data_dir), "PULSE_PORT": str(port), "PULSE_HOST": "127.0.0.1",
        "PULSE_RATE_PER_IP": "0", "PULSE_RATE_PER_WEBSITE": "0", "PULSE_LOG_LEVEL": "WARNING",
        "PULSE_SSE_MAX_PER_USER": "100000", "PULSE_SECRET": "bench-secret-" + "x" * 32,
    })
    env.update(extra)
    return env


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([PYTHON, str(ROOT / "app.py"), *args], env=env, input=stdin,
                         capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"app.py {args[0]} failed: {out.stderr.strip()}")
    return out.stdout.strip()


@contextlib.contextmanager
def pulse_server(cpu: str | None = None, **extra_env: str) -> Iterator[Pulse]:
    """Start ``app.py serve`` on a free port with a fresh data dir, a user, website and token."""
    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        data_dir = Path(tmp)
        port = free_port()
        env = pulse_env(data_dir, port, **extra_env)
        _cli(env, "create-user", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
        website_id = _cli(env, "create-website", "bench.example.com").splitlines()[-1]
        token = _cli(env, "create-token", EMAIL, "--name", "bench").splitlines()[-1]
        proc = subprocess.Popen(
            [*taskset(cpu), PYTHON, str(ROOT / "app.py"), "serve"], env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=open(data_dir / "server.log", "wb"),
            preexec_fn=lambda: raise_nofile(20_000))
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", 60, proc)
            yield Pulse(proc, port, website_id, token, data_dir)
        finally:
            stop_process(proc)
            log = (data_dir / "server.log").read_text(errors="replace")
            errors = [line for line in log.splitlines() if " ERROR " in line]
            if errors:
                print(f"  [pulse log: {len(errors)} ERROR lines, first: {errors[0][:200]}]",
                      file=sys.stderr)


@contextlib.contextmanager
def py_spy(pid: int, out: Path | None) -> Iterator[None]:
    """Sample ``pid`` with py-spy into ``out`` (collapsed stacks) while the block runs."""
    if out is None or shutil.which("py-spy", path=str(Path(PYTHON).parent)) is None:
        yield
        return
    spy = subprocess.Popen([str(Path(PYTHON).parent / "py-spy"), "record", "--pid", str(pid),
                            "--format", "raw", "--rate", "200", "--nonblocking", "-o", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()


def top_frames(collapsed: Path, n: int = 15) -> list[tuple[str, float]]:
    """The functions with the most self time (share of samples) in a py-spy raw profile."""
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        leaf = re.sub(r":\d+\)$", ")", stack.split(";")[-1])  # one row per function
        own[leaf] = own.get(leaf, 0) + int(count)
        total += int(count)
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:n]
    return [(name, count / total) for name, count in ranked] if total else []


# -- nginx + nchan -----------------------------------------------------------------------------

NCHAN_CONF = """
load_module {module};
worker_processes 1;
worker_rlimit_nofile 40000;
error_log {tmp}/error.log warn;
events {{ worker_connections 30000; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    nchan_max_reserved_memory 256M;
    server {{
        listen 127.0.0.1:{port};
        location = /pub {{
            nchan_publisher;
            nchan_channel_id $arg_id;
            nchan_message_buffer_length 2000;
            nchan_message_timeout 5m;
        }}
        location = /sub {{
            nchan_subscriber eventsource;
            nchan_channel_id $arg_id;
        }}
    }}
}}
"""


@dataclass
class Nchan:
    """A running nginx with nchan: its master process and port."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def rss_kb(self) -> int:
        """Master plus workers' resident set size."""
        return rss_kb(self.proc.pid) + sum(rss_kb(c) for c in children(self.proc.pid))

    def cpu_seconds(self) -> float:
        """CPU time master and workers have used so far."""
        return cpu_seconds(self.proc.pid) + sum(cpu_seconds(c) for c in children(self.proc.pid))


def nchan_available() -> bool:
    """Whether nginx and the nchan module are installed."""
    return shutil.which("nginx") is not None and Path(NCHAN_MODULE).exists()


@contextlib.contextmanager
def nchan_server(cpu: str | None = None) -> Iterator[Nchan]:
    """nginx (one worker) with an nchan publisher at /pub?id= and SSE subscribers at /sub?id=."""
    with tempfile.TemporaryDirectory(prefix="nchan-bench-") as tmp:
        port = free_port()
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NCHAN_CONF.format(module=NCHAN_MODULE, tmp=tmp, port=port))
        (Path(tmp) / "tmp").mkdir()
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        proc = subprocess.Popen(
            [*taskset(cpu), nginx, "-p", tmp, "-c", str(conf), "-e", f"{tmp}/error.log",
             "-g", f"daemon off; pid {tmp}/tmp/nginx.pid;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: raise_nofile(40_000))
        try:
            wait_http(f"http://127.0.0.1:{port}/pub?id=warmup", 20, proc)
            yield Nchan(proc, port)
        finally:
            stop_process(proc)


# -- wrk ---------------------------------------------------------------------------------------

@dataclass
class WrkResult:
    """What one wrk run measured."""

    requests: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    non_2xx: int = 0
    socket_errors: int = 0
    raw: str = field(default="", repr=False)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(out: str) -> WrkResult:
    """Parse ``wrk --latency`` output."""
    result = WrkResult(raw=out)
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        result.rps = float(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        result.requests = int(m.group(1))
    if m := re.search(r"^\s+50%\s+(\S+)", out, re.M):
        result.p50_ms = _ms(m.group(1))
    if m := re.search(r"^\s+99%\s+(\S+)", out, re.M):
        result.p99_ms = _ms(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        result.non_2xx = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result.socket_errors = sum(int(g) for g in m.groups())
    return result


def run_wrk(url: str, script: Path, *, connections: int, seconds: float, threads: int = 2,
            cpu: str | None = None, env: dict[str, str] | None = None) -> WrkResult:
    """Run wrk against ``url`` with a Lua script, bounded by ``seconds`` (+ a safety margin)."""
    cmd = [*taskset(cpu), "wrk", "-t", str(threads), "-c", str(connections),
           "-d", f"{max(1, round(seconds))}s", "--timeout", "5s", "--latency", "-s", str(script),
           url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30,
                         env={**os.environ, **(env or {})}, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr.strip()}")
    return parse_wrk(out.stdout)


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Keep a run's raw figures in bench/results/NAME.json (or $BENCH_RESULTS_DIR)."""
    out = Path(os.environ.get("BENCH_RESULTS_DIR") or BENCH / "results")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def report(name: str, args: argparse.Namespace, facts: dict[str, Any],
           rounds: list[dict[str, Any]], summary: dict[str, Any]) -> int:
    """Keep a scenario's raw figures (machine, command, every round) and print its summary."""
    payload = {"scenario": name, "machine": facts, "command": " ".join(sys.argv),
               "args": vars(args), "rounds": rounds, "summary": summary}
    path = write_json(name, payload)
    print(json.dumps(summary, indent=2))
    print(f"raw figures: {path}")
    return 0
