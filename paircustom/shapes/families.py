"""Style *families* of the shapes world: parametric styles the base model knows by name, as SDXL knows
"digital art" or "watercolor".

A family is one image function with parameters, e.g. ``outlined`` (outline width, outline colour).  Base training
draws the parameters anew for every image and captions it either with the family word alone
(``... in outlined style``: the prompt then asks for *some* member) or with the member's words before it
(``... in thick white outlined style``: the exact member).  A benchmark pair shows one member; Pair Customization
should learn *which* one from the pair, with the family word as its style words -- the paper's regime, where the
pair pins down which "digital art" the user means.

The family words differ from the benchmark's new-word styles (``styles.STYLES``: "pixelated", "posterized", ...),
which stay unseen in base training so that the new-word section of the benchmark stays honest; the pixelate and
posterize families are therefore named ``blocky`` and ``quantized``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .styles import Style, _edges, pixelate
from .world import COLOURS, SIZE


def _mix(image: np.ndarray, colour, weight) -> np.ndarray:
    """(H, W, 3) uint8 moved towards ``colour`` by ``weight`` (scalar or (H, W, 1)) -> uint8."""
    mixed = image.astype(np.float32) * (1 - weight) + np.asarray(colour, np.float32) * weight
    return np.rint(np.clip(mixed, 0, 255)).astype(np.uint8)


def tint(image: np.ndarray, colour: str, strength: float = 0.45) -> np.ndarray:
    """Every pixel moved ``strength`` of the way to the palette colour ``colour``."""
    return _mix(image, COLOURS[colour], strength)


def _dilate(mask: np.ndarray, width: int) -> np.ndarray:
    """(H, W) bool grown by a ``width`` x ``width`` square (a sliding maximum)."""
    pad = np.pad(mask, ((width, width), (width, width)))
    h, w = mask.shape
    low = -(width // 2)
    return np.any([pad[width + dy : width + dy + h, width + dx : width + dx + w]
                   for dy in range(low, low + width) for dx in range(low, low + width)], axis=0)


def outline(image: np.ndarray, width: int, colour: str) -> np.ndarray:
    """Every colour edge (largest-channel |dx| + |dy| above 60) drawn ``width`` pixels wide in ``colour``."""
    mask = _dilate(_edges(image) > 60, width)  # (H, W)
    return np.where(mask[..., None], np.asarray(COLOURS[colour], np.uint8), image)


def quantize(image: np.ndarray, levels: int) -> np.ndarray:
    """Each channel rounded to the nearest of ``levels`` evenly spaced values from 0 to 255."""
    step = 255 / (levels - 1)
    return np.rint(np.rint(image.astype(np.float32) / step) * step).astype(np.uint8)


def bands(image: np.ndarray, period: int, angle: str) -> np.ndarray:
    """Every other half-period band darkened to 55%; bands run ``horizontal``, ``vertical`` or ``diagonal``."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    position = {"horizontal": y, "vertical": x, "diagonal": (x + y) / np.sqrt(2)}[angle]
    dark = (position // (period / 2)) % 2 == 1  # (H, W)
    return np.rint(image * np.where(dark, 0.55, 1.0)[..., None]).astype(np.uint8)


def vignette(image: np.ndarray, strength: float, colour: str) -> np.ndarray:
    """Corners moved towards ``colour``: weight ``strength`` * ((r - 0.3) / 0.7)^1.5 at radius r (1 at a corner)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    radius = np.hypot(x - SIZE / 2, y - SIZE / 2) / (SIZE / np.sqrt(2))  # (H, W), 0 centre .. 1 corner
    weight = strength * np.clip((radius - 0.3) / 0.7, 0, 1) ** 1.5
    return _mix(image, COLOURS[colour], weight[..., None])


@dataclass(frozen=True)
class Family:
    """A named parametric style: ``options`` lists, per parameter, its words and the value each word stands for."""

    name: str  # the family word, as in "... in <name> style"
    draw: Callable[..., np.ndarray]  # draw(image, **values)
    options: tuple[tuple[str, tuple[tuple[str, object], ...]], ...]  # ((parameter, ((word, value), ...)), ...)

    def member(self, *words: str) -> Member:
        """The member named by one word per parameter, in ``options`` order, e.g. ``member("thick", "white")``."""
        if len(words) != len(self.options):
            raise ValueError(f"{self.name} takes {len(self.options)} words, got {words}")
        values = {}
        for word, (parameter, choices) in zip(words, self.options):
            values[parameter] = dict(choices)[word]
        return Member(self, tuple(words), tuple(values.items()))

    def random_member(self, rng: np.random.Generator) -> Member:
        return self.member(*(choices[rng.integers(len(choices))][0] for _, choices in self.options))


@dataclass(frozen=True)
class Member:
    """One member of a family: its words and parameter values."""

    family: Family
    words: tuple[str, ...]
    values: tuple[tuple[str, object], ...]

    def apply(self, image: np.ndarray) -> np.ndarray:
        return self.family.draw(image, **dict(self.values))

    @property
    def style(self) -> Style:
        """As a ``Style`` named e.g. ``outlined:thick-white`` whose prompt names the exact member."""
        return Style(f"{self.family.name}:{'-'.join(self.words)}", " ".join((*self.words, self.family.name)),
                     self.apply)

    @property
    def family_style(self) -> Style:
        """The same function, prompted with the family word alone (what a pair's style words say)."""
        return Style(self.style.name, self.family.name, self.apply)


_HUES = tuple((name, name) for name in ("red", "green", "blue", "yellow", "cyan", "magenta"))
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("tinted", tint, (("colour", _HUES),)),
    Family("outlined", outline, (("width", (("thin", 2), ("thick", 4))), ("colour", (("black", "black"),
                                                                                      ("white", "white"))))),
    Family("blocky", pixelate, (("block", (("fine", 4), ("medium", 8), ("coarse", 16))),)),
    Family("quantized", quantize, (("levels", (("two", 2), ("three", 3), ("four", 4))),)),
    Family("banded", bands, (("period", (("thin", 12), ("thick", 24))),
                             ("angle", (("horizontal", "horizontal"), ("vertical", "vertical"),
                                        ("diagonal", "diagonal"))))),
    Family("vignetted", vignette, (("strength", (("light", 0.6), ("strong", 1.0))),
                                   ("colour", (("black", "black"), ("white", "white"))))),
)}

# The member each benchmark pair shows (one specific parameter per family).
BENCHMARK_MEMBERS: dict[str, Member] = {
    "tinted": FAMILIES["tinted"].member("magenta"),
    "outlined": FAMILIES["outlined"].member("thick", "white"),
    "blocky": FAMILIES["blocky"].member("coarse"),
    "quantized": FAMILIES["quantized"].member("three"),
    "banded": FAMILIES["banded"].member("thick", "diagonal"),
    "vignetted": FAMILIES["vignetted"].member("strong", "black"),
}

# Words of the family prompts, for tokenizers (each must stay one token).
FAMILY_WORDS = tuple(dict.fromkeys(
    w for f in FAMILIES.values() for w in (f.name, *(word for _, choices in f.options for word, _ in choices))))
