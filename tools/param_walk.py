"""Parameter walks traced at run time (issue 29): the files of the package a setting passes through while a command
runs, and the moves it makes between them.

    python tools/param_walk.py                          # both walks, this checkout
    python tools/param_walk.py --walk style_start_fraction --verbose
    python tools/param_walk.py --root ../old-checkout   # another checkout (its paircustom is imported instead)

Two walks, each on the embedded shapes model with a few steps (about a minute each on one CPU core):

- ``demo``: ``paircustom demo`` (2 training steps, 2 denoising steps); the setting is the demo's configuration,
  followed as the objects that hold it: the ``DemoConfig`` and the ``TrainConfig`` the demo builds from it;
- ``style_start_fraction``: ``paircustom generate --style-start-fraction 0.3137`` (2 denoising steps) with a
  style file from a 2-step training run; the setting is that number, followed by value (a float equal to it).

``sys.settrace`` sees every call of a function defined under ``paircustom/``.  A call *carries* the setting when one
of its arguments (or a closure's free variable) is the setting, or holds it one level down: as an attribute of an
object or a value of a dict (that object's type is then a *carrier*); a return carries it likewise.  A *move* is the
setting handed from a function of one file to a function of another: a carrying call whose nearest package caller
holds it (in its locals, or because it arrived there before, or because the caller built it inline and hands it to
its class's ``__init__``/``__post_init__``), or a carrying return; moves are counted once per ordered pair of files.
A setting that arrives by a default argument, a closure or a global makes no move.  *Checks* are the carrying calls
of functions named ``check_*``, ``checked_*`` or ``validate*`` not made by another such function (the entry points
of validation; once per function).  Moves up: from a file of a lower layer to one of a higher layer
(``import_graph.LAYERS``; meaningful for the subpackage layout only).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import tempfile
import types
from pathlib import Path

MARKER = 0.3137  # the style start fraction the traced command is given: no default or other setting equals it
DEMO_TYPES = ("DemoConfig", "TrainConfig")
CHECKS = ("check_", "checked_", "validate")  # names of validating functions start so


class Tracer:
    """Records where a setting goes while ``sys.settrace`` is on (see the module docstring)."""

    def __init__(self, package: Path, matches):
        self.package, self.matches = str(package) + "/", matches
        self.files: set[str] = set()
        self.functions: set[str] = set()
        self.moves: set[tuple[str, str]] = set()
        self.checks: set[str] = set()
        self.carriers: set[str] = set()
        self.holding: set[int] = set()  # ids of the live frames the setting is in

    def holds(self, value) -> bool:
        """Whether ``value`` is the setting or holds it one level down (recording the carrier's type)."""
        if self.matches(value):
            return True
        if isinstance(value, dict):
            inner = list(value.values())
        elif isinstance(value, (type, types.ModuleType, types.FunctionType, types.MethodType)):
            return False
        else:
            inner = list(getattr(value, "__dict__", {}).values())
            if dataclasses.is_dataclass(value) and not inner:  # slotted dataclasses
                inner = [getattr(value, f.name, None) for f in dataclasses.fields(value)]
        if any(self.matches(item) for item in inner):
            self.carriers.add(type(value).__name__)
            return True
        return False

    def _package_caller(self, frame):
        frame = frame.f_back
        while frame is not None and not frame.f_code.co_filename.startswith(self.package):
            frame = frame.f_back
        return frame

    def _name(self, frame) -> str:
        return frame.f_code.co_filename[len(self.package) :]

    def _arrive(self, frame, source) -> None:
        """The setting is in ``frame`` now, handed over by ``source`` (a package frame, or None: it came by a
        default, a closure or a global, so no move)."""
        file = self._name(frame)
        self.files.add(file)
        self.functions.add(f"{file}:{frame.f_code.co_qualname}")
        self.holding.add(id(frame))
        if source is not None and self._name(source) != file:
            self.moves.add((self._name(source), file))

    def _giver(self, frame):
        """The package frame that handed the setting to the call ``frame``, if one did."""
        caller = self._package_caller(frame)
        if caller is None:
            return None
        if id(caller) in self.holding or any(self.holds(value) for value in caller.f_locals.values()):
            return caller
        if frame.f_code.co_name in ("__init__", "__post_init__") and self.matches(frame.f_locals.get("self")):
            self.holding.add(id(caller))  # built in ``caller`` (inline), handed to its class's own code
            return caller
        return None

    @staticmethod
    def _defaults(frame) -> list:
        """The default argument values of the function ``frame`` runs (a module's function or a method of
        ``self``'s class; none found otherwise)."""
        name, owner = frame.f_code.co_name, frame.f_locals.get("self")
        function = getattr(type(owner), name, None) if owner is not None else frame.f_globals.get(name)
        function = getattr(function, "__wrapped__", function)
        if getattr(function, "__code__", None) is not frame.f_code:
            return []
        return [*(function.__defaults__ or ()), *(function.__kwdefaults__ or {}).values()]

    def __call__(self, frame, event, arg):
        if event != "call" or not frame.f_code.co_filename.startswith(self.package):
            return None
        defaults = self._defaults(frame)
        given = [value for value in frame.f_locals.values() if not any(value is d for d in defaults)]
        if any(self.holds(value) for value in given):
            giver = self._giver(frame)
            self._arrive(frame, giver)
            name = frame.f_code.co_name
            if name.startswith(CHECKS) and not (giver and giver.f_code.co_name.startswith(CHECKS)):
                self.checks.add(f"{self._name(frame)}:{frame.f_code.co_qualname}")
        frame.f_trace_lines = False
        return self._local

    def _local(self, frame, event, arg):
        if event != "return":
            return self._local
        if arg is not None and self.holds(arg):
            caller = self._package_caller(frame)
            if caller is not None:
                self._arrive(caller, frame)
        self.holding.discard(id(frame))
        return self._local

    def summary(self) -> dict:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tools.import_graph import layer_of

        def module(file: str) -> str:
            parts = ["paircustom", *Path(file).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

        up = [(a, b) for a, b in self.moves if layer_of(module(a)) < layer_of(module(b))]
        return {
            "files": len(self.files),
            "moves": len(self.moves),
            "moves_up": len(up),
            "checks": sorted(self.checks),
            "carriers": sorted(self.carriers),
            "file_list": sorted(self.files),
            "function_list": sorted(self.functions),
            "move_list": sorted(self.moves),
        }


def traced(tracer: Tracer, run) -> dict:
    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(None)
    return tracer.summary()


def cli_main():
    """The command line's ``main(argv)``: in ``paircustom.cli.main``, or in the flat layout's ``paircustom.cli``."""
    try:
        return importlib.import_module("paircustom.cli.main").main
    except ModuleNotFoundError:
        return importlib.import_module("paircustom.cli").main


def small_demo() -> None:
    """Make ``paircustom demo`` train 2 steps and sample 2 steps (its default ``DemoConfig``, replaced)."""
    demo = importlib.import_module("paircustom.demo")
    default = demo.run_demo.__defaults__[-1]
    demo.run_demo.__defaults__ = (
        *demo.run_demo.__defaults__[:-1],
        dataclasses.replace(default, train_steps=2, steps=2),
    )


def demo_walk(package: Path, folder: Path) -> dict:
    small_demo()
    matches = lambda value: type(value).__name__ in DEMO_TYPES  # noqa: E731
    return traced(Tracer(package, matches), lambda: cli_main()(["demo", "--output-dir", str(folder), "--quiet"]))


def style_start_walk(package: Path, folder: Path) -> dict:
    style_files = sorted(folder.glob("*.safetensors"))
    if not style_files:  # a style file to generate with: the demo's, untraced
        small_demo()
        cli_main()(["demo", "--output-dir", str(folder), "--quiet"])
        style_files = sorted(folder.glob("*.safetensors"))
    argv = ["generate", "a red circle on a black background", "--style-file", str(style_files[0]), "--steps", "2"]
    argv += ["--style-start-fraction", str(MARKER), "--output", str(folder / "walk.png"), "--quiet", "--overwrite"]
    matches = lambda value: type(value) is float and value == MARKER  # noqa: E731
    return traced(Tracer(package, matches), lambda: cli_main()(argv))


WALKS = {"demo": demo_walk, "style_start_fraction": style_start_walk}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]), help="the checkout to trace")
    parser.add_argument("--walk", choices=list(WALKS), action="append", help="which walk (default: both)")
    parser.add_argument("--verbose", action="store_true", help="also list the files and moves")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    sys.path.insert(0, str(root))
    package = Path(importlib.import_module("paircustom").__file__).parent
    if package != root / "paircustom":
        raise SystemExit(f"imported {package}, not {root / 'paircustom'}; unset PYTHONPATH or point it at --root")
    results = {}
    with tempfile.TemporaryDirectory(prefix="param-walk-") as folder:
        for name in args.walk or list(WALKS):
            results[name] = found = WALKS[name](package, Path(folder))
            print(
                f"walk {name}: files {found['files']}, moves {found['moves']} (up {found['moves_up']}), "
                f"checks {len(found['checks'])}, carriers {len(found['carriers'])}: {', '.join(found['carriers'])}",
                flush=True,
            )
            print(f"  checks: {', '.join(found['checks'])}", flush=True)
            if args.verbose:
                print("  files: " + ", ".join(found["file_list"]))
                print("  functions: " + ", ".join(found["function_list"]))
                print("  moves: " + ", ".join(f"{a} -> {b}" for a, b in found["move_list"]), flush=True)
    return results


if __name__ == "__main__":
    main()
