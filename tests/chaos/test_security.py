"""Security basics on the running stack: read-only API, CORS closed, no secret in any log,
every listener (API, metrics, the simulator's control API, the broker) on loopback.

CORS opened by configuration is tested in tests/integration/test_api_contract.py
(test_cors_is_closed_by_default_and_configurable).
"""

from __future__ import annotations

import httpx
import psutil

from tests.chaos.stack import SECRET, Stack
from tests.reliability import Row

WRITES = ("POST", "PUT", "PATCH", "DELETE", "TRACE", "CONNECT")


def api_paths(chaos: Stack) -> list[str]:
    document = httpx.get(f"{chaos.api}/openapi.json", timeout=5).json()
    paths = [p for p in document["paths"] if "{" not in p]
    return [*paths, "/openapi.json", "/docs", "/metrics"]


def test_the_api_is_read_only(chaos: Stack) -> None:
    answers: dict[str, int] = {}
    with httpx.Client(base_url=chaos.api, timeout=5) as client:
        for path in api_paths(chaos):
            for method in WRITES:
                # A fresh connection each: after a CONNECT the server reads the rest as a tunnel.
                headers = {"Connection": "close"}
                status = client.request(method, path, content=b"{}", headers=headers).status_code
                answers[f"{method} {path}"] = status
    wrong = {k: v for k, v in answers.items() if v != 405}
    assert not wrong, wrong
    chaos.report.add(
        Row(
            "writes (POST, PUT, PATCH, DELETE, TRACE, CONNECT)",
            "API",
            f"405 on all {len(answers)} method and path pairs",
            None,
        )
    )


def test_cors_is_closed(chaos: Stack) -> None:
    origin = {"Origin": "https://evil.example"}
    with httpx.Client(base_url=chaos.api, timeout=5) as client:
        for path in api_paths(chaos):
            with client.stream("GET", path, headers=origin) as answer:  # (an event stream: headers)
                assert "access-control-allow-origin" not in answer.headers, path
            preflight = client.options(
                path, headers={**origin, "Access-Control-Request-Method": "GET"}
            )
            assert "access-control-allow-origin" not in preflight.headers, path
            assert preflight.status_code >= 400, (path, preflight.status_code)


def test_no_secret_in_any_log_line(chaos: Stack) -> None:
    """Every process logs at DEBUG; the CoinGecko key was sent, and never written."""
    sent = chaos.sim.state()["venues"]["coingecko"]["key_headers"]
    assert sent.get("x-cg-demo-api-key", 0) > 0, sent
    lines = 0
    for proc in chaos.procs.started:
        output = proc.output()
        lines += output.count("\n")
        assert SECRET not in output, proc.name
        assert SECRET[-12:] not in output, proc.name  # nor a tail of it
    assert "DEBUG" in chaos.connector.output()
    chaos.report.add(
        Row(
            "a CoinGecko key set, every process at DEBUG",
            "all processes",
            f"the key was sent {sent['x-cg-demo-api-key']} times and is in none of "
            f"{lines} log lines",
            None,
        )
    )


def test_every_listener_is_on_loopback(chaos: Stack) -> None:
    listeners: list[tuple[str, str, int]] = []
    for proc in chaos.procs.started:
        root = psutil.Process(proc.popen.pid)
        for process in [root, *root.children(recursive=True)]:
            for conn in process.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listeners.append((proc.name, conn.laddr.ip, conn.laddr.port))
    names = {name for name, _, _ in listeners}
    # The API, both workers' metrics, the connector's metrics, the simulator and its control.
    assert {"api", "connect", "worker1", "worker2", "simulate"} <= names, listeners
    exposed = [entry for entry in listeners if entry[1] != "127.0.0.1"]
    assert not exposed, exposed
    chaos.report.add(
        Row(
            "listening sockets",
            "all processes",
            f"all {len(listeners)} on 127.0.0.1 (API, metrics, simulator and its control API)",
            None,
        )
    )
