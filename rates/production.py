"""``rates production-local``: the production topology of compose.yaml, on this machine.

The processes of compose.yaml without Docker: Debian's nginx and Prometheus run with the files
of compose/ (nginx's template filled in with the local API processes, as the nginx image fills
it in from its environment; prometheus.yml with each job's DNS discovery replaced by the local
processes), in front of several API processes and workers, the connector on the venue
simulator, the history writer, and the embedded broker and PostgreSQL that `rates up` starts.
The processes' own ports are free ones picked at start; nginx and Prometheus listen where the
settings say. Once every process passes its healthcheck, where everything is goes to
``RATES_STATE_DIR/production/production.json``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rates import embedded, healthcheck, stack
from rates.plan import RATES, Child, Step, service_ports, services
from rates.settings import ProductionSettings
from rates.supervisor import Supervisor
from schemas.errors import ConfigError, RatesError

log = logging.getLogger(__name__)

COMPOSE = Path(__file__).resolve().parent.parent / "compose"
NGINX_TEMPLATE = COMPOSE / "nginx" / "default.conf.template"
PROMETHEUS_CONFIG = COMPOSE / "prometheus.yml"
LOOPBACK = "127.0.0.1"
#: How long every process gets to pass its healthcheck after the last one started.
HEALTHY_TIMEOUT_S = 90.0

# -- the configuration files, rendered (pure) ---------------------------------------------------

#: ``${NAME}``: envsubst's syntax, which the nginx image fills in; nginx's own are ``$name``.
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """Replace every ``${NAME}``; ConfigError naming any that has no value."""
    missing = sorted({name for name in _PLACEHOLDER.findall(template) if name not in values})
    if missing:
        raise ConfigError(f"the nginx template needs a value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def nginx_values(listen: str, cache_dir: Path, apis: Sequence[str]) -> dict[str, str]:
    """The template's values for local API processes (compose.yaml has its own)."""
    servers = "\n    ".join(f"server {address} max_fails=0;" for address in apis)
    return {"NGINX_LISTEN": listen, "NGINX_CACHE_DIR": str(cache_dir), "NGINX_API_SERVERS": servers}


def nginx_main_config(directory: Path, site: Path) -> str:
    """What the nginx image's own nginx.conf is in compose: the frame around the site.

    A foreground master whose pid, temporary files and logs stay in ``directory`` (stderr),
    so that several runs and the system's nginx never meet.
    """
    temp = directory / "tmp"
    return "\n".join(
        [
            "# Written by `rates production-local` around compose/nginx/default.conf.template.",
            "daemon off;",
            "worker_processes 1;",
            f'pid "{directory / "nginx.pid"}";',
            "error_log stderr warn;",
            "events {",
            "    worker_connections 1024;",
            "}",
            "http {",
            "    access_log off;",
            *(
                f'    {kind}_temp_path "{temp / kind}";'
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            ),
            f'    include "{site}";',
            "}",
            "",
        ]
    )


