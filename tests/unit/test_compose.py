"""The production stack (compose/) agrees with the code: commands, settings, ports, metrics.

No Docker engine runs here, so this checks what can be checked without one.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import api.metrics
import connectors.metrics
import pipeline.metrics
from api.settings import ApiSettings
from connectors.settings import ConnectorSettings
from pipeline.settings import HistorySettings, WorkerSettings
from rates.cli import build_parser
from rates.settings import StackSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
IMAGES_OF_OTHERS = {"kafka", "postgres", "nginx", "prometheus", "grafana"}


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    return loaded


def app_services(stack: dict[str, Any]) -> dict[str, Any]:
    return {n: s for n, s in stack["services"].items() if n not in IMAGES_OF_OTHERS}


def test_every_app_service_runs_a_real_rates_command(stack: dict[str, Any]) -> None:
    services = app_services(stack)
    assert {"migrate", "connect", "worker", "history", "api"} <= set(services)
    for name, service in services.items():
        args = build_parser().parse_args(service["command"])
        assert args.command == name


def test_app_environment_names_real_settings(stack: dict[str, Any]) -> None:
    known = {name.upper() for name in StackSettings.model_fields}
    for service in app_services(stack).values():
        assert set(service["environment"]) <= known, set(service["environment"]) - known
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    for name in re.findall(r"\b([A-Z_]+)=", dockerfile.split("ENV RATES_STATE_DIR", 1)[1]):
        assert name in known | {"RATES_STATE_DIR"}, name


def test_the_image_holds_every_package_and_the_migrations() -> None:
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    for package in [*packages, "migrations"]:
        assert f"COPY {package} {package}" in dockerfile, package


def test_prometheus_scrapes_each_process_on_its_port() -> None:
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    expected = {
        "connect": ConnectorSettings.model_fields["connector_metrics_port"].default,
        "worker": WorkerSettings.model_fields["worker_metrics_port"].default,
        "history": HistorySettings.model_fields["history_metrics_port"].default,
        "api": ApiSettings.model_fields["api_port"].default,
    }
    for job, port in expected.items():
        text = json.dumps(jobs[job])
        assert f"{job}:{port}" in text or f'"port": {port}' in text, job
    nginx = (COMPOSE / "nginx.conf").read_text()
    assert f"server api:{expected['api']};" in nginx


def declared_metrics() -> set[str]:
    assert api.metrics and connectors.metrics and pipeline.metrics  # imported: registered
    names = set()
    for family in REGISTRY.collect():
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
        }.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


def test_the_dashboard_uses_only_declared_metrics() -> None:
    dashboard = json.loads((COMPOSE / "grafana" / "dashboards" / "currency-pairs.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    used = {name for expr in exprs for name in re.findall(r"\brates_[a-z_]+", expr)}
    assert used, exprs
    assert used <= declared_metrics(), used - declared_metrics()
