"""Strength sweeps and blend grids (the paper's "Multi-Slider"): one seed, a row of strengths of one style or a
grid of two (or three) styles' strengths, drawn with labelled axes.

    1-D   one style at scales λ_1 .. λ_k (Eq. 10), optionally above the LoRA-scale baseline at scales s_1 .. s_k
    2-D   styles a and b blended at (λ_a, λ_b) (Eq. 11): λ_a along the columns, λ_b down the rows
    3-D   the rows run over (λ_b, λ_c) pairs

Cost: every cell of a grid shares the prompt's ∅ and c rows and the style prompts; only the λ's differ.  So the
cells of one grid row (``cells_per_call``) are drawn by ONE pipeline call whose prompts are the cells'
(prompt, seed) samples, each row of the batch with its own λ (``StyleGuidedPipeline`` takes one scale per prompt,
``guide.row_scales``): one batched UNet call per denoising step covers the whole grid row, and the text encoder
and VAE run once per call.  Every cell starts from the noise its seed gives a plain call, so a 1x1 grid is that
call, and a batched grid matches the cell-by-cell one up to float summation order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from ..config.checks import MAX_SEED, check_number
from ..config.generate import GENERATE
from ..config.sweep import MAX_CELLS, check_grid
from ..errors import UserError
from ..files.grid_image import Axes

MIN_CELL_PIXELS = 128  # grids enlarge smaller images (nearest neighbour) to at least this side
# What a sweep sets itself, per cell: not to be given as pipeline keywords.
OWN_KEYWORDS = ("styles", "seed", "generator", "latents", "output_type", "num_images_per_prompt", "base_adapter")
# The settings recorded in the JSON sidecar (given, else the pipeline's default from GENERATE).
RECORDED = (
    "guidance_scale",
    "num_inference_steps",
    "style_start_fraction",
    "style_end",
    "style_interval",
    "style_tolerance",
    "style_reuse",
    "negative_prompt",
    "height",
    "width",
    "guidance_rescale",
)


def fmt(value: float) -> str:
    """A strength as the grid writes it: 1.5, 3, -0.25."""
    return f"{value:g}"


@dataclass(frozen=True)
class Row:
    """One row of the grid: its label and method, and each cell's scales ({style: λ}, or the LoRA scale)."""

    label: str
    method: str  # "style guidance" or "LoRA scale"
    cells: tuple[dict[str, float], ...]


def plan(styles: dict[str, tuple[float, ...]], lora_scales: tuple[float, ...] | None) -> tuple[list[Row], Axes]:
    """The rows of a sweep (1 style) or blend grid (2-3 styles) and what its axes say."""
    names = list(styles)
    first = styles[names[0]]
    columns = [{names[0]: value} for value in first]
    if len(names) == 1:
        rows = [Row("style guidance", "style guidance", tuple(columns))]
        if lora_scales is None:
            return rows, Axes(f"{names[0]}: style guidance scale", [fmt(v) for v in first], row_labels=["guidance"])
        rows.append(Row("LoRA scale", "LoRA scale", tuple({names[0]: value} for value in lora_scales)))
        values = [[f"{row.method} {fmt(cell[names[0]])}" for cell in row.cells] for row in rows]
        return rows, Axes(f"{names[0]}: strength", row_values=values, row_labels=["guidance", "LoRA"])
    down = list(itertools.product(*(styles[name] for name in names[1:])))  # (λ_b[, λ_c]) per row
    rows = [
        Row(
            " · ".join(map(fmt, pair)),
            "style guidance",
            tuple({**cell, **dict(zip(names[1:], pair))} for cell in columns),
        )
        for pair in down
    ]
    return rows, Axes(
        f"{names[0]}: style guidance scale",
        [fmt(v) for v in first],
        " · ".join(names[1:]) + ": style guidance scale",
        [row.label for row in rows],
    )


