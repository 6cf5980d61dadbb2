"""Prompt adherence of a shapes-world pipeline, read back by the analyzer.

    python -m paircustom.shapes.evaluate [--model DIR] [--steps 50] [--cfg 5] [--seeds 2] [--layouts 48] [--by-shape]

Generates ``--layouts`` held-out and as many training layouts (1-3 objects, drawn with a fixed seed;
``--seeds`` images each) and prints the share of prompted objects whose colour and shape are read back, of
images with the right background and object count, and of images read back exactly; ``--by-shape`` adds, per
split, which shape is read for each prompted shape.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..config.generate import GENERATE
from ..files.images import from_uint8, grid, to_uint8
from .analyzer import analyze
from .styles import STYLES
from .world import SHAPES, Layout, random_layout, render_batch


@dataclass(frozen=True)
class Adherence:
    """Fractions (0-1) read back correctly: colour and shape per prompted object, the rest per image."""

    colour: float      # prompted objects whose colour is present
    shape: float       # prompted objects whose colour is present with the prompted shape
    background: float
    objects: float     # images with the prompted number of objects
    all: float         # images read back exactly (order included)
    count: int         # images


def eval_layouts(count: int, held_out: bool, seed: int = 0) -> list[Layout]:
    """``count`` layouts with 1, 2 and 3 objects in turn, drawn with a fixed seed."""
    rng = np.random.default_rng([seed, held_out])
    return [random_layout(rng, held_out, 1 + i % 3) for i in range(count)]


@torch.no_grad()
def generate(pipe, prompts: list[str], seeds=(0,), steps: int = GENERATE.num_inference_steps,
             cfg: float = GENERATE.guidance_scale, batch: int = 64) -> np.ndarray:
    """Images for every (prompt, seed), prompt-major -> (len(prompts) * len(seeds), 64, 64, 3) uint8."""
    jobs = [(prompt, seed) for prompt in prompts for seed in seeds]
    images = []
    for start in range(0, len(jobs), batch):
        chunk = jobs[start : start + batch]
        generators = [torch.Generator().manual_seed(seed * 100_003 + start + i) for i, (_, seed) in enumerate(chunk)]
        out = pipe([prompt for prompt, _ in chunk], num_inference_steps=steps, guidance_scale=cfg,
                   generator=generators, output_type="np")
        images.append((out.images * 255).round().astype(np.uint8))  # (b, 64, 64, 3)
    return np.concatenate(images)


def score(images: np.ndarray, layouts: list[Layout]) -> Adherence:
    """Compare the analyzer's readings of ``images`` with the ``layouts`` they were prompted with."""
    colour = shape = objects = 0
    background = exact = count = 0
    for image, layout in zip(images, layouts):
        reading = analyze(image)
        read = dict(reading.objects)  # colour -> shape
        colour += sum(c in read for c, _ in layout.objects)
        shape += sum(read.get(c) == s for c, s in layout.objects)
        objects += len(layout.objects)
        background += reading.background == layout.background
        count += len(reading.objects) == len(layout.objects)
        exact += reading == layout
    n = len(layouts)
    return Adherence(colour / objects, shape / objects, background / n, count / n, exact / n, n)


def shape_confusion(images: np.ndarray, layouts: list[Layout]) -> np.ndarray:
    """(len(SHAPES), len(SHAPES) + 1) counts: row = prompted shape, column = the shape the analyzer reads for that
    object's colour; the last column counts objects whose colour is missing or whose shape is unreadable."""
    table = np.zeros((len(SHAPES), len(SHAPES) + 1), dtype=np.int64)
    for image, layout in zip(images, layouts):
        read = dict(analyze(image).objects)  # colour -> shape (-1 unreadable)
        for colour, shape in layout.objects:
            table[shape, read.get(colour, -1)] += 1   # -1: the last column
    return table


def format_confusion(table: np.ndarray) -> str:
    """Markdown table of ``shape_confusion``, each row's share read as the prompted shape last."""
    lines = ["| prompted \\ read | " + " | ".join(SHAPES) + " | none | right |",
             "|---" * (len(SHAPES) + 3) + "|"]
    for shape, row in enumerate(table):
        lines.append(f"| {SHAPES[shape]} | " + " | ".join(str(n) for n in row)
                     + f" | {row[shape] / max(row.sum(), 1):.0%} |")
    return "\n".join(lines)


