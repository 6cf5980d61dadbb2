"""The two sections of the quality benchmark (``paircustom.bench.quality``) and the training pairs of each style.

    families    the six style families the base model knows by name (``paircustom.shapes.families``); each pair
                shows one member (``BENCHMARK_MEMBERS``) and is trained with the family word alone as its style
                words (" in outlined style"); every sample is scored against that exact member.  The paper's
                regime: SDXL knows "digital art", the pair says which digital art.
    new-words   the styles the base model has never heard of (``paircustom.shapes.styles.STYLES``), trained under
                their new words (" in inverted colours style"); the base model's known styles (``KNOWN_STYLES``)
                may be named here too, trained under their own known words.

Each style of a section is a ``BenchStyle``: the words its pair is trained with, the exact function f every sample
is scored against, and its oracle (``paircustom.bench.oracle``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..shapes.examples import EXAMPLES, MORE_SCENES
from ..shapes.families import BENCHMARK_MEMBERS
from ..shapes.styles import KNOWN_STYLES, STYLES
from ..shapes.world import Scene, render
from ..training.trainer import TrainConfig, train_pair
from .oracle import colour_map

SECTIONS = ("families", "new-words")


@dataclass(frozen=True)
class BenchStyle:
    """One benchmark style: how its pair is captioned, what it is scored against, and its oracle."""

    name: str                     # the key in its section, e.g. "outlined" or "inverted"
    words: str                    # style words of the pair's caption: "... in <words> style"
    apply: Callable[[np.ndarray], np.ndarray]   # f: (64, 64, 3) uint8 -> the exact styled image
    oracle: str                   # "words" (the base model's own words for f), "mapped-caption", "image"
    oracle_words: str | None = None   # for "words": e.g. "thick white outlined"


def bench_style(section: str, name: str) -> BenchStyle:
    """The style ``name`` of ``section`` (a key of BENCHMARK_MEMBERS, or of STYLES / KNOWN_STYLES)."""
    if section == "families":
        member = BENCHMARK_MEMBERS[name]
        return BenchStyle(name, member.family.name, member.apply, "words", member.style.prompt)
    if name in KNOWN_STYLES:
        style = KNOWN_STYLES[name]
        return BenchStyle(name, style.prompt, style.apply, "words", style.prompt)
    style = STYLES[name]
    return BenchStyle(name, style.prompt, style.apply, "image" if colour_map(style.apply) is None else "mapped-caption")


def section_styles(section: str) -> tuple[str, ...]:
    """Every style of ``section``, in table order."""
    return tuple(BENCHMARK_MEMBERS) if section == "families" else tuple(STYLES)


# Command-line presets (``quality.QualityConfig`` overrides) of each section.  The family section (the default):
# every family, the paper's baselines and the oracle; fewer training captions and seeds than the new-word section
# so that it fits ~20-25 CPU minutes, and style scales from the default 3 upwards, since a style term's change is
# left partly done at 3 even for the oracle (docs/results.md).  FAMILY_QUICK: the family section's smoke run (--quick).
FAMILY_METHODS = ("prompt-only", "oracle", "pair-sg", "db-lora", "slider")
PRESETS = {"families": dict(section="families", styles=section_styles("families"), methods=FAMILY_METHODS,
                            training=2, seeds=(0, 1, 2), style_scales=(3.0, 5.0, 7.0), name="quality-families"),
           "new-words": dict(section="new-words")}
FAMILY_QUICK = dict(styles=("outlined",), held_out=1, training=1, seeds=(0,), steps=8, style_scales=(3.0,),
                    lora_scales=(1.0,), max_steps=12, style_start_step=4, name="quality-families-quick")


@dataclass(frozen=True)
class BenchPair:
    """A training pair: a fixed scene and f(it), captioned with the style's words."""

    name: str
    scene: Scene
    style: BenchStyle

    @property
    def subject(self) -> str:
        """The caption without "a photo of a ", as pair training's ``subject``."""
        return self.scene.layout.caption.removeprefix("a photo of a ")

    @property
    def style_prompt(self) -> str:
        return self.style.words

    def images(self) -> tuple[np.ndarray, np.ndarray]:
        """(content, style), each (64, 64, 3) uint8."""
        content = render(self.scene)
        return content, self.style.apply(content)


def training_pairs(config, style: str, count: int = 1) -> list[BenchPair]:
    """The first ``count`` training pairs of ``style`` (of ``config.section``): the benchmark's pair, then
    ``MORE_SCENES``."""
    scenes = [EXAMPLES[config.pair].scene, *MORE_SCENES][:count]
    return [BenchPair(f"pair{k}", scene, bench_style(config.section, style)) for k, scene in enumerate(scenes)]


def pair_images(config, style: str, count: int) -> np.ndarray:
    """(2 * count, 64, 64, 3) uint8: content and style image of each of the first ``count`` training pairs."""
    return np.stack([image for pair in training_pairs(config, style, count) for image in pair.images()])


def train_style(config, style: str, method, work: Path) -> Path:
    """Train (or reuse) the style file of one (style, training variant) on the fixed pair(s)."""
    variant = "-".join(f"{k}={v}" for k, v in method.train) or "pair"
    variant += f"-pairs={method.pairs}" if method.pairs > 1 else ""
    steps = f"{config.max_steps or 'default'}-{config.style_start_step or 'default'}"
    tuned = "".join(f"-{k}={'+'.join(v) if isinstance(v, tuple) else v}" for k, v in config.train)
    output = work / f"{style}-{variant}-{steps}{tuned}.safetensors"
    if output.is_file():
        return output
    pairs = training_pairs(config, style, method.pairs)
    paths = []
    for k, pair in enumerate(pairs):
        paths.append((work / f"{style}-content{k or ''}.png", work / f"{style}-style{k or ''}.png"))
        for path, image in zip(paths[-1], pair.images()):
            Image.fromarray(image).save(path)
    train_pair(TrainConfig(str(paths[0][0]), str(paths[0][1]), subject=pairs[0].subject,
                           extra_pairs=tuple((str(c), str(s)) for c, s in paths[1:]),
                           pair_subjects=tuple(pair.subject for pair in pairs[1:]),
                           style=pairs[0].style_prompt, model=config.model, output=str(output), overwrite=True,
                           max_steps=config.max_steps, style_start_step=config.style_start_step, progress=False,
                           **{**dict(config.train), **dict(method.train)}))
    return output
