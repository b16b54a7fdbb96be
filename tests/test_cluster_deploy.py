"""The cluster deployment example: docker-compose.cluster.yml wires nginx, two Pulse instances,
PostgreSQL and Redis; nginx's configuration is valid, streams SSE unbuffered and keeps the panel
sticky."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.real_services import services_required

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.cluster.yml"
NGINX_CONF = ROOT / "deploy" / "nginx-cluster.conf"


def location(conf: str, path: str) -> str:
    found = re.search(r"location " + re.escape(path) + r" \{(.*?)\n    \}", conf, re.S)
    assert found, f"no location {path}"
    return found.group(1)


def test_the_compose_file_runs_two_instances_on_postgresql_and_redis() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == {"nginx", "pulse-a", "pulse-b", "postgres", "redis"}
    for name in ("pulse-a", "pulse-b"):
        env = services[name]["environment"]
        assert env["PULSE_DATABASE_URL"].startswith("postgresql://")
        assert env["PULSE_REDIS_URL"] == "redis://redis:6379/0"
        assert "PULSE_SECRET" in env  # one secret for every instance
        assert "ports" not in services[name]  # only nginx is published
    assert services["nginx"]["ports"] == ["8000:80"]
    assert "./deploy/nginx-cluster.conf:/etc/nginx/conf.d/default.conf:ro" in \
        services["nginx"]["volumes"]


def test_nginx_streams_sse_unbuffered_and_keeps_the_panel_sticky() -> None:
    conf = NGINX_CONF.read_text()
    live = location(conf, "= /admin/analytics/live")
    assert "proxy_buffering off;" in live and "proxy_pass http://pulse_any;" in live
    panel = location(conf, "/")
    assert "proxy_pass http://pulse_panel;" in panel and "Upgrade $http_upgrade" in panel
    sticky = re.search(r"upstream pulse_panel \{(.*?)\}", conf, re.S)
    assert sticky and "hash $remote_addr consistent;" in sticky.group(1)


def test_the_nginx_configuration_is_valid(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if nginx is None:
        if services_required():
            pytest.fail("nginx is not installed (apt-get install nginx)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    # The compose service names resolve only inside compose's network.
    site = NGINX_CONF.read_text().replace("pulse-a:8000", "127.0.0.1:8001") \
        .replace("pulse-b:8000", "127.0.0.1:8002")
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n")
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "err.log"),
                             "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
