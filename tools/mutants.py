"""Mutation check of the method's equations: does every arithmetic line have a test that fails when it changes?

Each ``+ - * /`` operator in the modules below is flipped (``+`` <-> ``-``, ``*`` <-> ``/``), and each single
comparison moved by one (``<`` <-> ``<=``, ``>`` <-> ``>=``: the off-by-one), one at a time, in a copy of the
repository, and that module's tests are run with ``-x``. A mutant the tests do not catch is printed
as a survivor: either a test is missing or the flip cannot change a result (then it belongs in ``EQUIVALENT``).
Operators inside f-strings and ``%`` formatting are not touched. Long: each survivor costs a full run of its
tests, so this is a developer tool, not part of the suite.

    python tools/mutants.py                       # every module
    python tools/mutants.py paircustom/sampling/guide.py   # one module
    python tools/mutants.py --operators "< <= > >="   # only the comparisons
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLIPS = {
    ast.Add: "-",
    ast.Sub: "+",
    ast.Mult: "/",
    ast.Div: "*",
    ast.Lt: "<=",
    ast.LtE: "<",
    ast.Gt: ">=",
    ast.GtE: ">",
}
SYMBOL = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}
LONGER = ("**", "//", "<=", ">=", "<<", ">>")  # operators that start with a one-character symbol
# module -> the test files that should catch a change in it
MODULES = {
    "paircustom/training/objective.py": [
        "test_noise.py",
        "test_flow.py",
        "test_training.py",
        "test_flow_train.py",
        "test_pairs.py",
    ],
    "paircustom/models/forward.py": [
        "test_noise.py",
        "test_flow.py",
        "test_training.py",
        "test_flow_train.py",
        "test_pairs.py",
    ],
    "paircustom/sampling/guide.py": ["test_guidance.py", "test_style_interval.py", "test_flow.py"],
    "paircustom/sampling/pipeline.py": ["test_guidance.py", "test_style_interval.py", "test_flow.py"],
    "paircustom/sampling/loop.py": ["test_guidance.py", "test_style_interval.py", "test_flow.py"],
    "paircustom/sampling/prepare.py": ["test_guidance.py", "test_flow.py", "test_control.py"],
    "paircustom/sampling/stylize.py": ["test_stylize.py"],
    "paircustom/adapters/layers.py": ["test_basis_adapters.py", "test_training.py", "test_guidance.py"],
    "paircustom/adapters/basis.py": ["test_basis_adapters.py", "test_pairs.py", "test_reproducible.py"],
    "paircustom/models/latents.py": ["test_noise.py", "test_guidance.py", "test_stylize.py"],
    "paircustom/models/flow.py": ["test_flow.py", "test_flow_train.py", "test_noise.py"],
    "paircustom/training/trainer.py": [
        "test_training.py",
        "test_noise.py",
        "test_pairs.py",
        "test_reproducible.py",
        "test_cli.py",
        "test_distributed.py",
    ],
}

# Flips that cannot change a result, with the reason: (module, the line as written, the flipped operator)
EQUIVALENT = {
    (
        "paircustom/adapters/basis.py",
        "q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)",
        "*",
    ): "dividing by a sign (+1 or -1) is multiplying by it",
    (
        "paircustom/sampling/loop.py",
        "if guide.guidance_rescale > 0:",
        ">",
    ): "rescaling by 0 returns 0 x rescaled + 1 x guided, the guided prediction itself",
    (
        "paircustom/training/trainer.py",
        'description = "pair training" + (f" ({self.processes} processes)" if self.processes > 1 else "")',
        ">",
    ): "the progress bar's label only",
    (
        "paircustom/training/trainer.py",
        "if self.processes > 1:  # the mean over all processes' draws: the same history (and checks) everywhere",
        ">",
    ): "with one process the mean over processes is the value itself",
}


@dataclass(frozen=True)
class Mutant:
    path: str
    line: int  # 1-based
    col: int  # 0-based column of the operator
    old: str
    new: str

    def label(self, source_lines: list[str]) -> str:
        return f"{self.path}:{self.line}: {self.old} -> {self.new}   {source_lines[self.line - 1].strip()}"


def _formatting_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside f-strings and of ``"..." % args`` expressions: message text, not equations."""
    skip = set()
    for node in ast.walk(tree):
        inside_fstring = isinstance(node, ast.JoinedStr)
        string_format = (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Mod)
            and isinstance(node.left, ast.Constant)
            and isinstance(node.left.value, str)
        )
        if inside_fstring or string_format:
            skip.update(id(child) for child in ast.walk(node))
    return skip


