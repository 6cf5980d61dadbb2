"""Prompt adherence of a shapes-world pipeline, read back by the analyzer.

    python -m paircustom.shapes.evaluate [--model DIR] [--steps 50] [--cfg 5] [--seeds 2]

Generates every held-out combination and a sample of training combinations
(``--seeds`` images each) and prints the % of images whose object colour,
shape and background colour the analyzer reads back as prompted.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..images import grid
from .analyzer import analyze
from .world import SHAPES, caption, held_out_combos, training_combos


@dataclass(frozen=True)
class Adherence:
    """Fractions (0-1) of generated images read back correctly."""

    colour: float
    shape: float
    background: float
    all: float  # all three right at once
    count: int
    per_shape: tuple = ()  # shape accuracy for each true shape, in ``SHAPES`` order (nan if absent)


@torch.no_grad()
def generate(pipe, combos, seeds=(0,), steps: int = 50, cfg: float = 5.0, batch: int = 64) -> np.ndarray:
    """Images for every (combo, seed), combo-major -> (len(combos) * len(seeds), 64, 64, 3) uint8."""
    jobs = [(caption(*combo), seed) for combo in combos for seed in seeds]
    images = []
    for start in range(0, len(jobs), batch):
        chunk = jobs[start : start + batch]
        generators = [torch.Generator().manual_seed(seed * 100_003 + start + i) for i, (_, seed) in enumerate(chunk)]
        out = pipe([prompt for prompt, _ in chunk], num_inference_steps=steps, guidance_scale=cfg,
                   generator=generators, output_type="np")
        images.append((out.images * 255).round().astype(np.uint8))  # (b, 64, 64, 3)
    return np.concatenate(images)


def score(images: np.ndarray, combos) -> Adherence:
    """Compare the analyzer's readings of ``images`` with their (colour, shape, background) ``combos``."""
    readings = [analyze(image) for image in images]
    hits = np.array([[r.colour == c, r.shape == s, r.background == b] for r, (c, s, b) in zip(readings, combos)])
    shapes = np.array([s for _, s, _ in combos])
    per_shape = tuple(float(hits[shapes == i, 1].mean()) if (shapes == i).any() else float("nan")
                      for i in range(len(SHAPES)))
    return Adherence(*hits.mean(0).tolist(), all=float(hits.all(1).mean()), count=len(combos), per_shape=per_shape)


def evaluate(pipe, combos, seeds=(0, 1), steps: int = 50, cfg: float = 5.0) -> tuple[Adherence, np.ndarray]:
    """Generate ``combos`` x ``seeds`` and score them; also returns the images."""
    images = generate(pipe, combos, seeds, steps, cfg)
    return score(images, [combo for combo in combos for _ in seeds]), images


def save_grid(images: np.ndarray, path, columns: int = 8) -> None:
    """(N, H, W, 3) uint8 -> one PNG with ``columns`` images per row."""
    pictures = [Image.fromarray(image) for image in images]
    grid([pictures[start : start + columns] for start in range(0, len(pictures), columns)]).save(path)


def format_row(name: str, result: Adherence) -> str:
    return (f"| {name:<10} | {result.count:>6} | {100 * result.colour:6.1f} | {100 * result.shape:6.1f} "
            f"| {100 * result.background:10.1f} | {100 * result.all:6.1f} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="pipeline folder (default: the embedded shapes model)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--train-sample", type=int, default=32, help="training combinations to sample")
    parser.add_argument("--grid", default=None, help="write the held-out images to this PNG")
    args = parser.parse_args(argv)

    from . import load_shapes_pipeline

    torch.manual_seed(0)
    pipe = load_shapes_pipeline(model_dir=args.model)
    pipe.set_progress_bar_config(disable=True)
    seeds = tuple(range(args.seeds))
    train = training_combos()
    train_sample = [train[i] for i in np.random.default_rng(0).choice(len(train), args.train_sample, replace=False)]
    print(f"steps {args.steps}, cfg {args.cfg}, seeds {args.seeds}")
    print("| split      | images | colour |  shape | background |    all |")
    print("|------------|--------|--------|--------|------------|--------|")
    per_shape = []
    for name, combos in (("held-out", held_out_combos()), ("training", train_sample)):
        result, images = evaluate(pipe, combos, seeds, args.steps, args.cfg)
        print(format_row(name, result), flush=True)
        per_shape.append(f"{name}: " + ", ".join(f"{s} {100 * a:.0f}%" for s, a in zip(SHAPES, result.per_shape)))
        if args.grid and name == "held-out":
            save_grid(images, args.grid, columns=2 * len(seeds))
    print("shape accuracy by prompted shape:", *per_shape, sep="\n  ")


if __name__ == "__main__":
    main()
