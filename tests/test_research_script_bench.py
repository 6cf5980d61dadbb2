"""The research-script benchmark's own pieces (the benchmark itself needs a checkout of the research code)."""

import pytest

from benchmarks.research_script import RANK, RESOLUTION, as_argv, ours_argv, script_argv
from paircustom.cli.main import build_parser, train_config_of


@pytest.mark.parametrize(
    "flags, argv",
    [
        ({"--steps": 3}, ["--steps", "3"]),
        ({"--overwrite": True, "--lr": 1e-05}, ["--overwrite", "--lr", "1e-05"]),
        ({"--name": "a b"}, ["--name", "a b"]),
    ],
)
def test_flags_become_argv(flags, argv):
    assert as_argv(flags) == argv


def test_our_side_trains_as_the_script_does(tmp_path):
    """Same rank, size, one draw per step, style from step 0: what the research script is given."""
    pair = (tmp_path / "content", tmp_path / "style")
    args = build_parser().parse_args(ours_argv(tmp_path / "model", pair, tmp_path, steps=7))
    config = train_config_of(args)
    ranks = (config.content_rank or config.rank, config.style_rank or config.rank)
    assert (*ranks, config.resolution) == (RANK, RANK, RESOLUTION)
    assert (config.max_steps, config.style_start_step, config.gradient_accumulation) == (7, 0, 1)
    script = script_argv(tmp_path / "model", pair, tmp_path, steps=7)
    values = {flag: value for flag, value in zip(script, script[1:]) if flag.startswith("--")}
    assert values["--max_train_steps"] == "7" and values["--style_weight_start_training_step"] == "0"
    assert values["--content_rank"] == values["--style_rank"] == str(RANK)
    assert values["--gradient_accumulation_steps"] == "1" and values["--resolution"] == str(RESOLUTION)
