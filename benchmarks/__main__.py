"""`python -m benchmarks [NAME...]`: run the benchmarks (all by default), print and save results."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import psutil

#: name -> module with ``run() -> dict`` and ``report(result) -> str``.
BENCHMARKS = ("latency", "failover", "api", "replay", "scaling")
#: Run only when named: `make history-size`, `python -m benchmarks broker`, `... fetch_cost`.
ON_REQUEST = ("history", "broker", "fetch_cost")

RESULTS = Path("bench-results")


def machine() -> str:
    return (
        f"{platform.node()}: {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    known = (*BENCHMARKS, *ON_REQUEST)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(known)}")
    args = parser.parse_args()
    unknown = set(args.names) - set(known)
    if unknown:
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))} (have: {', '.join(known)})")
    names = args.names or list(BENCHMARKS)
    RESULTS.mkdir(exist_ok=True)
    print(f"# benchmarks on {machine()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    failed = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        try:
            result = module.run()
        except Exception as exc:  # noqa: BLE001 (a supervisor: one broken benchmark must not hide the others)
            failed.append(name)
            print(f"## {name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
            continue
        result["machine"] = machine()
        result["date"] = datetime.now(UTC).isoformat(timespec="seconds")
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(module.report(result), flush=True)
    if failed:
        print(f"# failed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
