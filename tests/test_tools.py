"""tools/mutants.py: which operators it flips and how (the tool itself runs for an hour, outside the suite)."""

import importlib.util
import sys
from pathlib import Path

import pytest

SOURCE = """x = a + b * c
message = f"{a - b} left"
y = "%d" % (a - b)
z = a ** 2 // b - c / d
w = (a
     + b)
ok = a < b <= c and d >= e and f << 2 > g
"""


@pytest.fixture(scope="module")
def mutants():
    path = Path(__file__).resolve().parents[1] / "tools" / "mutants.py"
    spec = importlib.util.spec_from_file_location("mutants", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutants"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["mutants"]


def test_arithmetic_operators_are_found_and_message_text_is_not(mutants):
    found = [(m.line, m.col, m.old, m.new) for m in mutants.mutants_of("example.py", SOURCE)]
    # line 1: + and *; lines 2-3: formatting, skipped; line 4: - and / (** and // are not flipped);
    # lines 5-6: an operator on a continuation line is not handled; line 7: each comparison of a chain moves by
    # one, << is not flipped
    assert found == [
        (1, 6, "+", "-"),
        (1, 10, "*", "/"),
        (4, 16, "-", "+"),
        (4, 20, "/", "*"),
        (7, 7, "<", "<="),
        (7, 11, "<=", "<"),
        (7, 22, ">=", ">"),
        (7, 38, ">", ">="),
    ], found


@pytest.mark.parametrize(
    "index, line",
    [
        (0, "x = a - b * c"),
        (1, "x = a + b / c"),
        (2, "z = a ** 2 // b + c / d"),
        (3, "z = a ** 2 // b - c * d"),
        (5, "ok = a < b < c and d >= e and f << 2 > g"),
        (6, "ok = a < b <= c and d > e and f << 2 > g"),
    ],
)
def test_a_mutant_flips_exactly_its_operator(mutants, index, line):
    mutant = mutants.mutants_of("example.py", SOURCE)[index]
    changed = mutants.mutated(SOURCE, mutant).splitlines()
    original = SOURCE.splitlines()
    assert changed[mutant.line - 1] == line
    assert [a for a, b in zip(changed, original) if a != b] == [line], "only the mutant's line may change"