def check_sweep(pipe, prompts, styles: dict, seeds, lora_scales, cells_per_call, call: dict):
    """Every input of ``sweep``, checked before anything is drawn: (prompts, {style: values}, seeds, lora)."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise UserError("give at least one prompt, and no empty ones.")
    styles, lora_scales = check_grid(styles, lora_scales)
    if pipe.family.flow:
        raise UserError("sweeps of SD3 and Flux models are not supported yet; use an SD or SDXL model.")
    pipe._scales(dict.fromkeys(styles, 1.0), 1.0)  # loaded?
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise UserError("give at least one seed.")
    for seed in seeds:
        check_number("every seed", seed, 0, MAX_SEED, integer=True)
    check_number("cells_per_call", cells_per_call, 1, MAX_CELLS, integer=True, hint="; 1 draws cell by cell")
    own = sorted(set(call) & set(OWN_KEYWORDS))
    if own:
        raise UserError(
            f"a sweep sets {', '.join(own)} itself for every cell; drop {'it' if len(own) == 1 else 'them'}."
        )
    return prompts, styles, seeds, lora_scales


def initial_noise(pipe, seed: int, height: int | None, width: int | None):
    """The (1, C, h, w) noise a plain SD / SDXL call with ``seed`` starts from (before init_noise_sigma)."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    unet, factor = pipe.pipe.unet, pipe.pipe.vae_scale_factor
    height, width = height or unet.config.sample_size * factor, width or unet.config.sample_size * factor
    shape = (1, unet.config.in_channels, height // factor, width // factor)
    return randn_tensor(
        shape, generator=torch.Generator("cpu").manual_seed(seed), device=pipe.pipe._execution_device, dtype=unet.dtype
    )


@dataclass
class SweepResult:
    """A drawn sweep: ``images[row][column]`` holds one image per sample (prompt-major, then seed)."""

    prompts: list[str]
    seeds: list[int]
    styles: dict[str, tuple[float, ...]]
    rows: list[Row]
    axes: Axes
    images: list[list[list]] = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # everything that made it: the JSON sidecar

    @property
    def samples(self) -> list[tuple[str, int]]:
        return [(prompt, seed) for prompt in self.prompts for seed in self.seeds]

    def sheet(self, sample: int = 0) -> list[list]:
        """The grid of one (prompt, seed) sample: rows of images."""
        return [[cell[sample] for cell in row] for row in self.images]

    def grid(self, zoom: int | None = None):
        """The labelled PNG grid: one panel per sample, titled with its prompt and seed."""
        from ..files.grid_image import labelled_grid, stack

        zoom = zoom or self.zoom
        panels = [labelled_grid(self.sheet(i), self.axes, zoom) for i in range(len(self.samples))]
        return stack(panels, [f'"{prompt}", seed {seed}' for prompt, seed in self.samples])

    def frames(self, zoom: int | None = None) -> list:
        """A strength sweep's animation frames: all samples at one strength each (above the LoRA row's)."""
        from ..files.grid_image import Axes as Labels
        from ..files.grid_image import labelled_grid

        if len(self.styles) != 1:
            raise UserError("an animation shows a strength sweep of one style; this is a blend grid.")
        zoom, name = zoom or self.zoom, next(iter(self.styles))
        frames = []
        for c in range(len(self.rows[0].cells)):
            labels = [f"{row.method} {fmt(row.cells[c][name])}" for row in self.rows]
            cells = [[self.images[r][c][i] for i in range(len(self.samples))] for r in range(len(self.rows))]
            frames.append(
                labelled_grid(cells, Labels(name, [f"seed {s}" for _, s in self.samples], row_labels=labels), zoom)
            )
        return frames

    @property
    def zoom(self) -> int:
        side = min(self.images[0][0][0].size)
        return max(1, -(-MIN_CELL_PIXELS // side))

    def save(self, path, overwrite: bool = False, extra: dict | None = None) -> list:
        """Write ``path`` (the grid PNG), the GIF of a 1-D sweep beside it (same stem) and the JSON settings (same
        stem, plus ``extra``); every output is checked before any is written, and each is written atomically."""
        from ..files.sweep_files import save_sweep

        return save_sweep(self, path, overwrite, extra)


def sweep(
    pipe, prompt, styles: dict, seeds=(0,), lora_scales=None, cells_per_call: int | None = None, **call
) -> SweepResult:
    """Draw a strength sweep (one style) or blend grid (2-3 styles) with ``pipe`` (``StyleGuidedPipeline``).

    ``styles``: {name: strengths} (style guidance scales λ of Eqs. 10-11); ``lora_scales``: a LoRA-scale
    baseline row under a 1-D sweep; ``seeds``: one panel per prompt and seed; ``cells_per_call``: cells drawn by
    one batched call (default: a grid row; 1: cell by cell); ``call``: pipeline keywords (guidance_scale, ...).
    """
    import torch

    prompts, styles, seeds, lora_scales = check_sweep(pipe, prompt, styles, seeds, lora_scales, cells_per_call, call)
    rows, axes = plan(styles, lora_scales)
    result = SweepResult(prompts, seeds, styles, rows, axes, [[None] * len(row.cells) for row in rows])
    result.settings = settings_of(result, cells_per_call, call)
    noise = [initial_noise(pipe, seed, call.get("height"), call.get("width")) for _ in prompts for seed in seeds]
    samples = [prompt for prompt in prompts for _ in seeds]
    guided = [(r, c) for r, row in enumerate(rows) if row.method == "style guidance" for c in range(len(row.cells))]
    per_call = cells_per_call or len(rows[0].cells)
    for start in range(0, len(guided), per_call):
        chunk = guided[start : start + per_call]
        scales = {name: [rows[r].cells[c].get(name, 0.0) for r, c in chunk for _ in samples] for name in styles}
        images = _draw(pipe, samples * len(chunk), noise * len(chunk), scales, call)
        for k, (r, c) in enumerate(chunk):
            result.images[r][c] = images[k * len(samples) : (k + 1) * len(samples)]
    for r, row in enumerate(rows):
        if row.method == "LoRA scale":
            (name,) = styles
            for c, cell in enumerate(row.cells):
                result.images[r][c] = pipe.lora_scale(
                    samples, name, cell[name], latents=torch.cat(noise), **call
                ).images
    return result


def _draw(pipe, prompts: list[str], noise: list, scales: dict[str, list[float]], call: dict) -> list:
    """One pipeline call: row i is ``prompts[i]`` from ``noise[i]`` with scale ``scales[name][i]`` per style."""
    import torch

    return pipe(prompts, styles=scales, latents=torch.cat(noise), **call).images


def settings_of(result: SweepResult, cells_per_call: int | None, call: dict) -> dict:
    """Every setting of a sweep, for its JSON sidecar (the command line adds the model and the files)."""
    from .. import __version__

    return {
        "kind": "strength sweep" if len(result.styles) == 1 else "blend grid",
        "prompts": result.prompts,
        "seeds": result.seeds,
        "axes": [
            {
                "style": name,
                "method": "style guidance",
                "values": list(values),
                "drawn": ("columns", "rows", "rows (second value)")[i],
            }
            for i, (name, values) in enumerate(result.styles.items())
        ],
        "lora_scales": None
        if len(result.rows) < 2 or result.rows[1].method != "LoRA scale"
        else [cell[next(iter(result.styles))] for cell in result.rows[1].cells],
        "rows": [{"label": row.label, "method": row.method, "cells": list(row.cells)} for row in result.rows],
        "sampling": {name: call.get(name, getattr(GENERATE, name)) for name in RECORDED},
        "cells_per_call": cells_per_call,
        "software": f"paircustom {__version__}",
    }
