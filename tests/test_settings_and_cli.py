"""Settings from the environment, their documentation, and the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backend.settings import Settings, SettingsError, settings_help

ROOT = Path(__file__).resolve().parent.parent


def test_settings_read_from_pulse_variables(tmp_path: Path) -> None:
    settings = Settings.from_env({"PULSE_PORT": "9001", "PULSE_DATA_DIR": str(tmp_path),
                                  "PULSE_TRUST_PROXY": "yes", "PULSE_LIVE_WINDOW": "60"})
    assert (settings.port, settings.data_dir, settings.trust_proxy, settings.live_window) == (
        9001, tmp_path, True, 60.0)
    assert settings.database == f"sqlite:///{tmp_path / 'pulse.db'}"


@pytest.mark.parametrize("env", [{"PULSE_PORT": "eighty"}, {"PULSE_LIVE_WINDOW": "-1"},
                                 {"PULSE_TRUST_PROXY": "maybe"}])
def test_bad_settings_are_refused_with_the_variable_named(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, _default, help_text in settings_help():
        assert f"`{name}`" in readme, f"{name} is not in README.md"
        assert help_text in readme, f"{name}'s help differs from README.md"


def run_cli(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT,
                          env={"PULSE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})


@pytest.mark.slow  # runs the CLI in subprocesses
def test_cli_creates_user_website_and_token(tmp_path: Path) -> None:
    made = run_cli(tmp_path, "create-user", "Ada@Example.com", "--password-stdin",
                   stdin="a long password\n")
    assert made.returncode == 0, made.stderr
    assert "admin user ada@example.com" in made.stdout
    site = run_cli(tmp_path, "create-website", "https://www.example.com/", "--name", "Shop")
    assert site.returncode == 0, site.stderr
    assert len(site.stdout.strip()) == 36
    token = run_cli(tmp_path, "create-token", "ada@example.com")
    assert token.stdout.startswith("pulse_")


@pytest.mark.slow  # runs the CLI in subprocesses
@pytest.mark.parametrize(("args", "stdin", "message"), [
    (("create-user", "not-an-email", "--password-stdin"), "long enough pw\n", "not a valid email"),
    (("create-user", "b@example.com", "--password-stdin"), "short\n", "at least 8 characters"),
    (("create-website", "not a domain!"), "", "not a valid domain"),
    (("create-website", "example.com", "--origin", "ftp://x"), "", "not an origin"),
    (("create-website", "example.com", "--timezone", "Mars/Olympus"), "", "not a known time"),
    (("create-token", "nobody@example.com"), "", "no user with the email"),
])
def test_cli_bad_input_gets_a_readable_message(tmp_path: Path, args: tuple[str, ...], stdin: str,
                                               message: str) -> None:
    result = run_cli(tmp_path, *args, stdin=stdin)
    assert result.returncode == 2
    assert result.stderr.startswith("pulse: ") and message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # runs the CLI in a subprocess
def test_cli_bad_setting_is_reported(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "app.py"), "create-token", "x@y.z"],
                            capture_output=True, text=True, cwd=ROOT,
                            env={"PULSE_DATA_DIR": str(tmp_path), "PULSE_PORT": "nope"})
    assert result.returncode == 2
    assert "PULSE_PORT" in result.stderr