def evaluate(pipe, layouts: list[Layout], seeds=(0, 1), steps: int = GENERATE.num_inference_steps,
             cfg: float = GENERATE.guidance_scale):
    """Generate ``layouts`` x ``seeds`` and score them; also returns the images."""
    images = generate(pipe, [layout.caption for layout in layouts], seeds, steps, cfg)
    return score(images, [layout for layout in layouts for _ in seeds]), images


@torch.no_grad()
def vae_round_trip(vae, images: np.ndarray) -> np.ndarray:
    """(N, 64, 64, 3) uint8 through the VAE (encoder mean, then decoder) -> (N, 64, 64, 3) uint8."""
    device = next(vae.parameters()).device
    return to_uint8(vae.decode(vae.encode(from_uint8(images).to(device, vae.dtype)).latent_dist.mean).sample)


def vae_ceilings(vae, count: int = 128, seed: int = 7, styles: dict | None = None) -> dict[str, tuple[float, float]]:
    """How well the VAE can draw each benchmark style (``styles``: name -> f, default the new-word ``STYLES``), on
    ``count`` rendered training scenes x: style -> (ceiling 1 - d(VAE(f(x)), f(x)) / d(x, f(x)), round-trip error
    d(VAE(f(x)), f(x))), with d the mean absolute pixel error (0-255); key "plain" -> (nan, round-trip error of x)."""
    images, _ = render_batch(np.random.default_rng(seed), count)
    mae = lambda a, b: float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())  # noqa: E731
    result = {"plain": (float("nan"), mae(vae_round_trip(vae, images), images))}
    for name, apply in (styles or {name: style.apply for name, style in STYLES.items()}).items():
        target = np.stack([apply(image) for image in images])
        error = mae(vae_round_trip(vae, target), target)
        result[name] = (1 - error / mae(images, target), error)
    return result


def format_ceilings(ceilings: dict[str, tuple[float, float]]) -> str:
    return "; ".join(f"{name} {error:.1f}" if name == "plain" else f"{name} {ceiling:+.2f} (error {error:.1f})"
                     for name, (ceiling, error) in ceilings.items())


def save_grid(images: np.ndarray, path, columns: int = 8) -> None:
    """(N, H, W, 3) uint8 -> one PNG with ``columns`` images per row."""
    pictures = [Image.fromarray(image) for image in images]
    grid([pictures[start : start + columns] for start in range(0, len(pictures), columns)]).save(path)


HEADER = ("| split      | images | object colour | object shape | background | object count | exact |\n"
          "|------------|--------|---------------|--------------|------------|--------------|-------|")


def format_row(name: str, result: Adherence) -> str:
    return (f"| {name:<10} | {result.count:>6} | {100 * result.colour:13.1f} | {100 * result.shape:12.1f} "
            f"| {100 * result.background:10.1f} | {100 * result.objects:12.1f} | {100 * result.all:5.1f} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="pipeline folder (default: the embedded shapes model)")
    parser.add_argument("--steps", type=int, default=GENERATE.num_inference_steps)
    parser.add_argument("--cfg", type=float, default=GENERATE.guidance_scale)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--layouts", type=int, default=48, help="layouts per split")
    parser.add_argument("--grid", default=None, help="write the held-out images to this PNG")
    parser.add_argument("--by-shape", action="store_true", help="also print which shape is read for each "
                        "prompted shape (rows: prompted; columns: read)")
    parser.add_argument("--vae", default=None, help="only report this VAE folder's round-trip error and style "
                        "ceilings (e.g. a finished or checkpointed VAE stage of the base trainer)")
    args = parser.parse_args(argv)

    if args.vae:
        from diffusers import AutoencoderKL

        print(format_ceilings(vae_ceilings(AutoencoderKL.from_pretrained(args.vae).eval())))
        return

    torch.manual_seed(0)
    from ..models.registry import load_pipeline

    pipe = load_pipeline(args.model or "shapes")
    pipe.set_progress_bar_config(disable=True)
    seeds = tuple(range(args.seeds))
    print(f"steps {args.steps}, cfg {args.cfg}, seeds {args.seeds}")
    print(HEADER)
    confusions = []
    for name, held_out in (("held-out", True), ("training", False)):
        layouts = eval_layouts(args.layouts, held_out)
        result, images = evaluate(pipe, layouts, seeds, args.steps, args.cfg)
        print(format_row(name, result), flush=True)
        if args.by_shape:
            prompted = [layout for layout in layouts for _ in seeds]
            confusions.append(f"\n{name}:\n\n{format_confusion(shape_confusion(images, prompted))}")
        if args.grid and held_out:
            save_grid(images, args.grid, columns=4 * len(seeds))
    if confusions:
        print("\n".join(confusions))


if __name__ == "__main__":
    main()