def _operations(tree: ast.AST):
    """(node, left, operator, right) of every binary operation and every comparison (``a <= b < c`` gives two)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp):
            yield node, node.left, node.op, node.right
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for k, op in enumerate(node.ops):
                yield node, operands[k], op, operands[k + 1]


def mutants_of(path: str, source: str | None = None) -> list[Mutant]:
    """One mutant per flippable operator of ``source`` (default: the module's text), found between the end of the
    left operand and the start of the right."""
    source = (ROOT / path).read_text() if source is None else source
    lines = source.splitlines()
    tree = ast.parse(source)
    skip, found = _formatting_nodes(tree), []
    for node, left, op, right in _operations(tree):
        if type(op) not in FLIPS or id(node) in skip:
            continue
        if left.end_lineno != right.lineno:
            continue  # operator on a continuation line: rare, not handled
        row = lines[left.end_lineno - 1]
        symbol = SYMBOL[type(op)]
        col = row.find(symbol, left.end_col_offset, right.col_offset)
        if col < 0 or (len(symbol) == 1 and row[col : col + 2] in LONGER):
            continue
        found.append(Mutant(path, left.end_lineno, col, symbol, FLIPS[type(op)]))
    return sorted(found, key=lambda m: (m.line, m.col))


def mutated(source: str, mutant: Mutant) -> str:
    """``source`` with the mutant's operator flipped."""
    lines = source.splitlines(keepends=True)
    row = lines[mutant.line - 1]
    lines[mutant.line - 1] = row[: mutant.col] + mutant.new + row[mutant.col + len(mutant.old) :]
    return "".join(lines)


def killed(mutant: Mutant, workdir: Path) -> tuple[bool, float]:
    """Apply ``mutant`` to a fresh copy of the repository in ``workdir`` and run its module's tests."""
    copy = workdir / "repo"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", "*.egg-info", "__pycache__", "tools"))
    target = copy / mutant.path
    target.write_text(mutated(target.read_text(), mutant))
    tests = [f"tests/{name}" for name in MODULES[mutant.path]]
    started = time.time()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
        cwd=copy,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(copy)},
    )
    return run.returncode != 0, time.time() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", default=list(MODULES), help="repository-relative module paths")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="mutants tested at once (default 1: a 2-job run once reported a kill that one job did not reproduce)",
    )
    parser.add_argument(
        "--operators",
        default=" ".join(SYMBOL.values()),
        help="which operators to flip, space-separated (default: all of %(default)s)",
    )
    parser.add_argument("--list", action="store_true", help="print the mutants and stop")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        print(f"no test mapping for {', '.join(unknown)}; choose among {', '.join(MODULES)}.", file=sys.stderr)
        return 2
    sources = {path: (ROOT / path).read_text().splitlines() for path in args.modules}
    mutants = [
        m
        for path in args.modules
        for m in mutants_of(path)
        if m.old in args.operators.split() and (path, sources[path][m.line - 1].strip(), m.old) not in EQUIVALENT
    ]
    if args.list:
        for m in mutants:
            print(m.label(sources[m.path]))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [Path(tmp) / str(i) for i in range(args.jobs)]
        for d in dirs:
            d.mkdir()
        free = list(dirs)

        def check(m: Mutant):
            workdir = free.pop()
            try:
                return m, *killed(m, workdir)
            finally:
                free.append(workdir)

        survivors = []
        with ThreadPoolExecutor(args.jobs) as pool:
            for i, (m, dead, seconds) in enumerate(pool.map(check, mutants), 1):
                print(
                    f"[{i}/{len(mutants)}] {'killed ' if dead else 'SURVIVED'} ({seconds:.0f}s) "
                    f"{m.label(sources[m.path])}",
                    flush=True,
                )
                if not dead:
                    survivors.append(m)
    print(f"\n{len(mutants) - len(survivors)} of {len(mutants)} mutants killed; survivors:")
    for m in survivors:
        print("  " + m.label(sources[m.path]))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