def prometheus_config(
    config: Mapping[str, Any], targets: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """The same configuration with each job's discovery replaced by its local processes."""
    rendered: dict[str, Any] = copy.deepcopy(dict(config))
    jobs = [job["job_name"] for job in rendered["scrape_configs"]]
    if set(jobs) != set(targets):
        raise ConfigError(
            f"prometheus.yml scrapes {sorted(jobs)}, the local topology runs {sorted(targets)}"
        )
    for job in rendered["scrape_configs"]:
        for key in [k for k in job if k.endswith("_sd_configs") or k == "static_configs"]:
            del job[key]
        job["static_configs"] = [{"targets": list(targets[job["job_name"]])}]
    return rendered


# -- the topology ---------------------------------------------------------------------------------


def _address(port: int) -> str:
    return f"{LOOPBACK}:{port}"


@dataclass(frozen=True)
class Topology:
    """Where each process of the local production stack listens."""

    nginx: int
    prometheus: int
    connector: int
    history: int
    workers: tuple[int, ...]
    apis: tuple[int, ...]

    @classmethod
    def pick(cls, settings: ProductionSettings) -> Topology:
        """nginx and Prometheus where the settings say, every other process on a free port."""
        embedded.check_port_free(LOOPBACK, settings.production_nginx_port, "PRODUCTION_NGINX_PORT")
        embedded.check_port_free(
            LOOPBACK, settings.production_prometheus_port, "PRODUCTION_PROMETHEUS_PORT"
        )
        return cls(
            nginx=settings.production_nginx_port,
            prometheus=settings.production_prometheus_port,
            connector=embedded.free_port(),
            history=embedded.free_port(),
            workers=tuple(embedded.free_port() for _ in range(settings.production_workers)),
            apis=tuple(embedded.free_port() for _ in range(settings.production_api_replicas)),
        )

    def ports(self) -> dict[str, tuple[int, ...]]:
        """Each `rates` process's ports, in start order, by its subcommand."""
        return {
            "connect": (self.connector,),
            "worker": self.workers,
            "history": (self.history,),
            "api": self.apis,
        }

    def targets(self) -> dict[str, list[str]]:
        """Prometheus' targets, by job: compose/prometheus.yml names its jobs by subcommand."""
        return {process: [_address(p) for p in ports] for process, ports in self.ports().items()}

    def checks(self) -> list[healthcheck.Check]:
        """Every process's healthcheck, as compose.yaml runs them."""
        return [
            healthcheck.check(process, LOOPBACK, port)
            for process, ports in self.ports().items()
            for port in ports
        ]


@dataclass(frozen=True)
class Tools:
    """Debian's nginx and Prometheus."""

    nginx: str
    prometheus: str

    @classmethod
    def find(cls) -> Tools:
        path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
        found = {name: shutil.which(name, path=path) for name in ("nginx", "prometheus")}
        missing = [name for name, where in found.items() if where is None]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} not installed: `make production-local` installs "
                f"Debian's packages (apt-get install {' '.join(missing)})"
            )
        return cls(nginx=str(found["nginx"]), prometheus=str(found["prometheus"]))


def write_configs(topology: Topology, directory: Path) -> tuple[Path, Path]:
    """Render nginx's and Prometheus' files of compose/ into ``directory``."""
    if not NGINX_TEMPLATE.exists() or not PROMETHEUS_CONFIG.exists():
        raise ConfigError(f"{COMPOSE} is missing: run `rates production-local` from a checkout")
    nginx_dir = directory / "nginx"
    for sub in ("tmp", "cache"):
        (nginx_dir / sub).mkdir(parents=True, exist_ok=True)
    site = nginx_dir / "default.conf"
    values = nginx_values(
        _address(topology.nginx), nginx_dir / "cache", [_address(p) for p in topology.apis]
    )
    site.write_text(fill_template(NGINX_TEMPLATE.read_text(), values))
    main = nginx_dir / "nginx.conf"
    main.write_text(nginx_main_config(nginx_dir, site))
    if os.geteuid() == 0:  # nginx's workers drop to nobody, who must reach the cache
        embedded.let_user_traverse(nginx_dir)
    prometheus = directory / "prometheus.yml"
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    prometheus.write_text(yaml.safe_dump(prometheus_config(config, topology.targets())))
    return main, prometheus


#: The setting that tells each `rates` process of the topology its port.
_PORT_SETTING = {
    "connect": "CONNECTOR_METRICS_PORT",
    "worker": "WORKER_METRICS_PORT",
    "history": "HISTORY_METRICS_PORT",
    "api": "API_PORT",
}
#: Seconds a process gets to stop before SIGKILL (the writers flush what they hold).
_GRACE_S = {"worker": 10.0, "history": 10.0}


def _depends(process: str, broker: tuple[str, ...], database: tuple[str, ...]) -> tuple[str, ...]:
    """What a process restarts with: Faust workers never recover from a restart of the broker,
    and the history writer's group starts over with it; the connector and the APIs outlive it
    (as in `rates up`)."""
    if process == "worker":
        return broker
    if process == "history":
        return broker + database
    return ()


