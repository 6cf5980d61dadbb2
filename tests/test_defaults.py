"""Every default is written once, in TrainConfig and GenerateConfig (issue 11).

The command line is built from their fields, so what it parses when no option is given must be exactly the
configs' defaults; and no module (the package and the benchmarks) writes one of their non-trivial defaults
again as a parameter default or a keyword argument.
"""

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest

from paircustom.cli.main import build_parser, train_config_of
from paircustom.config.generate import GENERATE, GENERATE_OPTIONS, STYLIZE_OPTIONS, GenerateConfig
from paircustom.config.options import from_args, options
from paircustom.config.train import PAPER_DEFAULTS, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
# TrainConfig fields the command line fills from other options (the positional pair, --pair, --quiet), and those
# it does not offer (the baselines and the ablation are chosen in Python).
FILLED_BY_THE_CLI = {"content_image", "style_image", "extra_pairs", "pair_subjects", "progress"}
PYTHON_ONLY = {"method", "orthogonal"}


def test_train_parses_to_the_train_configs_defaults_for_every_field():
    args = build_parser().parse_args(["train", "c.png", "s.png", "--subject", "dog", "--style", "art"])
    parsed, expected = train_config_of(args), TrainConfig("c.png", "s.png", subject="dog", style="art")
    differing = {
        f.name: (getattr(parsed, f.name), getattr(expected, f.name))
        for f in fields(TrainConfig)
        if getattr(parsed, f.name) != getattr(expected, f.name)
    }
    assert not differing, f"parsed default != TrainConfig default: {differing}"
    offered = {f.name for f in options(TrainConfig)}
    assert offered | FILLED_BY_THE_CLI | PYTHON_ONLY == {f.name for f in fields(TrainConfig)}, (
        "a TrainConfig field is neither an option nor filled by the command line"
    )
    assert all(hasattr(args, name) for name in offered), "an option of TrainConfig is missing from 'train'"


def test_options_parse_to_the_field_types():
    args = build_parser().parse_args(
        [
            "train",
            "c.png",
            "s.png",
            "--subject",
            "dog",
            "--style",
            "art",
            "--targets",
            "to_q, to_v",
            "--rank",
            "4",
            "--lr",
            "0.5",
            "--scale-lr",
            "--quiet",
            "--dtype",
            "bf16",
            "-o",
            "x.safetensors",
        ]
    )
    config = train_config_of(args)
    assert (
        config.target_modules,
        config.rank,
        config.learning_rate,
        config.scale_lr,
        config.progress,
        config.dtype,
        config.output,
    ) == (("to_q", "to_v"), 4, 0.5, True, False, "bf16", "x.safetensors"), config


def test_generate_and_stylize_parse_to_the_generate_configs_defaults_for_every_field():
    for argv, names in (
        (["generate", "a cat", "-s", "art.safetensors"], GENERATE_OPTIONS),
        (["stylize", "photo.png", "-s", "art.safetensors"], STYLIZE_OPTIONS),
    ):
        args = build_parser().parse_args(argv)
        assert {f.name for f in options(GenerateConfig) if hasattr(args, f.name)} == set(names), argv[0]
        parsed = from_args(GenerateConfig, args)
        differing = {
            f.name: (getattr(parsed, f.name), getattr(GENERATE, f.name))
            for f in fields(GenerateConfig)
            if getattr(parsed, f.name) != getattr(GENERATE, f.name)
        }
        assert not differing, f"{argv[0]}: parsed default != GenerateConfig default: {differing}"
    assert set(GENERATE_OPTIONS) | set(STYLIZE_OPTIONS) == {f.name for f in fields(GenerateConfig)}, (
        "a GenerateConfig field is an option of neither generate nor stylize"
    )


def _help(command: str) -> str:
    """``paircustom <command> --help``, white space folded."""
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    return " ".join(subparsers.choices[command].format_help().split())


def test_help_states_the_configs_defaults():
    train, generate = _help("train"), _help("generate")
    assert f"(default: the model's; paper: {PAPER_DEFAULTS['rank']})" in train and "(default: 0.0001)" in train
    assert f"(default: {GENERATE.style_scale})" in generate


def _restated_defaults(source: str, where: str) -> list[str]:
    """Parameter defaults and keyword arguments in ``source`` that repeat a non-trivial config default by value."""
    defaults = {f.name: f.default for config in (TrainConfig, GenerateConfig) for f in fields(config)}
    defaults.update(
        PAPER_DEFAULTS,
        steps=GENERATE.num_inference_steps,
        cfg=GENERATE.guidance_scale,
        lr=PAPER_DEFAULTS["learning_rate"],
    )
    notable = {
        name: value
        for name, value in defaults.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value not in (0, 1)
    }
    found = []
    for node in ast.walk(ast.parse(source)):
        pairs = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args.posonlyargs + node.args.args
            pairs += zip([a.arg for a in arguments[len(arguments) - len(node.args.defaults) :]], node.args.defaults)
            pairs += [(a.arg, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            pairs.append((node.target.id, node.value))
        elif isinstance(node, ast.keyword) and node.arg:
            pairs.append((node.arg, node.value))
        for name, value in pairs:
            if isinstance(value, ast.Constant) and name in notable and value.value == notable[name]:
                found.append(f"{where}:{value.lineno} {name}={value.value!r}")
    return found


def test_no_module_restates_a_default():
    homes = {ROOT / "paircustom" / "config" / "train.py", ROOT / "paircustom" / "config" / "generate.py"}
    files = [p for folder in ("paircustom", "benchmarks") for p in (ROOT / folder).rglob("*.py") if p not in homes]
    found = [line for path in files for line in _restated_defaults(path.read_text(), str(path.relative_to(ROOT)))]
    assert not found, "defaults written again outside the configs: " + "; ".join(found)


def test_the_scan_finds_a_restated_default():
    source = (
        "def draw(pipe, guidance_scale: float = 5.0, seed=0):\n    return pipe(style_scale=3.0, style_interval=1)\n"
    )
    assert _restated_defaults(source, "x.py") == ["x.py:1 guidance_scale=5.0", "x.py:2 style_scale=3.0"]


@pytest.mark.parametrize(
    "argv, field, value, new",
    [
        (
            ["train", "c.png", "s.png", "--subject", "dog", "--style", "art"],
            "style_start_step",
            7,
            "--style-start-step",
        ),
        (["generate", "a cat", "-s", "art.safetensors"], "style_start_fraction", 0.4, "--style-start-fraction"),
        (["stylize", "photo.png", "-s", "art.safetensors"], "style_start_fraction", 0.4, "--style-start-fraction"),
    ],
)
def test_the_style_start_flags_set_their_field_and_the_help_names_no_old_flag(argv, field, value, new, capsys):
    args = build_parser().parse_args([*argv, new, str(value)])
    assert getattr(args, field) == value and type(getattr(args, field)) is type(value), getattr(args, field)
    assert capsys.readouterr().err == "", "the flag printed a notice"
    assert re.search(r"--style-start\b(?!-)", _help(argv[0])) is None, "an old name is shown in the help"
