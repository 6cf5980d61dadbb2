"""Read an image of the shapes world back into (object colour, shape, background colour).

Deterministic and geometric, so it can score any generator:

1. background = the most common nearest-palette colour of the border pixels;
2. object colour = the most common nearest-palette colour (other than the
   background) among pixels clearly away from the background colour;
3. object mask = pixels closer to the object colour than to the background
   (projection onto the segment between the two colours past its middle);
4. shape from the mask's bounding box: a background centre means a ring,
   then the fill ratio separates square (~1), circle (~0.79) and triangle (~0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .world import PALETTE

AWAY_FROM_BACKGROUND = 40.0  # RGB distance for a pixel to vote on the object colour
SQUARE_FILL, CIRCLE_FILL = 0.9, 0.65  # fill-ratio thresholds of the bounding box
HOLE_FRACTION = 0.5  # a ring's centre patch is at least this much background


@dataclass(frozen=True)
class Reading:
    """What the analyzer saw; ``shape`` is None when no object was found."""

    colour: int
    shape: int | None
    background: int


def nearest_palette(pixels: np.ndarray) -> np.ndarray:
    """(..., 3) RGB -> (...) index of the nearest palette colour."""
    distances = np.linalg.norm(pixels[..., None, :].astype(np.float32) - PALETTE, axis=-1)  # (..., 8)
    return distances.argmin(-1)


def _mode(values: np.ndarray, minlength: int) -> int:
    return int(np.bincount(values.ravel(), minlength=minlength).argmax())


def object_mask(image: np.ndarray, colour: int, background: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) bool: pixels nearer ``colour`` than ``background`` along their segment."""
    start, end = PALETTE[background], PALETTE[colour]
    direction = end - start
    t = ((image.astype(np.float32) - start) @ direction) / float(direction @ direction)  # (H, W)
    return t > 0.5


def classify_shape(mask: np.ndarray) -> int | None:
    """(H, W) bool object mask -> shape index (circle 0, square 1, triangle 2, ring 3) or None."""
    rows, cols = np.nonzero(mask)
    if len(rows) < 4:
        return None
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    box = mask[top : bottom + 1, left : right + 1]  # (h, w)
    h, w = box.shape
    # Centre patch of a quarter of the box side; a ring's hole is half the side wide.
    ph, pw = max(h // 4, 1), max(w // 4, 1)
    centre = box[(h - ph) // 2 : (h + ph) // 2 + 1, (w - pw) // 2 : (w + pw) // 2 + 1]
    if 1.0 - centre.mean() >= HOLE_FRACTION:
        return 3
    fill = box.mean()
    if fill >= SQUARE_FILL:
        return 1
    if fill >= CIRCLE_FILL:
        return 0
    return 2


def analyze(image: np.ndarray) -> Reading:
    """(64, 64, 3) uint8 RGB -> ``Reading`` of object colour, shape and background (palette/shape indexes)."""
    image = np.asarray(image)[..., :3]
    colours = len(PALETTE)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])  # (4 * 64, 3)
    background = _mode(nearest_palette(border), colours)
    distance = np.linalg.norm(image.astype(np.float32) - PALETTE[background], axis=-1)  # (H, W)
    candidates = image[distance > AWAY_FROM_BACKGROUND]  # (K, 3)
    votes = np.bincount(nearest_palette(candidates), minlength=colours) if len(candidates) else np.zeros(colours)
    votes[background] = 0
    if votes.sum() == 0:
        return Reading(colour=(background + 1) % colours, shape=None, background=background)
    colour = int(votes.argmax())
    return Reading(colour=colour, shape=classify_shape(object_mask(image, colour, background)), background=background)
