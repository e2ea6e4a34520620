"""The production stack (compose.yaml, compose/) is valid and agrees with the code.

No Docker engine runs here (and no `docker compose`), so the files are checked statically:
against the Compose specification's JSON schema by check-jsonschema (which vendors it), and
against the code (commands, settings, ports, metrics). `make production-local` runs the same
nginx and Prometheus files for real (tests/integration/test_production.py).
"""

from __future__ import annotations

import json
import re
import tomllib
import warnings
from pathlib import Path
from typing import Any

import check_jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result
from prometheus_client import REGISTRY

import api.metrics
import connectors.metrics
import pipeline.metrics
from api.settings import ApiSettings
from connectors.settings import ConnectorSettings
from pipeline.settings import HistorySettings, WorkerSettings
from rates import envdoc, production
from rates.cli import build_parser
from rates.settings import ProductionSettings, StackSettings
from schemas.errors import ConfigError
from schemas.topics import Topics, topic_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
COMPOSE = ROOT / "compose"
DOCKERFILE = COMPOSE / "Dockerfile"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
APP_IMAGE = f"currency-pairs:{PROJECT['project']['version']}"
SCHEMA = "vendor.compose-spec"  # the Compose specification's schema, as check-jsonschema ships it


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def app_services(stack: dict[str, Any]) -> dict[str, Any]:
    return {n: s for n, s in stack["services"].items() if s.get("image") == APP_IMAGE}


def long_running(stack: dict[str, Any]) -> dict[str, Any]:
    return {n: s for n, s in stack["services"].items() if s.get("restart") != "no"}


# -- the Compose specification --------------------------------------------------------------------


def validate(path: Path) -> Result:
    """check-jsonschema's command line, run in this process."""
    with warnings.catch_warnings():
        # The schema names its draft "https://json-schema.org/draft-07/schema" (without the
        # "#"), which jsonschema does not recognise: it validates with its latest draft, and
        # warns (the command line does the same, its warning unseen).
        warnings.filterwarnings(
            "ignore", r"The metaschema specified by \$schema was not found", DeprecationWarning
        )
        return CliRunner().invoke(check_jsonschema.main, ["--builtin-schema", SCHEMA, str(path)])


def test_compose_yaml_follows_the_compose_specification() -> None:
    result = validate(COMPOSE_FILE)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("service", "change"),
    [
        ("api", {"healthchek": {"test": ["CMD", "true"]}}),
        ("nginx", {"depends_on": {"api": {"condition": "service_ready"}}}),
        ("worker", {"deploy": {"replica": 2}}),
    ],
)
def test_the_schema_check_refuses_a_broken_file(
    stack: dict[str, Any], tmp_path: Path, service: str, change: dict[str, Any]
) -> None:
    broken = json.loads(json.dumps(stack))
    broken["services"][service].update(change)
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = validate(path)
    assert result.exit_code == 1, result.output
    assert "Schema validation errors" in result.output


# -- the services and the code --------------------------------------------------------------------


def test_every_app_service_runs_a_real_rates_command(stack: dict[str, Any]) -> None:
    services = app_services(stack)
    assert {"migrate", "connect", "worker", "history", "api"} == set(services)
    for name, service in services.items():
        assert service["build"]["dockerfile"] == "compose/Dockerfile"
        args = build_parser().parse_args(service["command"])
        assert args.command == name


def test_every_long_running_service_has_a_healthcheck_that_checks_it(
    stack: dict[str, Any],
) -> None:
    for name, service in long_running(stack).items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
        if name in app_services(stack):
            # `rates healthcheck <the service's own command>`
            assert test[1] == "rates", name
            args = build_parser().parse_args(test[2:])
            assert (args.command, args.process) == ("healthcheck", name), name


