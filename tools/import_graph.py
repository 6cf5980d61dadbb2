"""The package's import drawing, read statically (ast): modules, arrows, circles, floors, arrows back up.

    python tools/import_graph.py                      # this checkout's paircustom/
    python tools/import_graph.py --root ../main        # another checkout
    python tools/import_graph.py --walk style_start_fraction --walk-from paircustom.demo

An arrow a -> b means module a imports module b (anywhere in a, also inside functions and under TYPE_CHECKING);
circles and arrows back up count all of them.  Floors count the arrows that run when a module is imported (its
top-level import statements, not those deferred into functions): a module's floor is its place in the longest
chain of such arrows below it (modules that import nothing of the package at import time are on floor 0).
``LAYERS`` declares the order of the subpackages, lowest first; an arrow from a module of a lower layer to one of
a higher layer points back up.  Two parameter walks:

- ``walk(name)``: the modules whose source names an identifier (e.g. ``style_start_fraction``) and the arrows
  between them: the files a setting passes through and the moves it makes between them;
- ``reach(module)``: the modules a module's import arrows reach (e.g. ``paircustom.demo``: what the demo
  command runs through) and the arrows between them.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "paircustom"
MAX_LINES = 300
MAX_FUNCTION_LINES = 60  # longer only when the docstring says why (it mentions "60")
# The layers, lowest first: a module belongs to the longest prefix listed.  The embedded shapes model's package
# (``paircustom.shapes`` itself: where its files lie) is named by ``config.model_names``, so it sits low; the
# shapes world and its training tools sit with the benchmarks.
LAYERS = [
    ["paircustom", "paircustom.errors", "paircustom.distributed", "paircustom.shapes"],
    ["paircustom.config"],
    ["paircustom.adapters"],
    ["paircustom.files"],
    ["paircustom.models"],
    ["paircustom.sampling"],
    ["paircustom.training"],
    ["paircustom.tiny"],
    ["paircustom.shapes.", "paircustom.bench"],
    ["paircustom.cli", "paircustom.ui", "paircustom.demo", "paircustom.__main__"],
]


@dataclass
class Graph:
    modules: dict[str, Path]  # dotted name -> file
    arrows: set[tuple[str, str]] = field(default_factory=set)
    load_arrows: set[tuple[str, str]] = field(default_factory=set)  # the top-level ones, run on import

    def imports(self, module: str, at_load: bool = False) -> set[str]:
        return {b for a, b in (self.load_arrows if at_load else self.arrows) if a == module}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_graph(root: Path) -> Graph:
    """Every module under ``root/paircustom`` and the arrows between them."""
    files = sorted((root / PACKAGE).rglob("*.py"))
    graph = Graph({module_name(root, f): f for f in files})
    for name, path in graph.modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body} | {id(n) for t in tree.body if isinstance(t, ast.Try) for n in t.body}
        for node in ast.walk(tree):
            for target in _targets(node, package, graph.modules):
                if target != name:
                    graph.arrows.add((name, target))
                    if id(node) in top:
                        graph.load_arrows.add((name, target))
    return graph


def _targets(node, package: str, modules) -> list[str]:
    """The package modules an import statement imports (a name that is a submodule counts as that module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    found = []
    for alias in node.names:
        if f"{source}.{alias.name}" in modules:
            found.append(f"{source}.{alias.name}")
        elif source in modules:
            found.append(source)
    return found


def layer_of(module: str, layers=LAYERS) -> int:
    """The layer of the longest listed prefix that ``module`` starts with (a prefix without a trailing dot
    matches the module itself and its submodules)."""
    best, depth = 0, -1
    for index, prefixes in enumerate(layers):
        for prefix in prefixes:
            matches = (
                module.startswith(prefix)
                if prefix.endswith(".")
                else (module == prefix or module.startswith(prefix + "."))
            )
            if matches and len(prefix) > depth:
                best, depth = index, len(prefix)
    return best


def circles(graph: Graph, at_load: bool = False) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.imports(module, at_load)):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def floors(graph: Graph) -> dict[str, int]:
    """Each module's floor: 0 without import-time arrows, else 1 + the highest floor it imports on load (a circle
    shares one floor)."""
    group_of = {m: tuple(g) for g in circles(graph, at_load=True) for m in g}
    memo: dict[str, int] = {}

    def floor(module, seen=()):
        if module in memo:
            return memo[module]
        group = group_of.get(module, (module,))
        below = {t for m in group for t in graph.imports(m, at_load=True)} - set(group)
        value = 1 + max((floor(t, seen + group) for t in below if t not in seen), default=-1)
        for member in group:
            memo[member] = value
        return value

    return {m: floor(m) for m in sorted(graph.modules)}


