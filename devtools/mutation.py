"""Mutation testing of the pure cores: one small AST mutation at a time, does a test notice?

`make mutation` runs it (not part of `make test`). For each module, every mutant below is
written into a temporary copy of the tree (the worktree is never touched) and the fast tests
that cover the module run against it, one mutant after the other under ``nice`` (one core):

- comparison and boundary flips: ``<``/``<=``, ``>``/``>=``, ``==``/``!=``, ``is``/``is not``,
  ``in``/``not in``;
- boolean swaps: ``and``/``or``, ``True``/``False``, ``not x`` -> ``x``;
- numeric constants plus and minus one;
- arithmetic swaps: ``+``/``-``, ``*``/``/``;
- ``return x`` -> ``return None``.

A mutant is killed when the tests fail, survives when they pass. The score per module is
(killed + timed out) / mutants; below the threshold the command exits 1. Survivors are listed
(file:line, mutation) and a Markdown report is written. Annotations, docstrings and strings
are never mutated, nor decorators. Usage::

    python -m devtools.mutation                      # the default modules and their tests
    python -m devtools.mutation pipeline/failover.py --tests tests/unit/test_failover.py
    python -m devtools.mutation --list                  # the mutants only, nothing run
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]

#: module -> the fast test files (globs) that cover it: a subset of tests/unit for speed.
TARGETS: dict[str, tuple[str, ...]] = {
    "pipeline/failover.py": ("tests/unit/test_failover*.py", "tests/unit/test_latest.py"),
    "pipeline/normalize.py": ("tests/unit/test_normalize*.py", "tests/unit/test_broadcast.py"),
}
THRESHOLD = 90.0
REPORT = Path("mutation-results/report.md")
#: Not copied into the temporary tree (caches, state, the virtualenv, results).
IGNORED = (".venv", ".git", "__pycache__", ".rates", "*_cache", "*.egg-info", "*-results")

SWAPS: dict[type[ast.AST], type[ast.AST]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.And: ast.Or,
    ast.Or: ast.And,
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
}
SYMBOLS: dict[type[ast.AST], str] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.And: "and",
    ast.Or: "or",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
}


@dataclass(frozen=True)
class Mutant:
    """One mutation of a module: where (in the original source), what, and the new source."""

    line: int
    col: int
    description: str
    source: str


@dataclass(frozen=True)
class _Site:
    line: int
    col: int
    description: str
    apply: Callable[[], None]


def _swap(node: ast.AST, field: str, index: int | None = None) -> _Site | None:
    """Swap the operator in ``node.<field>`` (or its ``index``-th element) for its partner."""
    holder = getattr(node, field)
    op = holder[index] if index is not None else holder
    partner = SWAPS.get(type(op))
    if partner is None:
        return None

    def apply() -> None:
        if index is not None:
            holder[index] = partner()
        else:
            setattr(node, field, partner())

    description = f"{SYMBOLS[type(op)]} -> {SYMBOLS[partner]}"
    return _Site(node.lineno, node.col_offset, description, apply)  # type: ignore[attr-defined]


def _replace(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for field, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, field, new)
        elif isinstance(value, list):
            value[:] = [new if item is old else item for item in value]


def _unmutated(tree: ast.AST) -> set[int]:
    """ids of every node inside an annotation (never evaluated: ``from __future__``) or a
    decorator (declarations such as ``frozen=True``, ``maxsize=64``: not the logic tested)."""
    roots: list[ast.AST | None] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign):
            roots.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            roots.append(node.returns)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            roots.extend(node.decorator_list)
    return {id(n) for root in roots if root is not None for n in ast.walk(root)}


def _sites_of(node: ast.AST, parent: ast.AST | None) -> Iterable[_Site | None]:
    if isinstance(node, ast.Compare):
        yield from (_swap(node, "ops", i) for i in range(len(node.ops)))
    elif isinstance(node, ast.BoolOp | ast.BinOp):
        yield _swap(node, "op")
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not) and parent is not None:
        operand, at = node.operand, (node.lineno, node.col_offset)
        yield _Site(*at, "not removed", lambda: _replace(parent, node, operand))
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        flipped = not node.value
        yield _Site(
            node.lineno,
            node.col_offset,
            f"{node.value} -> {flipped}",
            lambda: setattr(node, "value", flipped),
        )
    elif isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        for step in (1, -1):
            new = node.value + step
            yield _Site(
                node.lineno,
                node.col_offset,
                f"{node.value!r} -> {new!r}",
                lambda new=new: setattr(node, "value", new),  # type: ignore[misc]
            )
    elif isinstance(node, ast.Return) and node.value is not None and not _is_none(node.value):
        yield _Site(
            node.lineno,
            node.col_offset,
            "return None",
            lambda: setattr(node, "value", ast.Constant(None)),
        )


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _sites(tree: ast.AST) -> list[_Site]:
    """Every mutation site of a tree, in source order."""
    skipped = _unmutated(tree)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = [
        site
        for node in ast.walk(tree)
        if id(node) not in skipped
        for site in _sites_of(node, parents.get(node))
        if site is not None
    ]
    return sorted(found, key=lambda s: (s.line, s.col, s.description))


def mutants(source: str) -> list[Mutant]:
    """Every single-mutation variant of a module's source (pure: source in, mutants out)."""
    result = []
    for index in range(len(_sites(ast.parse(source)))):
        tree = ast.parse(source)  # a fresh tree for each: exactly one mutation per mutant
        site = _sites(tree)[index]
        site.apply()
        result.append(Mutant(site.line, site.col, site.description, ast.unparse(tree)))
    return result


