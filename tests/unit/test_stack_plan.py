"""The plan of ``rates up``: which children start, in which order, with what, per source."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from rates.plan import (
    RATES,
    SIMULATOR_PORTS,
    Addresses,
    Answers,
    BrokerUp,
    Child,
    Migrated,
    Plan,
    PortsWritten,
    Source,
    clashes,
    plan,
    ports,
)
from rates.settings import StackSettings
from schemas.settings import DEFAULT_DIRECTIONS

STATE = Path("/srv/rates")
EMBEDDED = Addresses(STATE, kafka_port=9100, postgres_port=9200)
VENUES = ["binance", "kraken"]
RECORDING = Path("/data/sample.jsonl.gz")


def settings(**changes: Any) -> StackSettings:
    """Settings as given here only, whatever the environment of the test run."""
    defaults: dict[str, Any] = {
        "kafka_bootstrap_servers": None,
        "database_url": None,
        "rates_workers": 1,
        "worker_metrics_port": 9300,
        "api_host": "127.0.0.1",
        "api_port": 8000,
        "rates_topic_prefix": "",
        "rates_partitions": 4,
        "kafka_connect_timeout_s": 30.0,
    }
    return StackSettings(**{**defaults, **changes})


def make(source: Source, **changes: Any) -> Plan:
    addresses = changes.pop("addresses", EMBEDDED)
    recording = RECORDING if source == "replay" else None
    speed = changes.pop("speed", 1.0)
    return plan(settings(**changes), source, VENUES, addresses, recording, speed)


def children(stack: Plan) -> dict[str, Child]:
    return {step.name: step for step in stack.steps if isinstance(step, Child)}


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("live", ["kafka", "postgres", "connect", "worker", "history", "api"]),
        ("simulator", ["kafka", "postgres", "simulator", "connect", "worker", "history", "api"]),
        ("replay", ["kafka", "postgres", "worker", "history", "api", "replay"]),
    ],
)
def test_children_start_in_order_for_each_source(source: Source, names: list[str]) -> None:
    stack = make(source)
    assert [step.name for step in stack.steps if isinstance(step, Child)] == names
    assert all(isinstance(step, Child) for step in stack.steps)  # nothing external to wait for
    assert stack.bootstrap == "127.0.0.1:9100"
    assert stack.database_url == "postgresql://postgres@127.0.0.1:9200/postgres"
    assert stack.api == "http://127.0.0.1:8000"


def test_the_embedded_services_and_what_depends_on_them() -> None:
    found = children(make("live"))
    kafka, postgres = found["kafka"], found["postgres"]
    assert kafka.argv[-6:] == (
        "--listener-url",
        "tcp://127.0.0.1:9100",
        "--advertised-listener-url",
        "tcp://127.0.0.1:9100",
        "--storage-engine",
        "memory://tansu/",
    )
    assert kafka.ready == BrokerUp(
        "127.0.0.1:9100",
        ("ticks.raw.binance", "ticks.raw.kraken", "rates.normalized", "rates.latest",
         "venues.status", "rates.reference"),
        4,
        20.0,
    )  # fmt: skip
    assert "KAFKA_BOOTSTRAP_SERVERS" not in kafka.env
    assert postgres.pgdata == STATE / "postgres" and postgres.stop_signal == signal.SIGINT
    assert postgres.ready == Migrated("postgresql://postgres@127.0.0.1:9200/postgres", 30.0)
    assert postgres.env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9100"
    assert "DATABASE_URL" not in postgres.env
    # The connector and the API outlive a restart (or a recycle) of the broker.
    assert {name: child.depends_on for name, child in found.items()} == {
        "kafka": (),
        "postgres": (),
        "connect": (),
        "worker": ("kafka",),
        "history": ("kafka", "postgres"),
        "api": (),
    }
    assert kafka.max_rss_bytes == StackSettings.model_fields["rates_broker_max_mb"].default << 20
    assert kafka.announce is not None and "RATES_BROKER_MAX_MB" in kafka.announce
    max_age_min = StackSettings.model_fields["rates_broker_max_age_min"].default
    assert kafka.max_age_s == max_age_min * 60 and "RATES_BROKER_MAX_AGE_MIN" in kafka.announce
    assert postgres.max_rss_bytes is None and postgres.max_age_s is None


def test_an_age_limit_of_zero_never_recycles_the_broker() -> None:
    kafka = children(make("live", rates_broker_max_age_min=0))["kafka"]
    assert kafka.max_age_s is None
    assert kafka.announce is not None and "RATES_BROKER_MAX_AGE_MIN" not in kafka.announce


def test_every_pipeline_child_gets_the_addresses_state_and_venues() -> None:
    found = children(make("live"))
    expected = {
        "RATES_STATE_DIR": "/srv/rates",
        "RATES_VENUES": "binance,kraken",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9100",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:9200/postgres",
    }
    for name in ("connect", "history", "api"):
        assert found[name].env == expected, name
    assert found["worker"].env == {**expected, "WORKER_METRICS_PORT": "9300"}
    assert found["connect"].argv == (*RATES, "connect", "binance", "kraken")
    assert found["api"].ready == Answers("http://127.0.0.1:8000/healthz", "API")


def test_the_simulator_writes_its_ports_before_the_connector_starts() -> None:
    simulator = children(make("simulator"))["simulator"]
    ports = STATE / "simulator.json"
    assert simulator.argv == (
        *RATES, "simulate", "--ports-file", str(ports),
        "--base-port", "0", "--tick-interval", "0.25",
        "--directions", ",".join(DEFAULT_DIRECTIONS),
    )  # fmt: skip
    assert simulator.ready == PortsWritten(ports)
    assert simulator.depends_on == ()
    fixed = make("simulator", addresses=Addresses(STATE, 9100, 9200, simulator_port=9400))
    assert children(fixed)["simulator"].argv[-6:-2] == (
        "--base-port",
        "9400",
        "--tick-interval",
        "0.25",
    )


@pytest.mark.parametrize(("speed", "shown"), [(1.0, "1"), (20.0, "20"), (None, "max")])
def test_a_replay_replaces_the_connector_and_starts_last(speed: float | None, shown: str) -> None:
    stack = make("replay", speed=speed, rates_topic_prefix="rerun.")
    replay = stack.steps[-1]
    assert isinstance(replay, Child) and replay.name == "replay"
    assert replay.argv == (
        *RATES, "replay", str(RECORDING), "--speed", shown, "--hold", "--topic-prefix", "rerun.",
    )  # fmt: skip
    assert replay.depends_on == ("kafka",)


def test_several_workers_each_get_their_own_metrics_port() -> None:
    found = children(make("live", rates_workers=2))
    assert [name for name in found if name.startswith("worker")] == ["worker1", "worker2"]
    assert found["worker1"].env["WORKER_METRICS_PORT"] == "9300"
    assert found["worker2"].env["WORKER_METRICS_PORT"] == "9301"
    unset = children(make("live", rates_workers=2, worker_metrics_port=0))
    assert "WORKER_METRICS_PORT" not in unset["worker1"].env  # inherited as configured


def test_configured_broker_and_database_are_waited_for_not_started() -> None:
    url = "postgresql://rates@db.internal:5432/rates"
    stack = make(
        "live",
        addresses=Addresses(STATE),
        kafka_bootstrap_servers="kafka1:9092,kafka2:9092",
        database_url=url,
        kafka_connect_timeout_s=12,
    )
    broker, database = stack.steps[:2]
    assert isinstance(broker, BrokerUp) and broker.bootstrap == "kafka1:9092,kafka2:9092"
    assert broker.timeout_s == 12 and "ticks.raw.kraken" in broker.topics
    assert database == Migrated(url, 5.0, optional=True)
    found = children(stack)
    assert list(found) == ["connect", "worker", "history", "api"]
    assert all(child.depends_on == () for child in found.values())
    assert found["history"].env["DATABASE_URL"] == url
    assert found["connect"].env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka1:9092,kafka2:9092"
    assert (stack.bootstrap, stack.database_url) == ("kafka1:9092,kafka2:9092", url)


def test_only_the_configured_database_external() -> None:
    stack = make(
        "live", addresses=Addresses(STATE, kafka_port=9100), database_url="postgres://x@h/db"
    )
    assert [type(step).__name__ for step in stack.steps[:2]] == ["Child", "Migrated"]
    assert children(stack)["history"].depends_on == ("kafka",)


def test_fixed_ports_by_default_each_named_by_its_setting() -> None:
    defaults = StackSettings.model_construct()  # the defaults, whatever the environment
    found = dict((setting, port) for port, setting in ports(defaults, "simulator"))
    assert {k: v for k, v in found.items() if not k.startswith("RATES_SIMULATOR")} == {
        "API_PORT": 8000,
        "RATES_BROKER_PORT": 9092,
        "RATES_POSTGRES_PORT": 5433,
        "CONNECTOR_METRICS_PORT": 9101,
        "WORKER_METRICS_PORT": 9110,
        "HISTORY_METRICS_PORT": 9103,
        "STACK_METRICS_PORT": 9104,
    }
    simulator = [port for port, setting in ports(defaults, "simulator") if "SIMULATOR" in setting]
    assert simulator == list(range(9211, 9211 + SIMULATOR_PORTS))
    assert clashes(ports(defaults, "simulator")) is None
    # Several workers count up from WORKER_METRICS_PORT, clear of every other default.
    many = defaults.model_copy(update={"rates_workers": 16})
    assert clashes(ports(many, "live")) is None


def test_two_settings_on_one_port_are_one_clear_error() -> None:
    two = settings(rates_workers=2, worker_metrics_port=9102, history_metrics_port=9103)
    assert clashes(ports(two, "live")) == (
        "WORKER_METRICS_PORT+1 and HISTORY_METRICS_PORT give the same port 9103: "
        "give each its own port"
    )
    external = settings(kafka_bootstrap_servers="kafka:9092", rates_broker_port=8000)
    assert clashes(ports(external, "live")) is None  # no embedded broker: its port is unused
    free = settings(rates_broker_port=0, rates_postgres_port=0, rates_simulator_port=0)
    assert not {s for _, s in ports(free, "simulator")} & {
        "RATES_BROKER_PORT", "RATES_POSTGRES_PORT", "RATES_SIMULATOR_PORT"
    }  # fmt: skip
