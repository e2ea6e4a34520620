"""The rows of the README's reliability table, as the tests that break things measure them.

Tests add rows to REPORT; at the end of a session without failures, and only when asked
(RATES_RELIABILITY_RECORD=1, which `make reliability` sets: CI leaves the tree clean),
tests/conftest.py writes them to docs/reliability.json, which devtools/reliability.py
renders into the README.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime

from devtools.reliability import REPORT as REPORT_PATH

RECORD_ENV = "RATES_RELIABILITY_RECORD"
COMMAND = "make reliability"


@dataclass
class Row:
    """One line of the table: the fault, where, what happened, recovery, data lost."""

    fault: str
    venues: str
    happened: str
    recovery_s: float | None
    lost: str = "none"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"{row.fault}: {row.happened}; recovered in {row.recovery_s} s")

    def write(self) -> bool:
        """Write docs/reliability.json when asked and there is something to write."""
        if not os.environ.get(RECORD_ENV) or not self.rows:
            return False
        body = {
            "generated": datetime.now().astimezone().isoformat(timespec="minutes"),
            "command": COMMAND,
            "rows": [asdict(row) for row in self.rows],
        }
        REPORT_PATH.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
        return True


#: This session's rows.
REPORT = Report()
