"""Oracle rows of the quality benchmark: the best a style term can do on this model at a given style scale λ.

Style guidance (Eq. 10) adds λ·(e_style(x_t, c + suffix) − e0(x_t, c)) to CFG.  An oracle replaces the learned
e_style by one that has the style exactly, as far as the base model can draw it, and is then scored like any
method.  Three kinds, each labelled in the tables:

    words           the base model's own words for exactly the style ("thick white outlined", a known style's
                    word): a style file whose LoRA is zero (every B = 0) with suffix " in <words> style", so
                    e_style(c + suffix) = e0(c + suffix).  For family pairs and known styles.
    mapped-caption  for styles that permute the palette (inverted, hue rotated): the caption with its colours
                    mapped as the style maps them stands in, e_style(c + suffix) := e0(mapped c)
                    ("a red circle on a blue background" -> "a cyan circle on a yellow background" for inverted).
    image           for styles with neither: at every style step the style term is the best one at this λ,
                    (e* − e0(c)) / λ, where e* is the prediction that means the clean latent E(f(D(x̂0(c)))) at x_t
                    and x̂0(c) the base model's current clean estimate from e0(c): λ times the term moves the
                    estimate exactly onto f of itself (without the 1/λ, λ = 3 overshoots threefold: +0.15 fidelity
                    on pixelated with the shipped model).  It knows f exactly, sees the current estimate and
                    depends on λ, so no style LoRA can reach it; a reference for what style guidance allows from
                    this style start, not a method.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..sampling.pipeline import StyleGuidedPipeline
from ..files.images import from_uint8, to_uint8
from ..models.latents import decode, encode
from ..shapes.examples import EXAMPLES
from ..shapes.world import COLOURS, render

COLOUR_TOLERANCE = 2   # grey levels: a style maps a palette colour onto another when it lands this close


def colour_map(f: Callable[[np.ndarray], np.ndarray]) -> dict[str, str] | None:
    """{colour word: the word of the colour ``f`` turns it into} when ``f`` permutes the palette: it acts pixel by
    pixel (it commutes with shuffling the pixels of a rendered scene), maps every palette colour onto a palette
    colour (within ``COLOUR_TOLERANCE``) and moves at least one; else None."""
    names = list(COLOURS)
    palette = np.array([COLOURS[n] for n in names], np.float32)                          # (9, 3)
    scene = render(EXAMPLES["trio"].scene)                                                # (64, 64, 3)
    order = np.random.default_rng(0).permutation(scene.shape[0] * scene.shape[1])
    shuffle = lambda image: image.reshape(-1, 3)[order].reshape(scene.shape)  # noqa: E731
    if not np.array_equal(f(shuffle(scene)), shuffle(f(scene))):
        return None
    patch = np.ascontiguousarray(np.resize(palette.astype(np.uint8), scene.shape))        # palette colours, tiled
    mapped = f(patch).reshape(-1, 3)[: len(names)].astype(np.float32)                     # (9, 3)
    distance = np.abs(mapped[:, None] - palette[None]).max(axis=-1)                       # (9, 9)
    if (distance.min(axis=1) > COLOUR_TOLERANCE).any() or (distance.argmin(axis=1) == np.arange(len(names))).all():
        return None
    return {name: names[int(k)] for name, k in zip(names, distance.argmin(axis=1))}


def map_caption(caption: str, mapping: dict[str, str]) -> str:
    """``caption`` with every colour word replaced by its image under ``mapping`` (word by word)."""
    return " ".join(mapping.get(word, word) for word in caption.split(" "))


class OracleGuidedPipeline(StyleGuidedPipeline):
    """Style guidance in which some style rows are oracles (module docstring): ``caption_maps`` {style name:
    caption -> the row's prompt} replace c + suffix; ``image_styles`` {style name: f} replace the row's prediction
    by e0(c) + (e* − e0(c)) / λ, e* implied by f applied to the current clean estimate.  Both rows run through a
    zero LoRA."""

    def __init__(self, pipe, **kwargs):
        super().__init__(pipe, **kwargs)
        self.caption_maps: dict[str, Callable[[str], str]] = {}
        self.image_styles: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
        self._scales_now: dict[str, float] = {}      # λ of each style in the running call

    def _guide(self, prompts, scales, *args, **kwargs):
        self._scales_now = dict(scales)
        return super()._guide(prompts, scales, *args, **kwargs)

    def _style_texts(self, texts, name):
        if texts is None or name not in self.caption_maps:
            return super()._style_texts(texts, name)
        return [self.caption_maps[name](text) for text in texts]

    def _predict(self, model_input, t, cond, names, control=None):
        out = super()._predict(model_input, t, cond, names, control)
        if not any(name in self.image_styles for name in names):
            return out
        blocks = list(out.chunk(len(names)))                                   # (B, C, h, w) each
        x_t = model_input[: len(model_input) // len(names)]
        for k, name in enumerate(names):
            if name in self.image_styles:      # e0(c) + (e* − e0(c)) / λ: λ·(row − e0(c)) lands on e*
                target = self.image_prediction(x_t, t, blocks[1], self.image_styles[name])
                blocks[k] = blocks[1] + (target - blocks[1]) / self._scales_now[name]
        return torch.cat(blocks)

    @torch.no_grad()
    def image_prediction(self, x_t, t, prediction, f) -> torch.Tensor:
        """The model output (ε or v, as the scheduler predicts) that, at x_t (B, C, h, w) and t, means the clean
        latent E(f(D(x̂0))), x̂0 being the clean estimate of ``prediction``."""
        scheduler = self.pipe.scheduler
        alpha = scheduler.alphas_cumprod[int(t)].to(x_t)
        a, s = alpha.sqrt(), (1 - alpha).sqrt()
        v = scheduler.config.prediction_type == "v_prediction"
        x0 = a * x_t - s * prediction if v else (x_t - s * prediction) / a               # (B, C, h, w)
        images = to_uint8(decode(self.pipe, x0).float())                                # (B, H, W, 3)
        target = encode(self.pipe, from_uint8(np.stack([f(image) for image in images]))).to(x_t)
        noise = (x_t - a * target) / s.clamp_min(1e-6)                                  # ε that x_t then holds
        return a * noise - s * target if v else noise


def zero_style_file(model: str, words: str, folder: Path, name: str) -> Path:
    """A style file whose LoRA is zero (every B = 0; written by the trainer before any step, so its layout is a
    real style file's) with suffix " in <words> style": style guidance with it adds e0(c + suffix) − e0(c)."""
    from ..training.trainer import PairTrainer, TrainConfig  # deferred: keeps the import floors at or under 10

    path = folder / f"{name}-oracle-zero.safetensors"
    if path.is_file():
        return path
    example = EXAMPLES["trio"]
    image = folder / f"{name}-oracle-content.png"
    Image.fromarray(render(example.scene)).save(image)
    trainer = PairTrainer(TrainConfig(str(image), str(image), subject=example.subject, style=words, model=model,
                                      output=str(path), overwrite=True, progress=False))
    try:
        return trainer.save()
    finally:
        trainer.close()


def load_oracle(guided: OracleGuidedPipeline, style, model: str, work: Path) -> str:
    """Load the oracle of ``style`` (a ``sections.BenchStyle``) into ``guided``; return its style name."""
    name = f"{style.name}-oracle"
    if name in guided.suffixes:
        return name
    words = style.oracle_words if style.oracle == "words" else style.words
    guided.load_style(zero_style_file(model, words, work, style.name), name=name)
    if style.oracle == "mapped-caption":
        mapping = colour_map(style.apply)
        guided.caption_maps[name] = lambda caption: map_caption(caption, mapping)
    elif style.oracle == "image":
        guided.image_styles[name] = style.apply
    return name
