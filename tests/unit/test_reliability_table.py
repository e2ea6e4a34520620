"""The README's reliability table is the rendering of docs/reliability.json, row for row."""

from __future__ import annotations

import json

from devtools import reliability


def test_the_readme_table_is_the_recorded_report() -> None:
    report = json.loads(reliability.REPORT.read_text())
    readme = reliability.README.read_text()
    assert reliability.readme_with_table(readme, report) == readme, "run `make reliability`"


def test_every_row_says_what_was_lost() -> None:
    rows = json.loads(reliability.REPORT.read_text())["rows"]
    assert len(rows) >= 20
    # Anything but "none" names what was lost where (the README says why, as a known problem).
    assert sum(row["lost"] == "none" for row in rows) >= len(rows) - 3


def test_cells_cannot_break_the_table() -> None:
    report = {
        "generated": "now",
        "command": "x",
        "rows": [
            {"fault": "a|b", "venues": "v", "happened": "h\nh", "recovery_s": None, "lost": "none"}
        ],
    }
    assert reliability.markdown_table(report).splitlines()[-1] == "| a\\|b | v | h h | n/a | none |"
