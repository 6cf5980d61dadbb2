"""The package's modules import each other without circles (issue 11), lazy imports inside functions included.

An import circle makes the import order matter, and a lazy import that closes one only hides it.  Imports under
``if TYPE_CHECKING:`` never run and are left out.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "paircustom"


def module_files() -> dict[str, Path]:
    """{"paircustom.bench.perf": path, "paircustom.shapes": .../shapes/__init__.py, ...}"""
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            yield from (n for orelse in node.orelse for n in [orelse, *_runtime_nodes(orelse)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imports_of(name: str, path: Path, files: dict[str, Path]) -> set[str]:
    """The package modules that module ``name`` imports (``from . import x`` names module x where it is one)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (
                ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).strip(".")
                if node.level
                else node.module
            )
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names)
    return {module for module in found if module in files and module != name}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, components = {}, {}, [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_walk_sees_lazy_imports_and_finds_a_circle():
    files = module_files()
    assert "paircustom.bench.perf" in files and "paircustom.shapes" in files
    assert "paircustom.files.style_file" in imports_of("paircustom.cli.main", files["paircustom.cli.main"], files), (
        "cli imports formats inside a function; the walk missed it"
    )
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_package_has_no_import_circle():
    files = module_files()
    graph = {name: imports_of(name, path, files) for name, path in files.items()}
    found = circles(graph)
    details = ["; ".join(f"{m} imports {', '.join(sorted(graph[m] & set(c)))}" for m in c) for c in found]
    assert not found, "import circles: " + " | ".join(details)
