"""Image-space styles of the shapes world: each maps a (64, 64, 3) uint8 RGB array to another.

Two kinds, as for a real text-to-image model:

- ``KNOWN_STYLES`` are named in the base model's training captions (``... in blurry style``), so the base
  model already knows what a style word does, the way SDXL knows "watercolor".
- ``STYLES`` are the benchmark's: never named in base training, each a content-independent function that one
  pair showing several colours and objects determines.  A style image made this way is the exact counterpart
  of its content image, so a pair-trained adapter can be scored against the ground truth f(x).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 weights
BLOCK = 16  # pixelate block side in pixels (two latent cells: the blocks change a visible share of the image)


def _edges(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float: the largest channel's |dx| + |dy| (forward differences)."""
    x = image.astype(np.float32)
    dx = np.abs(np.diff(x, axis=1, append=x[:, -1:]))  # (H, W, 3)
    dy = np.abs(np.diff(x, axis=0, append=x[-1:]))  # (H, W, 3)
    return (dx + dy).max(axis=-1)


def _grey(value: np.ndarray) -> np.ndarray:
    """(H, W) float -> (H, W, 3) uint8 grey image."""
    return np.repeat(np.rint(np.clip(value, 0, 255)).astype(np.uint8)[..., None], 3, axis=-1)


# --- benchmark styles (never named in base training) ---

def inverted(image: np.ndarray) -> np.ndarray:
    """255 - every channel."""
    return 255 - image


def grayscale(image: np.ndarray) -> np.ndarray:
    """BT.601 luma, repeated in the three channels."""
    return _grey(image.astype(np.float32) @ LUMA)


def hue_rotated(image: np.ndarray) -> np.ndarray:
    """Hue + 120 degrees: in HSV this is exactly the channel cycle (r, g, b) -> (b, r, g)."""
    return np.ascontiguousarray(image[..., [2, 0, 1]])


def posterize(image: np.ndarray) -> np.ndarray:
    """Two levels per channel: 0 below 128, 255 from 128 up."""
    return np.where(image >= 128, 255, 0).astype(np.uint8)


def pixelate(image: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Each ``block`` x ``block`` tile (16 by default) replaced by its mean colour."""
    h, w, c = image.shape
    tiles = image.reshape(h // block, block, w // block, block, c).astype(np.float32)
    means = np.rint(tiles.mean(axis=(1, 3))).astype(np.uint8)  # (H / block, W / block, 3)
    return np.repeat(np.repeat(means, block, axis=0), block, axis=1)


def line_sketch(image: np.ndarray) -> np.ndarray:
    """Dark edges on white: 255 - 2 * edge strength, in grey."""
    return _grey(255 - 2 * _edges(image))


# --- known styles (named in base training) ---

def blurry(image: np.ndarray) -> np.ndarray:
    """A 5x5 box blur (edges replicated)."""
    x = np.pad(image.astype(np.float32), ((2, 2), (2, 2), (0, 0)), mode="edge")
    h, w = image.shape[:2]
    total = sum(x[i : i + h, j : j + w] for i in range(5) for j in range(5))
    return np.rint(total / 25).astype(np.uint8)


def faded(image: np.ndarray) -> np.ndarray:
    """Halfway towards a light gray (200)."""
    return np.rint(image * 0.5 + 100).astype(np.uint8)


def striped(image: np.ndarray) -> np.ndarray:
    """Every other band of 4 rows darkened to 60%."""
    rows = (np.arange(image.shape[0]) // 4) % 2 == 1  # (H,)
    factor = np.where(rows, 0.6, 1.0)[:, None, None]
    return np.rint(image * factor).astype(np.uint8)


@dataclass(frozen=True)
class Style:
    """A named style: the words a prompt uses for it and the function that draws it."""

    name: str
    prompt: str  # as in "a photo of a sbu <subject> in <prompt> style"
    apply: Callable[[np.ndarray], np.ndarray]


def _by_name(*styles: Style) -> dict[str, Style]:
    return {style.name: style for style in styles}


STYLES = _by_name(
    Style("inverted", "inverted colours", inverted),
    Style("grayscale", "grayscale", grayscale),
    Style("hue_rotated", "hue rotated", hue_rotated),
    Style("pixelated", "pixelated", pixelate),
    Style("posterized", "posterized", posterize),
    Style("line_sketch", "line sketch", line_sketch),
)
KNOWN_STYLES = _by_name(Style("blurry", "blurry", blurry), Style("faded", "faded", faded),
                        Style("striped", "striped", striped))

# Words of the style prompts; tokenizers must keep each one a single token.
STYLE_WORDS = tuple(dict.fromkeys(w for s in (*STYLES.values(), *KNOWN_STYLES.values()) for w in s.prompt.split()))


def styled_caption(caption: str, style: Style) -> str:
    """``<caption> in <style words> style``, the form every prompt with a style takes."""
    return f"{caption} in {style.prompt} style"
