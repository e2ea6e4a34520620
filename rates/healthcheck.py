"""``rates healthcheck``: whether a process of the stack serves and is ready (for HEALTHCHECK).

Each long-running process tells through its own endpoint: the connector's metrics show its
venue loops running (they start once the broker answered), the worker's show Faust finished
starting (`rates_pipeline_worker_ready`), the history writer's that PostgreSQL accepted its last
write, and the API answers ``/healthz``. The verdicts are pure functions of what the endpoint
answered; the probe around them is one HTTP GET.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

#: The processes a healthcheck knows, by their `rates` subcommand.
PROCESSES: tuple[str, ...] = ("connect", "worker", "history", "api")
#: A container running ``rates up`` is as healthy as the API it serves.
_CHECKED_AS = {"up": "api"}

Verdict = Callable[[str], str | None]


def _gauge(text: str, name: str) -> list[float]:
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def connector_verdict(metrics: str) -> str | None:
    if not _gauge(metrics, "rates_connector_state"):
        return "no venue loop runs yet (waiting for the broker?)"
    return None


def worker_verdict(metrics: str) -> str | None:
    if _gauge(metrics, "rates_pipeline_worker_ready") != [1.0]:
        return "the Faust worker has not finished starting (joining its group?)"
    return None


def history_verdict(metrics: str) -> str | None:
    if _gauge(metrics, "rates_history_database_up") != [1.0]:
        return "PostgreSQL has not accepted the last write (or none yet)"
    return None


def api_verdict(body: str) -> str | None:
    return None if '"ok"' in body else f"unexpected /healthz answer {body[:80]!r}"


@dataclass(frozen=True)
class Check:
    """Where a process answers, and what its answer must say."""

    process: str
    host: str
    port: int
    path: str
    verdict: Verdict

    @property
    def url(self) -> str:
        return f"http://{_host(self.host)}:{self.port}{self.path}"


def _host(bound: str) -> str:
    """The address to reach a server bound to ``bound`` from the same machine."""
    return "127.0.0.1" if bound in ("", "0.0.0.0", "::") else bound


#: Each process's endpoint path and the verdict on its answer.
_ENDPOINTS: dict[str, tuple[str, Verdict]] = {
    "connect": ("/", connector_verdict),
    "worker": ("/", worker_verdict),
    "history": ("/", history_verdict),
    "api": ("/healthz", api_verdict),
}


def check(process: str, host: str, port: int) -> Check:
    """The check of one process listening on ``host:port``."""
    path, verdict = _ENDPOINTS[process]
    return Check(process, host, port, path, verdict)


def check_for(process: str) -> Check:
    """The check of one process, at the address its own settings give (environment, .env)."""
    from schemas.settings import load

    if process not in _ENDPOINTS:
        raise ValueError(f"no healthcheck for {process!r} (known: {', '.join(PROCESSES)})")
    if process == "connect":
        from connectors.settings import ConnectorSettings

        conn = load(ConnectorSettings)
        return check(process, conn.metrics_host, conn.connector_metrics_port)
    if process in ("worker", "history"):
        from pipeline.settings import HistorySettings, WorkerSettings

        if process == "worker":
            worker = load(WorkerSettings)
            return check(process, worker.metrics_host, worker.worker_metrics_port)
        history = load(HistorySettings)
        return check(process, history.metrics_host, history.history_metrics_port)
    from api.settings import ApiSettings

    api = load(ApiSettings)
    return check("api", api.api_host, api.api_port)


def probe(check: Check, timeout_s: float = 3.0) -> str | None:
    """None when the process is healthy, else why not (one line)."""
    if not check.port:
        return f"its port is 0 (off): {check.process} cannot be checked"
    try:
        with urllib.request.urlopen(check.url, timeout=timeout_s) as response:
            body = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return f"{check.url} answered HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{check.url} did not answer ({exc})"
    return check.verdict(body)


def process_of(cmdline: Iterable[str]) -> str | None:
    """The checked process of a `rates` command line (a container's PID 1), if any."""
    for word in cmdline:
        if word in PROCESSES:
            return word
        if word in _CHECKED_AS:
            return _CHECKED_AS[word]
    return None


def container_process(proc: Path = Path("/proc/1/cmdline")) -> str | None:
    """What PID 1 runs, in a container whose entry point is `rates`."""
    try:
        words = proc.read_bytes().decode("utf-8", "replace").split("\0")
    except OSError:
        return None
    return process_of(words[1:])