def test_every_dependency_waits_for_a_condition(stack: dict[str, Any]) -> None:
    services = stack["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for other, rule in depends.items():
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "test" in services[other].get("healthcheck", {}), (name, other)
            else:
                assert condition == "service_completed_successfully", (name, other)
                assert services[other]["restart"] == "no", (name, other)
    # Nothing is reached before it is healthy.
    assert services["nginx"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert services["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"}}


def test_app_environment_names_real_settings(stack: dict[str, Any]) -> None:
    known = {name.upper() for name in StackSettings.model_fields}
    for service in app_services(stack).values():
        assert set(service["environment"]) <= known, set(service["environment"]) - known
    final_stage = DOCKERFILE.read_text().split("\nFROM ")[-1]
    for name in re.findall(r"\b([A-Z_]+)=", final_stage.split("USER rates", 1)[1]):
        assert name in known, name


def test_every_image_is_pinned_to_a_version(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image else "latest"
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?", tag), (name, image)
    assert {s["image"] for s in app_services(stack).values()} == {APP_IMAGE}
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1))


def test_secrets_come_from_the_environment_and_are_documented(stack: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text()
    secrets = envdoc.compose_secrets(text)
    assert secrets == ["POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"]
    services = stack["services"]

    def required(name: str) -> str:
        return rf"\$\{{{name}:\?[^}}]+\}}"

    postgres = services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert re.fullmatch(required("POSTGRES_PASSWORD"), postgres)
    grafana = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(required("GRAFANA_ADMIN_PASSWORD"), grafana)
    for service in app_services(stack).values():
        url = service["environment"]["DATABASE_URL"]
        pattern = rf"postgresql://rates:{required('POSTGRES_PASSWORD')}@postgres:5432/rates"
        assert re.fullmatch(pattern, url), url
    assert "GF_AUTH_ANONYMOUS_ENABLED" not in services["grafana"]["environment"]
    example = envdoc.ENV_EXAMPLE.read_text()
    for name in secrets:
        assert re.search(rf"^{name}=$", example, re.MULTILINE), name


def test_kafka_creates_no_topic_by_itself_and_producers_are_idempotent(
    stack: dict[str, Any],
) -> None:
    kafka = stack["services"]["kafka"]["environment"]
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for service in app_services(stack).values():
        assert service["environment"]["KAFKA_IDEMPOTENT"] == "true"
    topics = Topics()
    for name in (topics.latest, topics.venues_status):
        assert topic_config(name)["cleanup.policy"] == "compact", name
    for name in (topics.raw("binance"), topics.normalized):
        assert topic_config(name)["cleanup.policy"] == "delete", name
        assert int(topic_config(name)["retention.ms"]) > 0, name


def test_services_listen_where_nginx_and_prometheus_look(stack: dict[str, Any]) -> None:
    env = app_services(stack)["api"]["environment"]
    defaults = {
        "API_PORT": ApiSettings.model_fields["api_port"].default,
        "CONNECTOR_METRICS_PORT": ConnectorSettings.model_fields["connector_metrics_port"].default,
        "WORKER_METRICS_PORT": WorkerSettings.model_fields["worker_metrics_port"].default,
        "HISTORY_METRICS_PORT": HistorySettings.model_fields["history_metrics_port"].default,
    }
    assert {name: int(env[name]) for name in defaults} == defaults
    assert env["API_HOST"] == env["METRICS_HOST"] == "0.0.0.0"
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    expected = {
        "connect": defaults["CONNECTOR_METRICS_PORT"],
        "worker": defaults["WORKER_METRICS_PORT"],
        "history": defaults["HISTORY_METRICS_PORT"],
        "api": defaults["API_PORT"],
    }
    assert set(jobs) == set(expected) <= set(stack["services"])
    for job, port in expected.items():
        # Every replica of the service, found through Docker's DNS.
        assert jobs[job]["dns_sd_configs"] == [
            {"names": [job], "type": "A", "port": port, "refresh_interval": "10s"}
        ], job
    nginx = stack["services"]["nginx"]["environment"]
    assert f"server api:{defaults['API_PORT']} resolve max_fails=0;" in nginx["NGINX_API_SERVERS"]
    assert "resolver 127.0.0.11" in nginx["NGINX_API_SERVERS"]


def test_the_apis_are_replicated_and_published_where_production_local_serves(
    stack: dict[str, Any],
) -> None:
    services = stack["services"]
    assert services["api"]["deploy"]["replicas"] >= 2
    assert services["worker"]["deploy"]["replicas"] >= 2
    nginx = ProductionSettings.model_fields["production_nginx_port"].default
    prometheus = ProductionSettings.model_fields["production_prometheus_port"].default
    assert services["nginx"]["ports"] == [f"127.0.0.1:{nginx}:80"]
    assert services["prometheus"]["ports"] == [f"127.0.0.1:{prometheus}:9090"]
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port


# -- nginx: one template, filled in by compose and by production-local ---------------------------


def test_compose_fills_in_every_name_of_the_nginx_template(stack: dict[str, Any]) -> None:
    template = (COMPOSE / "nginx" / "default.conf.template").read_text()
    nginx = stack["services"]["nginx"]
    assert nginx["volumes"] == [
        "./compose/nginx/default.conf.template:/etc/nginx/templates/default.conf.template:ro"
    ]
    # `resolve` in an upstream (re-resolving the replicas) came with nginx 1.27.3.
    version = re.fullmatch(r"nginx:(\d+)\.(\d+)\.(\d+)-alpine", nginx["image"])
    assert version and tuple(map(int, version.groups())) >= (1, 27, 3), nginx["image"]
    site = production.fill_template(template, nginx["environment"])
    assert "${" not in site
    assert "listen 80;" in site
    assert "server api:8000 resolve max_fails=0;" in site


def test_the_nginx_site_caches_for_a_second_and_streams_unbuffered() -> None:
    template = (COMPOSE / "nginx" / "default.conf.template").read_text()
    site = production.fill_template(
        template,
        production.nginx_values("127.0.0.1:8080", Path("/c"), ["127.0.0.1:1", "127.0.0.1:2"]),
    )
    assert "server 127.0.0.1:1 max_fails=0;\n    server 127.0.0.1:2 max_fails=0;" in site
    cached = site.split("location /api/ {", 1)[1].split("}", 1)[0]
    assert "proxy_cache rates;" in cached
    assert "proxy_cache_valid 200 404 1s;" in cached
    assert "add_header X-Cache $upstream_cache_status always;" in cached
    stream = site.split("location = /api/v2/courses/stream {", 1)[1].split("}", 1)[0]
    assert "proxy_buffering off;" in stream
    assert "proxy_cache off;" in stream


def test_a_name_without_a_value_is_an_error() -> None:
    with pytest.raises(ConfigError, match="NGINX_LISTEN"):
        production.fill_template("listen ${NGINX_LISTEN}; proxy_pass $host;", {})
    assert production.fill_template("a ${X} $host", {"X": "1"}) == "a 1 $host"


# -- Prometheus: one file, its discovery replaced by production-local ----------------------------


def test_production_local_replaces_only_the_discovery() -> None:
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    targets = {
        "connect": ["127.0.0.1:1"],
        "worker": ["127.0.0.1:2", "127.0.0.1:3"],
        "history": ["127.0.0.1:4"],
        "api": ["127.0.0.1:5", "127.0.0.1:6"],
    }
    rendered = production.prometheus_config(config, targets)
    assert rendered["global"] == config["global"]
    for job, original in zip(rendered["scrape_configs"], config["scrape_configs"], strict=True):
        assert job["static_configs"] == [{"targets": targets[job["job_name"]]}]
        assert "dns_sd_configs" not in job
        kept = {k: v for k, v in original.items() if k != "dns_sd_configs"}
        assert {k: v for k, v in job.items() if k != "static_configs"} == kept
    assert "dns_sd_configs" in config["scrape_configs"][0]  # the original is untouched
    with pytest.raises(ConfigError, match="local topology runs"):
        production.prometheus_config(config, {"connect": ["127.0.0.1:1"]})


# -- the image ------------------------------------------------------------------------------------


def test_the_image_is_built_in_two_stages_and_runs_unprivileged() -> None:
    dockerfile = DOCKERFILE.read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]
    assert len(stages) == 2
    builder, final = stages
    assert builder.startswith("${PYTHON_IMAGE} AS builder")
    assert "pip wheel" in builder
    packages = [p.rstrip("*") for p in PROJECT["tool"]["setuptools"]["packages"]["find"]["include"]]
    assert "migrations" in packages  # the wheel carries them (rates/migrate.py reads them)
    for package in packages:
        assert f"COPY {package} {package}" in builder, package
    # The final stage installs the wheels, not editable, and brings no compiler.
    assert "--mount=type=bind,from=builder,source=/wheels" in final
    assert "pip install --no-cache-dir --no-index --find-links=/wheels currency-pairs" in final
    assert " -e " not in final and "--editable" not in final
    for compiler in ("build-essential", "gcc", "apt-get"):
        assert compiler not in final, compiler
    user = re.findall(r"^USER (\S+)$", final, re.MULTILINE)
    assert user == ["rates"]
    assert re.search(r'^HEALTHCHECK .*CMD \["rates", "healthcheck"\]$', final, re.MULTILINE)
    assert (ROOT / ".dockerignore").exists()