def children(
    topology: Topology,
    tools: Tools,
    env: Mapping[str, str],
    configs: tuple[Path, Path],
    depends_on: tuple[str, ...],
    database: tuple[str, ...] = (),
) -> list[Child]:
    """The processes started after the broker, PostgreSQL and the simulator, in order."""
    specs = []
    for process, ports in topology.ports().items():
        for index, port in enumerate(ports, 1):
            specs.append(
                Child(
                    process if len(ports) == 1 else f"{process}{index}",
                    (*RATES, process),
                    {**env, _PORT_SETTING[process]: str(port)},
                    depends_on=_depends(process, depends_on, database),
                    frozen_with=depends_on if process == "connect" else (),
                    grace_s=_GRACE_S.get(process, 5.0),
                )
            )
    nginx_conf, prometheus_yml = configs
    nginx_argv = (tools.nginx, "-p", str(nginx_conf.parent), "-c", str(nginx_conf))
    prometheus_argv = (
        tools.prometheus,
        f"--config.file={prometheus_yml}",
        f"--storage.tsdb.path={prometheus_yml.parent / 'prometheus-data'}",
        f"--web.listen-address={_address(topology.prometheus)}",
        "--log.level=warn",
    )
    specs.append(Child("nginx", nginx_argv, env, grace_s=5.0))
    specs.append(Child("prometheus", prometheus_argv, env, grace_s=5.0))
    return specs


# -- running it -----------------------------------------------------------------------------------


async def _all_healthy(topology: Topology) -> None:
    """Wait until every process passes its healthcheck, nginx and Prometheus answer."""
    checks = topology.checks()
    own = {
        "nginx": f"http://{_address(topology.nginx)}/nginx-health",
        "prometheus": f"http://{_address(topology.prometheus)}/-/ready",
    }
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    while True:
        verdicts = await asyncio.gather(*(asyncio.to_thread(healthcheck.probe, c) for c in checks))
        unhealthy = {
            f"{c.process} ({_address(c.port)})": why
            for c, why in zip(checks, verdicts, strict=True)
            if why is not None
        }
        for name, url in own.items():
            if not await asyncio.to_thread(stack.http_ok, url):
                unhealthy[name] = f"{url} does not answer"
        if not unhealthy:
            return
        if time.monotonic() > deadline:
            raise RatesError(
                f"not healthy within {HEALTHY_TIMEOUT_S:g} s: "
                + "; ".join(f"{name}: {why}" for name, why in unhealthy.items())
            )
        await asyncio.sleep(0.5)


def _where(topology: Topology, kafka: str, database: str, simulator: str) -> dict[str, Any]:
    return {
        "nginx": f"http://{_address(topology.nginx)}",
        "prometheus": f"http://{_address(topology.prometheus)}",
        "api": [f"http://{_address(p)}" for p in topology.apis],
        "targets": topology.targets(),
        "simulator": simulator,
        "kafka": kafka,
        "database": database,
    }


async def run(settings: ProductionSettings) -> int:
    """Run the topology until Ctrl-C / SIGTERM (0) or until a child keeps failing (1)."""
    tools = Tools.find()
    stack.check_ports(service_ports(settings, simulator=True))
    topology = Topology.pick(settings)
    addresses = stack.choose_addresses(settings)
    directory = addresses.state_dir / "production"
    directory.mkdir(parents=True, exist_ok=True)
    where_file = directory / "production.json"
    where_file.unlink(missing_ok=True)
    configs = write_configs(topology, directory)
    venues = list(settings.rates_venues)
    found = services(settings, venues, addresses, simulator=True)
    env = {**found.env, "METRICS_HOST": LOOPBACK}
    steps: list[Step] = [
        *found.steps,
        *children(topology, tools, env, configs, found.kafka, found.database),
    ]
    sup = Supervisor()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sup.request_stop)
    try:
        await stack.unless_stopped(sup, stack.start(sup, steps))
        log.info(
            "nginx on http://%s (API processes %s), Prometheus on http://%s; "
            "Ctrl-C stops everything",
            _address(topology.nginx),
            ", ".join(_address(p) for p in topology.apis),
            _address(topology.prometheus),
        )
        await stack.unless_stopped(sup, _all_healthy(topology))
    except stack.Stopped:
        await sup.stop_all()
        return 0
    except (RatesError, OSError):
        await sup.stop_all()
        raise
    simulator = json.loads((addresses.state_dir / "simulator.json").read_text())["control"]
    where = _where(topology, found.bootstrap, found.database_url, simulator)
    where_file.write_text(json.dumps(where, indent=2))
    log.info("every process is healthy; addresses in %s", where_file)
    code = await sup.run()
    if sup.failure:
        raise RatesError(sup.failure)
    return code
