"""What a blend grid costs: batched grid rows against drawing the cells one by one (issue 32).

    python -m paircustom.bench.sweep_cost [--model shapes] [--grid 3] [--steps 25] [--repeats 3]
                                          [--out benchmarks/results/sweep-cost.md]

A ``grid`` x ``grid`` blend grid of two styles (strengths 0 .. 2·style_scale on each axis), one prompt and seed,
drawn three ways in the same process, interleaved, ``repeats`` timed runs each after one untimed warm-up
(medians of wall clock and of process CPU time, ``torch.set_num_threads`` fixed):

    cell by cell   ``cells_per_call=1``: one pipeline call per cell (2 + 2 rows per UNet call)
    grid row       the default: one call per grid row (``grid`` cells, grid·(2 + 2) rows per UNet call)
    whole grid     ``cells_per_call=grid²``: one call for the grid

Each call encodes the prompts once, runs one UNet call per step on all its rows and decodes once.  The styles
are random LoRAs on every attention projection (``models.write_random_styles``): cost does not depend on what a
style learnt.  Printed: seconds per grid, the speed-up of each batched way over cell by cell (target >= 1.5x for
the grid row), and the largest pixel difference between the batched and cell-by-cell images.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config.generate import GENERATE
from ..sampling.pipeline import StyleGuidedPipeline
from .models import build_pipeline, write_random_styles

SPEEDUP_TARGET = 1.5
PROMPT = "a photo of a red circle on a blue background"


@dataclass(frozen=True)
class CostConfig:
    model: str = "shapes"  # a bench model name (``models.SPECS``): shapes, tiny, mid
    grid: int = 3  # strengths per axis
    steps: int = 25  # denoising steps
    repeats: int = 3  # timed runs per way (after one warm-up), medians of wall and CPU seconds
    threads: int = 1  # torch threads (1: fastest for the shapes model on a shared CPU)
    out: str = "benchmarks/results/sweep-cost.md"


def _grid(pipe, config: CostConfig, cells_per_call: int) -> tuple[tuple[float, float], list]:
    """One grid: ((wall seconds, process CPU seconds), its images)."""
    strengths = np.linspace(0, 2 * GENERATE.style_scale, config.grid).tolist()
    wall, cpu = time.perf_counter(), time.process_time()
    result = pipe.sweep(
        PROMPT,
        {"a": strengths, "b": strengths},
        seeds=[0],
        cells_per_call=cells_per_call,
        num_inference_steps=config.steps,
    )
    seconds = (time.perf_counter() - wall, time.process_time() - cpu)
    return seconds, [image for row in result.images for cell in row for image in cell]


def run(config: CostConfig) -> str:
    torch.set_num_threads(config.threads)
    pipe = StyleGuidedPipeline(build_pipeline(config.model))
    with tempfile.TemporaryDirectory(prefix="paircustom-sweep-cost-") as folder:
        for name, path in zip("ab", write_random_styles(pipe.pipe, Path(folder), rank=8, count=2)):
            pipe.load_style(path, name=name)
    ways = {"cell by cell": 1, "grid row": config.grid, "whole grid": config.grid**2}
    times = {way: [] for way in ways}
    images = {}
    for repeat in range(config.repeats + 1):  # repeat 0 warms up, untimed
        for way, cells in ways.items():
            seconds, images[way] = _grid(pipe, config, cells)
            if repeat:
                times[way].append(seconds)
    median = {way: [statistics.median(column) for column in zip(*values)] for way, values in times.items()}
    worst = {
        way: max(
            int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())
            for a, b in zip(images[way], images["cell by cell"])
        )
        for way in ways
    }
    lines = [
        f"# Blend-grid cost: batched grid rows vs cell by cell ({config.grid}x{config.grid})",
        "",
        f"    python -m paircustom.bench.sweep_cost --model {config.model} --grid {config.grid} "
        f"--steps {config.steps} --repeats {config.repeats} --threads {config.threads}",
        "",
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{config.threads} thread(s); model `{config.model}`, {config.steps} DDIM steps, two random style "
        f"LoRAs, one prompt and seed; median of {config.repeats} interleaved runs after a warm-up.",
        "",
        "| way | cells per call | wall s per grid | speed-up (wall) | CPU s per grid | speed-up (CPU) "
        "| max pixel diff vs cell by cell |",
        "|---|---|---|---|---|---|---|",
    ]
    one = median["cell by cell"]
    for way, cells in ways.items():
        (wall, cpu) = median[way]
        lines.append(
            f"| {way} | {cells} | {wall:.2f} | {one[0] / wall:.2f}x | {cpu:.2f} | {one[1] / cpu:.2f}x | {worst[way]} |"
        )
    speedup = [a / b for a, b in zip(one, median["grid row"])]
    lines += [
        "",
        f"Grid row vs cell by cell: {speedup[0]:.2f}x wall clock, {speedup[1]:.2f}x process CPU time "
        f"(target >= {SPEEDUP_TARGET}x: {'met' if min(speedup) >= SPEEDUP_TARGET else 'NOT met'}). "
        "CPU time is the steadier measure on a shared machine (1 thread).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = CostConfig()
    for name in ("model", "grid", "steps", "repeats", "threads", "out"):
        parser.add_argument(f"--{name}", type=type(getattr(defaults, name)), default=getattr(defaults, name))
    config = CostConfig(**vars(parser.parse_args(argv)))
    report = run(config)
    print(report, end="")
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    Path(config.out).write_text(report)
    print(f"wrote {config.out}")


if __name__ == "__main__":
    main()
