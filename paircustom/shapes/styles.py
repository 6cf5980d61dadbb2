"""Image-space styles for shapes-world pairs: each maps a (64, 64, 3) uint8 RGB array to another.

A style image made this way is an exact counterpart of its content image, so
a pair-trained adapter can be checked against the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 weights
BLOCK = 8  # pixelate block side in pixels


def inverted(image: np.ndarray) -> np.ndarray:
    """255 - every channel."""
    return 255 - image


def grayscale(image: np.ndarray) -> np.ndarray:
    """BT.601 luma, repeated in the three channels."""
    luma = np.rint(image.astype(np.float32) @ LUMA).astype(np.uint8)  # (H, W)
    return np.repeat(luma[..., None], 3, axis=-1)


def posterize(image: np.ndarray) -> np.ndarray:
    """Two levels per channel: 0 below 128, 255 from 128 up."""
    return np.where(image >= 128, 255, 0).astype(np.uint8)


def hue_rotated(image: np.ndarray) -> np.ndarray:
    """Hue + 120 degrees: in HSV this is exactly the channel cycle (r, g, b) -> (b, r, g)."""
    return np.ascontiguousarray(image[..., [2, 0, 1]])


def pixelate(image: np.ndarray) -> np.ndarray:
    """Each 8x8 block replaced by its mean colour."""
    h, w, c = image.shape
    blocks = image.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK, c).astype(np.float32)
    means = np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)  # (H / 8, W / 8, 3)
    return np.repeat(np.repeat(means, BLOCK, axis=0), BLOCK, axis=1)


def line_sketch(image: np.ndarray) -> np.ndarray:
    """Dark edges on white: 255 - 2 * (largest channel's |dx| + |dy|), in grey."""
    x = image.astype(np.float32)
    dx = np.abs(np.diff(x, axis=1, append=x[:, -1:]))  # (H, W, 3)
    dy = np.abs(np.diff(x, axis=0, append=x[-1:]))  # (H, W, 3)
    edges = (dx + dy).max(axis=-1)  # (H, W)
    value = (255 - np.clip(2 * edges, 0, 255)).astype(np.uint8)
    return np.repeat(value[..., None], 3, axis=-1)


@dataclass(frozen=True)
class Style:
    """A named style: the words a prompt uses for it and the function that draws it."""

    name: str
    prompt: str  # as in "a photo of a sbu <subject> in <prompt> style"
    apply: Callable[[np.ndarray], np.ndarray]


STYLES = {
    style.name: style
    for style in (
        Style("inverted", "inverted colours", inverted),
        Style("grayscale", "grayscale", grayscale),
        Style("posterized", "posterized", posterize),
        Style("hue_rotated", "hue rotated", hue_rotated),
        Style("pixelated", "pixelated", pixelate),
        Style("line_sketch", "line sketch", line_sketch),
    )
}
