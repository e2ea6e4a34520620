"""Makes the shipped recording (``make recording``): every simulated venue for a few minutes.

It runs, on an embedded Tansu of its own, ``rates simulate`` (seeded), ``rates connect`` for
every venue both the simulator and the connector know, and ``rates record``; so adding a
venue to the simulator and running ``make recording`` again is all it takes to include it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from connectors import registry
from connectors.simulator.server import SIMULATED
from devtools.embedded import start_tansu
from devtools.environment import clean_env
from devtools.processes import Procs
from devtools.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "recordings" / "sample.jsonl.gz"


def main() -> int:
    parser = argparse.ArgumentParser(prog="make recording", description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT.relative_to(ROOT)}")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds (default 120)")
    parser.add_argument("--seed", type=int, default=2026, help="simulator seed (default 2026)")
    args = parser.parse_args()
    venues = [v for v in SIMULATED if v in registry.VENUES]
    with tempfile.TemporaryDirectory(prefix="cp-rec-") as tmp:
        work = Path(tmp)
        tansu = start_tansu(log=work / "tansu.log")
        procs = Procs(work)
        env = clean_env(
            KAFKA_BOOTSTRAP_SERVERS=tansu.address,
            RATES_VENUES=",".join(venues),
            RATES_STATE_DIR=str(work / "state"),
            # The references are slow by nature (CBR: daily); poll them often enough that a
            # short recording carries several of each.
            CBR_POLL_INTERVAL_S="15",
            COINGECKO_POLL_INTERVAL_S="10",
        )
        try:
            ports = work / "simulator.json"
            simulate = ["simulate", "--ports-file", str(ports), "--seed", str(args.seed)]
            procs.start("simulate", simulate, env)
            wait_until(ports.exists, 30, "the simulator to start")
            env.update(json.loads(ports.read_text())["env"])
            procs.start("connect", ["connect", *venues], env)
            time.sleep(3)  # every venue connected and sending
            part = work / "recording.jsonl.gz"
            print(f"recording {', '.join(venues)} for {args.duration:g} s ...", flush=True)
            record = procs.start(
                "record",
                ["record", str(part), "--duration", str(args.duration), "--venues", *venues],
                env,
            )
            if record.popen.wait() != 0 or not part.exists():
                print(record.output(), file=sys.stderr)
                raise SystemExit("rates record failed")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(part, args.out)
            print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
        finally:
            procs.stop_all()
            tansu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
