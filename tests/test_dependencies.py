"""Dependencies: every package Pulse imports is declared with an upper bound, the linters are
pinned exactly, and the lock files pin every declared package (`make lock` after a change)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SOURCES = [ROOT / "app.py", *(path for folder in ("backend", "models", "ui")
                              for path in (ROOT / folder).rglob("*.py"))]
OWN = {"app", "backend", "models", "ui"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0])


def declared(requirements: list[str]) -> dict[str, str]:
    return {requirement_name(r): r for r in requirements}


def imported_top_level_modules() -> set[str]:
    modules = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - OWN - set(sys.stdlib_module_names) - {"__future__"}


def locked(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            pins[canonical(match[1])] = match[2]
    return pins


def test_every_imported_package_is_declared() -> None:
    runtime = declared(PROJECT["dependencies"])
    distributions = packages_distributions()
    for module in sorted(imported_top_level_modules()):
        names = {canonical(d) for d in distributions.get(module, [])}
        assert names & set(runtime), f"{module} is imported but none of {names} is declared"


def test_every_dependency_has_an_upper_bound() -> None:
    requirements = PROJECT["dependencies"] + [
        r for extra in PROJECT["optional-dependencies"].values() for r in extra]
    for requirement in requirements:
        assert "<" in requirement or "==" in requirement, f"{requirement}: no upper bound"


def test_the_linters_are_pinned_exactly() -> None:
    test = declared(PROJECT["optional-dependencies"]["test"])
    assert re.fullmatch(r"ruff==[0-9.]+", test["ruff"])
    assert re.fullmatch(r"mypy==[0-9.]+", test["mypy"])


def test_the_lock_files_pin_every_declared_package() -> None:
    runtime = locked("requirements.lock")
    development = locked("requirements-dev.lock")
    for name in declared(PROJECT["dependencies"]):
        assert name in runtime, f"{name} is not in requirements.lock: run make lock"
        assert name in development, f"{name} is not in requirements-dev.lock: run make lock"
    for name in declared(PROJECT["optional-dependencies"]["test"]):
        assert name in development, f"{name} is not in requirements-dev.lock: run make lock"
    for name, version in runtime.items():
        assert development.get(name) == version, f"{name}: the two lock files disagree"


def test_the_image_installs_from_the_lock_file() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY [^\n]*requirements\.lock", dockerfile, re.M)
    assert re.search(r"^RUN pip install [^\n]*-r requirements\.lock", dockerfile, re.M)
