"""Makes the shipped recording (``make recording``): every simulated venue for a few minutes.

It runs, on an embedded Tansu of its own, ``rates simulate`` (seeded), ``rates connect`` for
every venue both the simulator and the connector know, and ``rates record``; so adding a
venue to the simulator and running ``make recording`` again is all it takes to include it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from connectors import registry
from connectors.simulator.server import SIMULATED
from rates import embedded

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "recordings" / "sample.jsonl.gz"
RATES = (sys.executable, "-m", "rates")
#: The project's own variables, never taken from the caller's shell.
OWN = ("RATES_", "KAFKA_", "API_", "DATABASE_", "CONNECTOR_", "WORKER_", "HISTORY_", "LOG_")


def main() -> int:
    parser = argparse.ArgumentParser(prog="make recording", description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT.relative_to(ROOT)}")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds (default 120)")
    parser.add_argument("--seed", type=int, default=2026, help="simulator seed (default 2026)")
    args = parser.parse_args()
    venues = [v for v in SIMULATED if v in registry.VENUES]
    with tempfile.TemporaryDirectory(prefix="cp-rec-") as tmp:
        work = Path(tmp)
        tansu = embedded.start_tansu(log=work / "tansu.log")
        procs: list[subprocess.Popen[bytes]] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith(OWN)}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=tansu.address,
            RATES_VENUES=",".join(venues),
            CONNECTOR_METRICS_PORT="0",
            RATES_STATE_DIR=str(work / "state"),
            # The references are slow by nature (CBR: daily); poll them often enough that a
            # short recording carries several of each.
            CBR_POLL_INTERVAL_S="15",
            COINGECKO_POLL_INTERVAL_S="10",
        )

        def start(name: str, *argv: str) -> subprocess.Popen[bytes]:
            with open(work / f"{name}.log", "ab") as out:
                proc = subprocess.Popen([*RATES, *argv], env=env, stdout=out, stderr=out)
            procs.append(proc)
            return proc

        try:
            ports = work / "simulator.json"
            start("simulate", "simulate", "--ports-file", str(ports), "--seed", str(args.seed))
            deadline = time.monotonic() + 30
            while not ports.exists():
                if time.monotonic() > deadline:
                    raise SystemExit("the simulator did not start")
                time.sleep(0.1)
            env.update(json.loads(ports.read_text())["env"])
            start("connect", "connect", *venues)
            time.sleep(3)  # every venue connected and sending
            part = work / "recording.jsonl.gz"
            print(f"recording {', '.join(venues)} for {args.duration:g} s ...", flush=True)
            record = start(
                "record", "record", str(part), "--duration", str(args.duration), "--venues", *venues
            )
            if record.wait() != 0 or not part.exists():
                print((work / "record.log").read_text(), file=sys.stderr)
                raise SystemExit("rates record failed")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(part, args.out)
            print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait(20)
            tansu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
