"""devtools' clean environment: every setting of the project removed, derived from the code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import Field

from devtools.environment import SETTINGS, clean_env, setting_names
from rates.settings import StackSettings
from schemas.settings import CommonSettings


def test_every_field_of_every_settings_class_is_a_setting_name() -> None:
    assert {name.upper() for name in StackSettings.model_fields} <= SETTINGS
    assert {"METRICS_HOST", "RATES_WORKERS", "API_PORT", "DATABASE_URL"} <= SETTINGS
    assert "PATH" not in SETTINGS


def test_a_new_settings_class_is_covered_without_a_list_to_keep() -> None:
    class ExtraSettings(CommonSettings):
        extra_thing_s: float = Field(default=1.0, description="for this test only")

    assert "EXTRA_THING_S" in setting_names()


def test_clean_env_drops_the_callers_settings_in_any_spelling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METRICS_HOST", "0.0.0.0")
    monkeypatch.setenv("rates_venues", "binance")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "elsewhere:9092")
    monkeypatch.setenv("CP_TEST_UNRELATED", "kept")
    env = clean_env(API_PORT="1234")
    assert "METRICS_HOST" not in env and "rates_venues" not in env
    assert "KAFKA_BOOTSTRAP_SERVERS" not in env
    assert env["CP_TEST_UNRELATED"] == "kept"
    assert env["API_PORT"] == "1234" and env["WORKER_METRICS_PORT"] == "0"
    assert env["LOG_LEVEL"] == "INFO" and env["PYTHONUNBUFFERED"] == "1"
    assert clean_env(LOG_LEVEL="WARNING")["LOG_LEVEL"] == "WARNING"


def test_tests_and_devtools_never_import_the_benchmarks() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [*root.glob("tests/**/*.py"), *root.glob("devtools/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            if any(name.split(".")[0] == "benchmarks" for name in names):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
