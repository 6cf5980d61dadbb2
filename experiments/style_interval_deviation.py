"""How far the cheaper style guidance of issue 14 lands from full style guidance, with a TRAINED style.

    python -m experiments.style_interval_deviation [--seeds 2] [--steps 50] [--train-steps N] [--example NAME] [--out F]

Trains the style of an example pair (default ``trio``, inverted colours: the demo's pair until 2026-11-28, which
the committed results used) on the embedded shapes model with its default steps, then draws the demo's six
prompts x ``--seeds`` seeds with plain CFG (x_base), full style guidance (x_full, the default style scale, CFG and
style_start_fraction of ``GenerateConfig``) and each setting of ``paircustom.bench.CHEAP_GUIDANCE`` (x), same
initial noise, and reports in pixels (0-255):

    deviation   mean |x - x_full| / mean |x_full - x_base|   (0: the full-guidance image; 1: as far as no style)
    style kept  mean |x - x_base| / mean |x_full - x_base|   (how much of the style's change of the image remains)

This is not the quality benchmark (``paircustom.bench.quality``: fidelity and leakage against the ground truth),
which needs a base model that has learned its world; it only says how closely each shortcut follows full guidance.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from paircustom.bench import CHEAP_GUIDANCE
from paircustom.config.generate import GENERATE
from paircustom.demo import DemoConfig
from paircustom.sampling.pipeline import StyleGuidedPipeline
from paircustom.shapes import world_version
from paircustom.shapes.examples import EXAMPLES, example_config
from paircustom.training.trainer import train_pair

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = {"full style guidance (style_interval 1)": {}, **dict(CHEAP_GUIDANCE.values())}


def measure(
    seeds: int = 2,
    steps: int = GENERATE.num_inference_steps,
    train_steps: int | None = None,
    log=print,
    example_name: str = "trio",
) -> list[tuple[str, float, float]]:
    """(setting, deviation, style kept) for every setting; the first is full guidance itself (0, 1)."""
    demo = DemoConfig()
    with tempfile.TemporaryDirectory(prefix="paircustom-deviation-") as folder:
        start = time.perf_counter()
        output = Path(folder) / "style.safetensors"
        path = train_pair(example_config(example_name, output, max_steps=train_steps, overwrite=True, progress=False))
        log(f"trained the {example_name} style in {time.perf_counter() - start:.0f} s")
        guided = StyleGuidedPipeline.from_pretrained("shapes")
        guided.pipe.set_progress_bar_config(disable=True)
        name = guided.load_style(path, name="style")
    prompts = [layout.caption for layout in demo.layouts]

    def draw(styles, options) -> np.ndarray:
        return np.concatenate(
            [
                np.asarray(
                    guided(
                        prompts, styles=styles, num_inference_steps=steps, seed=seed, output_type="np", **options
                    ).images
                )
                * 255
                for seed in range(seeds)
            ]
        )

    base = draw({}, {})
    full = draw([name], {})  # at the default style scale
    moved = np.abs(full - base).mean()
    rows = []
    for label, options in SETTINGS.items():
        x = draw([name], options)
        rows.append((label, float(np.abs(x - full).mean() / moved), float(np.abs(x - base).mean() / moved)))
        log(f"{label}: deviation {rows[-1][1]:.3f}, style kept {rows[-1][2]:.3f}")
    return rows


def report(rows, args, minutes: float) -> str:
    lines = ["| setting | deviation from full guidance | style kept |", "|---|---|---|"]
    lines += [f"| {label} | {deviation:.3f} | {kept:.3f} |" for label, deviation, kept in rows]
    return (
        f"# Cheaper style guidance: deviation from full guidance with a trained style\n\n"
        f"Command: `python -m experiments.style_interval_deviation {' '.join(sys.argv[1:])}`\n\n"
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, {minutes:.1f} min, "
        f"torch.set_num_threads(1), os.cpu_count() = {os.cpu_count()}\n"
        f"- embedded shapes model, world v{world_version()}; the {args.example} pair's style, style scale "
        f"{GENERATE.style_scale:g}, CFG {GENERATE.guidance_scale:g}, "
        f"style_start_fraction {GENERATE.style_start_fraction:g}, "
        f"{args.steps} DDIM steps, the demo's 6 prompts x {args.seeds} seeds\n"
        f"- deviation = mean |x - x_full| / mean |x_full - x_base|, style kept = mean |x - x_base| / "
        f"mean |x_full - x_base| (pixels, 0-255)\n\n" + "\n".join(lines) + "\n"
    )


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=GENERATE.num_inference_steps, help="DDIM sampling steps")
    parser.add_argument("--train-steps", type=int, default=None, help="pair-training steps (default: the model's)")
    parser.add_argument("--example", default="trio", choices=sorted(EXAMPLES), help="the example pair to train")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "style-interval-deviation.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = measure(args.seeds, args.steps, args.train_steps, example_name=args.example)
    Path(args.out).write_text(report(rows, args, (time.perf_counter() - start) / 60))
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
