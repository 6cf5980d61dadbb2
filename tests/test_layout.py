"""The package's import drawing (tools/import_graph.py, issue 29): no circles, no arrows back up the declared
layers, at most 10 import-time floors, no module over 300 lines, no function over 60 lines unless its docstring
says why; and the tool finds what it claims to find."""

from pathlib import Path

import pytest

from tools import import_graph

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph():
    return import_graph.read_graph(ROOT)


def test_the_package_has_no_import_circles(graph):
    assert import_graph.circles(graph) == [], "import circles: " + "; ".join(
        " <-> ".join(group) for group in import_graph.circles(graph)
    )


def test_no_arrow_points_back_up_the_layers(graph):
    up = import_graph.back_up(graph)
    assert up == [], "imports from a lower layer up to a higher one: " + ", ".join(f"{a} -> {b}" for a, b in up)


def test_every_module_sits_in_a_declared_layer(graph):
    unplaced = [
        m
        for m in graph.modules
        if not any(
            m == p or m.startswith(p if p.endswith(".") else p + ".") for layer in import_graph.LAYERS for p in layer
        )
    ]
    assert unplaced == [], f"modules no layer names: {unplaced}"


def test_at_most_ten_import_floors(graph):
    floors = import_graph.floors(graph)
    assert 1 + max(floors.values()) <= 10, sorted(floors.items(), key=lambda item: -item[1])[:12]


def test_no_module_is_over_300_lines(graph):
    long = import_graph.long_modules(graph)
    assert long == {}, f"modules over {import_graph.MAX_LINES} lines: {long}"


def test_no_function_is_over_60_lines_unless_its_docstring_says_why(graph):
    assert import_graph.long_functions(graph) == {}


PACKAGE_FILES = {
    "__init__.py": "",
    "errors.py": "class UserError(Exception):\n    pass\n",
    "low/__init__.py": "",
    "low/a.py": "from ..errors import UserError\n",
    "high/__init__.py": "",
    "high/b.py": "from ..low import a\n\n\ndef later():\n    from ..low.c import x\n",
    "low/c.py": "import paircustom.high.b\nx = 1\n",
}
CASE_LAYERS = [["paircustom", "paircustom.errors"], ["paircustom.low"], ["paircustom.high"]]


def test_the_tool_finds_arrows_circles_floors_and_back_up_arrows(tmp_path):
    for name, text in PACKAGE_FILES.items():
        path = tmp_path / "paircustom" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    graph = import_graph.read_graph(tmp_path)
    assert graph.arrows == {
        ("paircustom.low.a", "paircustom.errors"),
        ("paircustom.high.b", "paircustom.low.a"),
        ("paircustom.high.b", "paircustom.low.c"),
        ("paircustom.low.c", "paircustom.high.b"),
    }
    assert import_graph.circles(graph) == [["paircustom.high.b", "paircustom.low.c"]]
    assert import_graph.back_up(graph, CASE_LAYERS) == [("paircustom.low.c", "paircustom.high.b")]
    floors = import_graph.floors(graph)  # the deferred import in ``later`` does not count for floors
    assert (
        floors["paircustom.errors"],
        floors["paircustom.low.a"],
        floors["paircustom.high.b"],
        floors["paircustom.low.c"],
    ) == (0, 1, 2, 3), floors
    walk = import_graph.walk(graph, "UserError", CASE_LAYERS)
    assert (walk["files"], walk["moves"]) == (2, 1), walk