Outcome = Literal["killed", "survived", "timeout"]


@dataclass(frozen=True)
class Result:
    module: str
    mutant: Mutant
    outcome: Outcome


def score(results: Sequence[Result]) -> float:
    """Percent of mutants detected (killed or timed out); 100 when there are none."""
    if not results:
        return 100.0
    return 100.0 * sum(r.outcome != "survived" for r in results) / len(results)


def summary(results: Sequence[Result], modules: Sequence[str], threshold: float) -> list[str]:
    """The report's lines (Markdown): one row per module, then the survivors."""
    lines = [
        f"Mutation testing, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}), threshold {threshold:g}%",
        "",
        "| module | mutants | killed | timeout | survived | score |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for module in modules:
        mine = [r for r in results if r.module == module]
        counts = {o: sum(r.outcome == o for r in mine) for o in ("killed", "timeout", "survived")}
        lines.append(
            f"| {module} | {len(mine)} | {counts['killed']} | {counts['timeout']} "
            f"| {counts['survived']} | {score(mine):.1f}% |"
        )
    survivors = [r for r in results if r.outcome == "survived"]
    lines += ["", f"Survivors ({len(survivors)}):", ""]
    lines += [f"- {r.module}:{r.mutant.line}: {r.mutant.description}" for r in survivors]
    return lines


def _run_tests(tree: Path, tests: Sequence[str], timeout_s: float) -> Outcome:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    command = ["nice", "-n", "19", sys.executable, "-m", "pytest", "-x", "-q"]
    command += ["-p", "no:cacheprovider", *tests]
    process = subprocess.Popen(
        command,
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return "timeout"
    return "survived" if code == 0 else "killed"


def _copy(tree: Path, module: str) -> None:
    """Check that the copy, not the worktree (the editable install), is what gets imported."""
    name = module.removesuffix(".py").replace("/", ".")
    found = subprocess.run(
        [sys.executable, "-c", f"import {name}; print({name}.__file__)"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if Path(found).resolve() != (tree / module).resolve():
        raise SystemExit(f"{name} is imported from {found}, not from the copy {tree}")


def mutate_module(tree: Path, module: str, patterns: Sequence[str]) -> list[Result]:
    """Every mutant of one module against its tests, in the temporary tree."""
    tests = sorted({str(p.relative_to(tree)) for pat in patterns for p in tree.glob(pat)})
    if not tests:
        raise SystemExit(f"no tests match {patterns} for {module}")
    _copy(tree, module)
    path = tree / module
    original = path.read_text()
    started = time.monotonic()
    if _run_tests(tree, tests, 600) != "survived":
        raise SystemExit(f"{module}: its tests fail without any mutation: {' '.join(tests)}")
    timeout_s = max(30.0, 10 * (time.monotonic() - started))
    found = mutants(original)
    print(f"{module}: {len(found)} mutants, tests: {' '.join(tests)}", flush=True)
    results = []
    try:
        for mutant in found:
            path.write_text(mutant.source)
            outcome = _run_tests(tree, tests, timeout_s)
            results.append(Result(module, mutant, outcome))
            if outcome == "survived":
                print(f"  survived {module}:{mutant.line}: {mutant.description}", flush=True)
    finally:
        path.write_text(original)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Mutation testing of the pure cores.")
    parser.add_argument("modules", nargs="*", help="module paths (default: the pure cores)")
    parser.add_argument("--tests", nargs="+", help="test files or globs (default: per module)")
    parser.add_argument("--threshold", type=float, default=THRESHOLD, help="minimum percent")
    parser.add_argument("--report", type=Path, default=REPORT, help="Markdown report path")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    args = parser.parse_args(argv)
    modules = args.modules or list(TARGETS)
    if args.list:
        for module in modules:
            for mutant in mutants((ROOT / module).read_text()):
                print(f"{module}:{mutant.line}: {mutant.description}")
        return 0
    with tempfile.TemporaryDirectory(prefix="mutation-") as temporary:
        tree = Path(temporary) / "tree"
        shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(*IGNORED))
        results = []
        for module in modules:
            patterns = args.tests or TARGETS.get(module, ("tests/unit", "tests/golden"))
            results += mutate_module(tree, module, patterns)
    lines = summary(results, modules, args.threshold)
    print("\n".join(lines))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(lines) + "\n")
    print(f"report: {args.report}")
    below = [m for m in modules if score([r for r in results if r.module == m]) < args.threshold]
    if below:
        print(f"below {args.threshold:g}%: {', '.join(below)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
