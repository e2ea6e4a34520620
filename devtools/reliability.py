"""The README's reliability table, rendered from docs/reliability.json (the chaos tier's rows).

``RATES_RELIABILITY_RECORD=1 pytest tests/chaos`` writes the JSON (CI never does: the tree
stays clean); ``python -m devtools.reliability --write`` puts its table into the README.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "reliability.json"
README = ROOT / "README.md"
BEGIN = "<!-- reliability-table:begin (python -m devtools.reliability --write) -->"
END = "<!-- reliability-table:end -->"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(report: dict[str, Any]) -> str:
    """One row per fault: what, where, what happened, recovery, data lost."""
    lines = [
        f"Generated {report['generated']} by `{report['command']}`.",
        "",
        "| fault | where | what happened | recovery | data lost |",
        "|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        recovery = row["recovery_s"]
        shown = "n/a" if recovery is None else f"{recovery:g} s"
        cells = [row["fault"], row["venues"], row["happened"], shown, row["lost"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def readme_with_table(readme: str, report: dict[str, Any]) -> str:
    head, found, rest = readme.partition(BEGIN)
    if not found:
        raise SystemExit(f"README.md has no {BEGIN} marker")
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{markdown_table(report)}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.reliability")
    parser.add_argument("--write", action="store_true", help="rewrite the README's table")
    args = parser.parse_args()
    report = json.loads(REPORT.read_text())
    if args.write:
        README.write_text(readme_with_table(README.read_text(), report))
    else:
        sys.stdout.write(markdown_table(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
