"""Read an image of the shapes world back into a ``Layout``: background, then (colour, shape) left to right.

Deterministic and geometric, so it can score any generator:

1. background = the most common nearest-palette colour of the border pixels;
2. each other palette colour that is the nearest colour (within ``MAX_DISTANCE``) of at least ``MIN_INTERIOR``
   interior pixels is one object; anti-aliased rims between two colours (which can look gray) have no interior;
3. the object's shape comes from its mask's bounding box: a hollow centre means a ring, then the fill
   ratio separates square (~1), circle (~0.79) and triangle (~0.5);
4. objects are ordered by the mean x of their masks.
"""

from __future__ import annotations

import numpy as np

from .world import PALETTE, Layout

MAX_DISTANCE = 60.0  # RGB distance within which a pixel counts for its nearest palette colour
MIN_INTERIOR = 16  # pixels an object needs whose 4 neighbours share its colour (the smallest triangle has ~80)
SQUARE_FILL, CIRCLE_FILL = 0.9, 0.65  # fill-ratio thresholds of the bounding box
HOLE_FRACTION = 0.5  # a ring's centre patch is at least this much not-object


def nearest_palette(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) RGB -> ((...) index of the nearest palette colour, (...) distance to it)."""
    distances = np.linalg.norm(pixels[..., None, :].astype(np.float32) - PALETTE, axis=-1)  # (..., 9)
    return distances.argmin(-1), distances.min(-1)


def _interior(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) bool: pixels of ``mask`` whose four neighbours are in it too."""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return inner


def object_mask(index: np.ndarray, distance: np.ndarray, colour: int) -> np.ndarray | None:
    """``colour``'s object in an image read by ``nearest_palette`` -> (H, W) bool mask, or None when fewer than
    ``MIN_INTERIOR`` of its pixels are interior (rims, specks)."""
    mask = (index == colour) & (distance < MAX_DISTANCE)  # (H, W)
    inner = _interior(mask)
    if inner.sum() < MIN_INTERIOR:
        return None
    rows, cols = np.nonzero(inner)  # keep the mask near the object: rims elsewhere may share its colour
    near = np.zeros_like(mask)
    near[max(rows.min() - 1, 0) : rows.max() + 2, max(cols.min() - 1, 0) : cols.max() + 2] = True
    return mask & near


def bounding_box(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool mask -> (h, w) its part inside its bounding box; ``.mean()`` is the fill ratio."""
    rows, cols = np.nonzero(mask)
    return mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def classify_shape(mask: np.ndarray) -> int | None:
    """(H, W) bool object mask -> shape index (circle 0, square 1, triangle 2, ring 3) or None."""
    if mask.sum() < 4:
        return None
    box = bounding_box(mask)  # (h, w)
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


def analyze(image: np.ndarray) -> Layout:
    """(64, 64, 3) uint8 RGB -> the ``Layout`` read from it (objects whose shape is unreadable get shape -1)."""
    image = np.asarray(image)[..., :3]
    index, distance = nearest_palette(image)  # (H, W) each
    border = np.concatenate([index[0], index[-1], index[:, 0], index[:, -1]])
    background = int(np.bincount(border, minlength=len(PALETTE)).argmax())
    found = []
    for colour in range(len(PALETTE)):
        mask = None if colour == background else object_mask(index, distance, colour)  # (H, W)
        if mask is None:
            continue
        shape = classify_shape(mask)
        found.append((float(np.nonzero(mask)[1].mean()), colour, -1 if shape is None else shape))
    return Layout(background, tuple((colour, shape) for _, colour, shape in sorted(found)))
