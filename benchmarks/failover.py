"""Failover times on the demo stack (all venues, two workers), measured at the API.

- a venue goes silent: time until `GET /api/v1/courses` (no exchanger) serves another venue;
- it comes back: time until the API serves it again (the hysteresis, RATES_HYSTERESIS_S);
- a worker is killed (SIGKILL): time until every direction's rate is updated again.
"""

from __future__ import annotations

import signal
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psutil

from benchmarks.stack import demo_stack

ROUNDS = 3
HYSTERESIS_S = 10.0


def active(client: httpx.Client, base: str) -> str | None:
    response = client.get(f"{base}/api/v1/courses")
    return response.json()["exchanger"] if response.status_code == 200 else None


def wait(check: Any, timeout_s: float = 60.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if check():
            return time.monotonic() - started
        time.sleep(0.02)
    raise RuntimeError(f"not within {timeout_s} s")


def all_updated_since(client: httpx.Client, base: str, moment: datetime) -> bool:
    courses = client.get(f"{base}/api/v2/courses").json()["courses"]
    return bool(courses) and all(
        c["received_at"] is not None
        and datetime.fromisoformat(c["received_at"]) > moment
        and not c["stale"]
        for c in courses
    )


def run() -> dict[str, Any]:
    silent_to_switch: list[float] = []
    back_after: list[float] = []
    env = {"RATES_WORKERS": "2", "RATES_HYSTERESIS_S": str(HYSTERESIS_S)}
    with demo_stack(env) as stack, httpx.Client(timeout=5) as client:
        faults = f"{stack.control}/_sim/venues/binance/faults"
        wait(lambda: active(client, stack.base) == "binance")
        for _ in range(ROUNDS):
            time.sleep(HYSTERESIS_S)  # settled
            client.post(faults, json={"silent": True})
            silent_to_switch.append(wait(lambda: active(client, stack.base) != "binance"))
            client.post(faults, json={"silent": False})
            back_after.append(wait(lambda: active(client, stack.base) == "binance"))
        time.sleep(HYSTERESIS_S)
        workers = [
            c
            for c in psutil.Process(stack.pid).children()
            if c.cmdline()[1:4] == ["-m", "rates", "worker"]
        ]
        assert len(workers) == 2, workers
        killed = datetime.now(UTC)
        workers[0].send_signal(signal.SIGKILL)
        takeover = wait(lambda: all_updated_since(client, stack.base, killed), 120)
    return {
        "rounds": ROUNDS,
        "silent_to_switch_s": round(statistics.median(silent_to_switch), 2),
        "silent_to_switch_max_s": round(max(silent_to_switch), 2),
        "back_after_s": round(statistics.median(back_after), 2),
        "hysteresis_s": HYSTERESIS_S,
        "worker_kill_to_all_updated_s": round(takeover, 2),
        "targets": {"silent_to_switch_s": 5, "worker_kill_to_all_updated_s": 15},
    }


def report(result: dict[str, Any]) -> str:
    r, t = result, result["targets"]
    return "\n".join(
        [
            "## failover (demo stack, all venues, two workers; measured at the API)",
            f"binance silent -> another venue served: median {r['silent_to_switch_s']} s, "
            f"max {r['silent_to_switch_max_s']} s over {r['rounds']} rounds "
            f"(target < {t['silent_to_switch_s']} s; 3 s of it is the silence limit)",
            f"binance back -> served again after {r['back_after_s']} s (median; hysteresis "
            f"{r['hysteresis_s']:g} s plus its reconnect)",
            f"one worker killed -> every direction updated again after "
            f"{r['worker_kill_to_all_updated_s']} s (target < {t['worker_kill_to_all_updated_s']})",
        ]
    )