# -- Grafana --------------------------------------------------------------------------------------


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


# -- production-local: the same topology, as local processes --------------------------------------


def test_production_local_runs_every_process_of_the_topology_on_its_port() -> None:
    topology = production.Topology(
        nginx=8080, prometheus=9090, connector=1, history=2, workers=(3, 4), apis=(5, 6)
    )
    tools = production.Tools(nginx="/usr/sbin/nginx", prometheus="/usr/bin/prometheus")
    configs = (Path("/s/nginx/nginx.conf"), Path("/s/prometheus.yml"))
    specs = production.children(topology, tools, {"X": "1"}, configs, ("kafka",), ("postgres",))
    names = [spec.name for spec in specs]
    assert names == [
        *("connect", "worker1", "worker2", "history", "api1", "api2"),
        *("nginx", "prometheus"),
    ]
    ports = {
        spec.name: {k: v for k, v in (spec.env or {}).items() if k.endswith("PORT")}
        for spec in specs[:6]
    }
    assert ports == {
        "connect": {"CONNECTOR_METRICS_PORT": "1"},
        "worker1": {"WORKER_METRICS_PORT": "3"},
        "worker2": {"WORKER_METRICS_PORT": "4"},
        "history": {"HISTORY_METRICS_PORT": "2"},
        "api1": {"API_PORT": "5"},
        "api2": {"API_PORT": "6"},
    }
    for spec in specs[:6]:
        assert build_parser().parse_args(list(spec.argv[3:])).command == spec.argv[3]
    # The connector and the APIs outlive a restart of the broker; the workers and the
    # history writer restart with it.
    assert {spec.name: spec.depends_on for spec in specs[:6]} == {
        "connect": (),
        "worker1": ("kafka",),
        "worker2": ("kafka",),
        "history": ("kafka", "postgres"),
        "api1": (),
        "api2": (),
    }
    assert specs[6].argv == ("/usr/sbin/nginx", "-p", "/s/nginx", "-c", "/s/nginx/nginx.conf")
    assert "--web.listen-address=127.0.0.1:9090" in specs[7].argv
    assert "--config.file=/s/prometheus.yml" in specs[7].argv
    # Prometheus scrapes exactly these processes, by the job names of compose/prometheus.yml.
    assert topology.targets()["worker"] == ["127.0.0.1:3", "127.0.0.1:4"]
    assert [(c.process, c.port) for c in topology.checks()] == [
        ("connect", 1),
        ("worker", 3),
        ("worker", 4),
        ("history", 2),
        ("api", 5),
        ("api", 6),
    ]


def test_the_nginx_frame_keeps_every_file_of_a_run_in_its_directory() -> None:
    frame = production.nginx_main_config(Path("/s/nginx"), Path("/s/nginx/default.conf"))
    assert "daemon off;" in frame
    assert 'pid "/s/nginx/nginx.pid";' in frame
    assert 'include "/s/nginx/default.conf";' in frame
    paths = re.findall(r'_temp_path "([^"]+)"', frame)
    assert len(paths) == 5 and all(p.startswith("/s/nginx/tmp/") for p in paths)
