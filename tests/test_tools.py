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


# tools/param_walk.py on a package of three files: a setting given to ``use.main`` is built into a ``Settings``
# (validated in cfg.py), handed to run.py, and reaches cfg.py once more only by a default argument (no move).
WALK_FILES = {
    "__init__.py": "",
    "cfg.py": (
        "from dataclasses import dataclass\n\n\n@dataclass\nclass Settings:\n    start: float = 0.0\n\n"
        "    def __post_init__(self):\n        check_start(self.start)\n\n\n"
        "def check_start(start):\n    assert 0 <= start < 1\n\n\n"
        "def fallback(start=0.3137):\n    return None\n"
    ),
    "use.py": (
        "from . import run\nfrom .cfg import Settings\n\n\n"
        "def main(start):\n    settings = Settings(start)\n    return run.go(settings)\n"
    ),
    "run.py": (
        "from .cfg import fallback\n\n\n"
        "def go(settings):\n    fallback()\n    return twice(settings.start)\n\n\n"
        "def twice(value):\n    return 2 * value\n"
    ),
}


def test_param_walk_counts_files_moves_checks_and_carriers(tmp_path, monkeypatch):
    from tools import param_walk

    for name, text in WALK_FILES.items():
        (tmp_path / "walkpkg").mkdir(exist_ok=True)
        (tmp_path / "walkpkg" / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    use = importlib.import_module("walkpkg.use")
    try:
        tracer = param_walk.Tracer(tmp_path / "walkpkg", lambda value: type(value) is float and value == 0.3137)
        found = param_walk.traced(tracer, lambda: use.main(0.3137))
    finally:
        for module in [m for m in sys.modules if m.startswith("walkpkg")]:
            del sys.modules[module]
    assert found["file_list"] == ["cfg.py", "run.py", "use.py"], found
    assert found["move_list"] == [("use.py", "cfg.py"), ("use.py", "run.py")], found  # the default moves nothing
    assert (found["checks"], found["carriers"]) == (["cfg.py:check_start"], ["Settings"]), found