def back_up(graph: Graph, layers=LAYERS) -> list[tuple[str, str]]:
    """Arrows from a module of a lower layer to a module of a higher one."""
    return sorted((a, b) for a, b in graph.arrows if layer_of(a, layers) < layer_of(b, layers))


def long_modules(graph: Graph, limit: int = MAX_LINES) -> dict[str, int]:
    lengths = {m: len(p.read_text().splitlines()) for m, p in graph.modules.items()}
    return {m: n for m, n in sorted(lengths.items()) if n > limit}


def long_functions(graph: Graph, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """Functions over ``limit`` lines (signature to last line) whose docstring does not say why ("60")."""
    found = {}
    for module, path in sorted(graph.modules.items()):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit and str(limit) not in (ast.get_docstring(node) or ""):
                    found[f"{module}:{node.name}"] = length
    return found


def walk(graph: Graph, name: str, layers=LAYERS) -> dict:
    """The modules whose source names ``name`` and the arrows between them (and how many of those point up)."""
    word = re.compile(rf"\b{re.escape(name)}\b")
    files = sorted(m for m, p in graph.modules.items() if word.search(p.read_text()))
    return _summary(graph, files, layers)


def reach(graph: Graph, start: str, layers=LAYERS) -> dict:
    """The modules ``start``'s arrows reach (``start`` included) and the arrows between them."""
    seen, todo = {start}, [start]
    while todo:
        for target in graph.imports(todo.pop()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return _summary(graph, sorted(seen), layers)


def _summary(graph: Graph, files: list[str], layers) -> dict:
    inside = set(files)
    moves = sorted((a, b) for a, b in graph.arrows if a in inside and b in inside)
    up = [(a, b) for a, b in moves if layer_of(a, layers) < layer_of(b, layers)]
    return {"files": len(files), "moves": len(moves), "moves_up": len(up), "modules": files}


def report(graph: Graph, layers=LAYERS) -> dict:
    levels = floors(graph)
    return {
        "modules": len(graph.modules),
        "arrows": len(graph.arrows),
        "load_arrows": len(graph.load_arrows),
        "circles": circles(graph),
        "floors": 1 + max(levels.values()),
        "back_up": back_up(graph, layers),
        "over_300_lines": long_modules(graph),
        "long_functions": long_functions(graph),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]), help="the checkout to read")
    parser.add_argument("--layers", help="a JSON file with another layer order (a list of lists of prefixes)")
    parser.add_argument("--walk", action="append", default=[], help="an identifier whose files to follow")
    parser.add_argument("--walk-from", action="append", default=[], help="a module whose imports to follow")
    parser.add_argument("--verbose", action="store_true", help="also list the modules of each walk")
    args = parser.parse_args()
    layers = json.loads(Path(args.layers).read_text()) if args.layers else LAYERS
    graph = read_graph(Path(args.root))
    result = report(graph, layers)
    print(
        f"modules {result['modules']}, arrows {result['arrows']} ({result['load_arrows']} at import time), "
        f"circles {len(result['circles'])}, "
        f"floors {result['floors']}, arrows back up {len(result['back_up'])}"
    )
    for group in result["circles"]:
        print("  circle:", " <-> ".join(group))
    for a, b in result["back_up"]:
        print(f"  back up: {a} -> {b}")
    for module, lines in result["over_300_lines"].items():
        print(f"  over {MAX_LINES} lines: {module} ({lines})")
    for function, lines in result["long_functions"].items():
        print(f"  function over {MAX_FUNCTION_LINES} lines: {function} ({lines})")
    walks = [(f"walk {n}", walk(graph, n, layers)) for n in args.walk]
    walks += [(f"reach {m}", reach(graph, m, layers)) for m in args.walk_from]
    for label, found in walks:
        print(f"{label}: files {found['files']}, moves {found['moves']}, moves up {found['moves_up']}")
        if args.verbose:
            print("  " + ", ".join(found["modules"]))


if __name__ == "__main__":
    main()
