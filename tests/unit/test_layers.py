"""Dependencies run one way (DESIGN.md): each package imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The project's packages, lowest layer first.
PACKAGES = ("schemas", "common", "connectors", "pipeline", "api", "rates")

#: package -> the project modules it may import besides its own (a prefix covers submodules).
ALLOWED: dict[str, tuple[str, ...]] = {
    "schemas": (),
    "common": ("schemas",),
    "connectors": ("schemas", "common"),
    # The worker parses frames with the venue modules; nothing of the connection loop.
    "pipeline": ("schemas", "common", "connectors.registry", "connectors.venues"),
    "api": ("schemas", "common"),
    # `rates` is the command line and the process supervisor: it starts every stage.
    "rates": PACKAGES,
}

#: What the pipeline may import from connectors must itself stay below the connection loop.
VENUE_MODULES = ("connectors.registry", "connectors.venues")


def imports(path: Path) -> set[str]:
    """Every project module a file names in an import (anywhere in it, lazy ones included).

    ``from a.b import c`` counts as ``a.b.c``: c may be a module (``from connectors import
    registry``), and a name inside a.b starts with ``a.b.`` all the same.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def violations(package: str, allowed: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in sorted(imports(path)):
            if not within(name, (package, *allowed)):
                found.append(f"{module_name(path)} imports {name}")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_the_layers_below_it(package: str) -> None:
    assert violations(package, ALLOWED[package]) == []


def test_the_venue_modules_the_pipeline_uses_import_nothing_of_the_connector() -> None:
    for path in [ROOT / "connectors" / "registry.py", *(ROOT / "connectors/venues").glob("*.py")]:
        for name in imports(path):
            assert within(name, ("schemas", "common", *VENUE_MODULES)), (
                f"{module_name(path)} imports {name}"
            )


def test_the_rule_sees_a_violation(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text(
        "from connectors.settings import ConnectorSettings\n"
        "from connectors import registry\n"
        "def later() -> None:\n    import api.app\n"
    )
    names = imports(source)
    assert names == {"connectors.settings.ConnectorSettings", "connectors.registry", "api.app"}
    bad = [n for n in sorted(names) if not within(n, ALLOWED["pipeline"])]
    assert bad == ["api.app", "connectors.settings.ConnectorSettings"]
