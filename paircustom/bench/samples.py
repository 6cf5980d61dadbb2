"""The evaluation set of the quality benchmark (``paircustom.bench.quality``) and its one-call sampling."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..sampling.pipeline import StyleGuidedPipeline
from ..shapes.evaluate import eval_layouts
from ..shapes.examples import EXAMPLES


@dataclass
class Sample:
    """The evaluation set: one row per (caption, seed), caption-major."""

    prompts: list[str]
    splits: list[str]            # "held-out", "training" or "pair"
    latents: torch.Tensor        # (N, C, h, w) initial latents, shared by every method
    base: np.ndarray = field(default=None)   # (N, 64, 64, 3) uint8 x_base


def evaluation_set(config, pipe) -> Sample:
    """Draw the captions (fixed seed) and the initial latents of every (caption, seed)."""
    pair = EXAMPLES[config.pair].scene.layout
    chosen = [("held-out", layout) for layout in eval_layouts(config.held_out, True, config.prompt_seed)]
    chosen += [("training", layout) for layout in eval_layouts(config.training + 1, False, config.prompt_seed)
               if layout != pair][:config.training]
    chosen += [("pair", pair)] if config.pair_caption else []
    unet = pipe.unet.config
    noise = {s: torch.randn((1, unet.in_channels, unet.sample_size, unet.sample_size),
                            generator=torch.Generator().manual_seed(s)) for s in config.seeds}
    rows = [(split, layout, seed) for split, layout in chosen for seed in config.seeds]
    return Sample([layout.caption for _, layout, _ in rows], [split for split, _, _ in rows],
                  torch.cat([noise[seed] for _, _, seed in rows]))


def generate(guided: StyleGuidedPipeline, sample: Sample, config, style: str | None = None,
             scale: float = 0.0, apply: str = "guidance", options: tuple[tuple[str, object], ...] = ()) -> np.ndarray:
    """All samples in one pipeline call -> (N, 64, 64, 3) uint8; no style = the base model, plain CFG.

    ``options``: further style-guidance options (a method's ``sample``, e.g. style_interval)."""
    common = dict(num_inference_steps=config.steps, guidance_scale=config.guidance_scale,
                  style_start_fraction=config.style_start_fraction, latents=sample.latents.clone(), output_type="np")
    if style is None:
        out = guided(sample.prompts, styles={}, **common)
    elif apply == "guidance":
        out = guided(sample.prompts, styles={style: scale}, **common, **dict(options))
    else:
        out = guided.lora_scale(sample.prompts, style, scale, **common)
    return (np.asarray(out.images) * 255).round().clip(0, 255).astype(np.uint8)
