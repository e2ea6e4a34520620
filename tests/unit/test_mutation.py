"""The mutation driver's generator (source in, mutants out) and its score."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from devtools.mutation import Mutant, Result, mutants, score, summary


def described(source: str) -> list[tuple[int, str]]:
    return [(m.line, m.description) for m in mutants(source)]


def function(mutant: Mutant, name: str = "f") -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(mutant.source, "<mutant>", "exec"), namespace)
    return namespace[name]


def only(source: str, description: str) -> Mutant:
    (found,) = [m for m in mutants(source) if m.description == description]
    return found


@pytest.mark.parametrize(
    ("operator", "flipped"),
    [
        ("<", "<="),
        ("<=", "<"),
        (">", ">="),
        (">=", ">"),
        ("==", "!="),
        ("!=", "=="),
        ("is", "is not"),
        ("is not", "is"),
        ("in", "not in"),
        ("not in", "in"),
    ],
)
def test_comparisons_are_flipped_one_way(operator: str, flipped: str) -> None:
    source = f"def f(a, b):\n    if a {operator} b:\n        pass\n"
    assert described(source) == [(2, f"{operator} -> {flipped}")]
    assert f"a {flipped} b" in mutants(source)[0].source


def test_a_boundary_flip_changes_the_answer_on_the_boundary_only() -> None:
    mutant = only("def f(age, limit):\n    return age <= limit\n", "<= -> <")
    f = function(mutant)
    assert (f(1, 2), f(2, 2), f(3, 2)) == (True, False, False)


def test_each_operator_of_a_chained_comparison_is_its_own_mutant() -> None:
    source = "def f(a, b, c):\n    return a < b <= c\n"
    assert [m.description for m in mutants(source)] == ["return None", "< -> <=", "<= -> <"]
    assert "a <= b <= c" in only(source, "< -> <=").source
    assert "a < b < c" in only(source, "<= -> <").source


def test_boolean_swaps() -> None:
    assert function(only("def f(a, b):\n    return a and b\n", "and -> or"))(True, False)
    assert not function(only("def f(a, b):\n    return a or b\n", "or -> and"))(True, False)
    assert function(only("def f(a):\n    return not a\n", "not removed"))(True)
    assert function(only("def f():\n    return True\n", "True -> False"))() is False
    assert function(only("def f():\n    return False\n", "False -> True"))() is True
    assert function(only("def f(a):\n    return a\n", "return None"))(1) is None


@pytest.mark.parametrize(("operator", "swapped"), [("+", "-"), ("-", "+"), ("*", "/"), ("/", "*")])
def test_arithmetic_swaps(operator: str, swapped: str) -> None:
    source = f"def f(a, b):\n    x = a {operator} b\n"
    assert described(source) == [(2, f"{operator} -> {swapped}")]
    assert f"a {swapped} b" in mutants(source)[0].source


def test_numbers_move_by_one_either_way_and_strings_and_none_stay() -> None:
    source = 'def f(xs):\n    """Doc 1."""\n    y = None\n    z = "2"\n    return xs[0] * 2.5\n'
    found = [d for _, d in described(source)]
    assert sorted(found) == sorted(
        ["return None", "0 -> 1", "0 -> -1", "2.5 -> 3.5", "2.5 -> 1.5", "* -> /"]
    )


def test_a_bare_return_or_return_none_is_not_mutated() -> None:
    assert described("def f():\n    return\n\ndef g():\n    return None\n") == []


def test_annotations_and_decorators_are_left_alone() -> None:
    source = (
        "import functools\n"
        "@functools.lru_cache(maxsize=64)\n"
        "def f(a: 'int' = 1) -> 'tuple[int, int]':\n"
        "    b: 'list[int]' = []\n"
        "    return b\n"
    )
    assert described(source) == [(3, "1 -> 0"), (3, "1 -> 2"), (5, "return None")]


def test_each_mutant_holds_exactly_one_change_at_its_line() -> None:
    source = "def f(a, b):\n    if a < b:\n        return a + 1\n    return not b\n"
    original = ast.dump(ast.parse(source))
    found = mutants(source)
    assert [(m.line, m.description) for m in found] == [
        (2, "< -> <="),
        (3, "return None"),
        (3, "+ -> -"),
        (3, "1 -> 0"),
        (3, "1 -> 2"),
        (4, "return None"),
        (4, "not removed"),
    ]
    assert len({m.source for m in found}) == len(found)
    for mutant in found:
        assert ast.dump(ast.parse(mutant.source)) != original
        compile(mutant.source, "<mutant>", "exec")
    # The original is untouched by generating: the same source gives the same mutants.
    assert mutants(source) == found


def test_the_score_counts_timeouts_as_detected() -> None:
    m = Mutant(1, 0, "< -> <=", "")
    results = [Result("a.py", m, "killed"), Result("a.py", m, "timeout")]
    assert score(results) == 100.0
    assert score([*results, Result("a.py", m, "survived")]) == pytest.approx(200 / 3)
    assert score([]) == 100.0


def test_the_summary_names_each_module_and_each_survivor() -> None:
    results = [
        Result("a.py", Mutant(3, 0, "< -> <=", ""), "killed"),
        Result("a.py", Mutant(7, 4, "return None", ""), "survived"),
        Result("b.py", Mutant(1, 0, "1 -> 2", ""), "timeout"),
    ]
    lines = summary(results, ["a.py", "b.py"], 90)
    assert "| a.py | 2 | 1 | 0 | 1 | 50.0% |" in lines
    assert "| b.py | 1 | 0 | 1 | 0 | 100.0% |" in lines
    assert lines[-1] == "- a.py:7: return None"
