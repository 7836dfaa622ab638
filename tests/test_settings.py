"""Invalid settings stop start-up with one clear line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from api.settings import Mode, SettingsError, load_settings


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("GUESTGRAPH_DATABASE_URL", "mysql://root@localhost/db", "GUESTGRAPH_DATABASE_URL"),
        ("GUESTGRAPH_REDIS_URL", "http://localhost:6379", "GUESTGRAPH_REDIS_URL"),
        ("GUESTGRAPH_LOG_LEVEL", "LOUD", "GUESTGRAPH_LOG_LEVEL"),
        ("GUESTGRAPH_MODE", "staging", "GUESTGRAPH_MODE"),
    ],
)
def test_an_invalid_setting_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(expected + ":")
    assert "\n" not in message


def test_settings_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUESTGRAPH_DATABASE_URL", "postgres://u:p@db:5432/gg")
    monkeypatch.setenv("GUESTGRAPH_MODE", "development")
    monkeypatch.setenv("GUESTGRAPH_LOG_LEVEL", "debug")
    monkeypatch.setenv("GUESTGRAPH_ALLOWED_ORIGINS", "https://a.example, https://b.example")
    settings = load_settings()
    assert settings.database_url == "postgresql://u:p@db:5432/gg"
    assert settings.mode is Mode.DEVELOPMENT
    assert settings.log_level.value == "DEBUG"
    assert settings.allowed_origins == ["https://a.example", "https://b.example"]


def test_production_is_the_default_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUESTGRAPH_MODE", raising=False)
    assert load_settings().mode is Mode.PRODUCTION


def test_serve_with_a_bad_setting_exits_with_one_line() -> None:
    env = {**os.environ, "GUESTGRAPH_DATABASE_URL": "not a url"}
    result = subprocess.run(
        [sys.executable, "-m", "api", "serve"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: GUESTGRAPH_DATABASE_URL: must be a postgresql:// URL"
    ]
