"""How the quality benchmarks score a styled sample against the exact answer f(x_base): fidelity, leakage
(``leakage``) and structure (defined in ``paircustom.bench.quality``'s docstring), and whether the analyzer can
read a style at all.  ``foreground`` and ``iou`` compare layouts for other benchmarks (ControlNet).
"""

from __future__ import annotations

import numpy as np

from ..shapes.analyzer import analyze
from ..shapes.styles import STYLES, Style
from ..shapes.world import render_batch
from .leakage import leakage

FOREGROUND_SHARE, FOREGROUND_MIN = 0.3, 8.0  # see ``foreground``


def _mae(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-sample mean absolute pixel error of (N, H, W, 3) arrays, in 0-255 units -> (N,)."""
    return np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=(1, 2, 3))


def constant_image(target: np.ndarray) -> np.ndarray:
    """Every pixel of every sample the mean colour of ``target`` (N, H, W, 3) uint8: the content-blind reference a
    method must beat to show more than a global colour shift."""
    return np.broadcast_to(np.rint(target.mean(axis=(0, 1, 2))).astype(np.uint8), target.shape)


def fidelity_and_structure(styled: np.ndarray, base: np.ndarray, target: np.ndarray, readable: bool
                           ) -> tuple[float, float | None]:
    """Fidelity of ``styled`` against ``target`` = f(base), pooled; structure: share of samples whose shapes read
    as on ``base`` (those with a readable base), None where the style is not ``readable`` or none is."""
    fidelity = 1.0 - _mae(styled, target).sum() / max(_mae(base, target).sum(), 1e-6)
    structure = None
    if readable:
        pairs = [(shapes_read(s), shapes_read(b)) for s, b in zip(styled, base)]
        kept = [s == b for s, b in pairs if b]
        structure = float(np.mean(kept)) if kept else None
    return float(fidelity), structure


def foreground(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, H, W) bool: where each image differs from its own background, whatever its colours.

    The background is the mean of the border pixels in the most common colour bin (16 levels per channel); a
    pixel is foreground when its largest channel difference from it exceeds ``FOREGROUND_SHARE`` of the image's
    99th-percentile difference (at least ``FOREGROUND_MIN`` grey levels), so a grayscale scene whose objects
    differ from the background by 16 levels still has its objects."""
    x = images.astype(np.float32)
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)    # (N, 4W, 3)
    bins = (border // 16).astype(np.int64) @ np.array([256, 16, 1])                    # (N, 4W) colour bin
    background = np.stack([row[b == np.bincount(b).argmax()].mean(axis=0) for row, b in zip(border, bins)])
    difference = np.abs(x - background[:, None, None]).max(axis=-1)                   # (N, H, W)
    contrast = np.percentile(difference.reshape(len(x), -1), 99, axis=1)            # (N,)
    return difference > np.maximum(FOREGROUND_SHARE * contrast, FOREGROUND_MIN)[:, None, None]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, H, W) bool x2 -> (N,) intersection over union (1 where both are empty)."""
    union = (a | b).sum(axis=(1, 2))
    return np.where(union > 0, (a & b).sum(axis=(1, 2)) / np.maximum(union, 1), 1.0)


def metrics(styled: np.ndarray, base: np.ndarray, target: np.ndarray, pair_images: np.ndarray,
            readable: bool) -> dict:
    """Fidelity, leakage and structure of ``styled`` against ``target`` = f(base) (see the module docstring);
    ``pair_images`` (P, H, W, 3): every training image (content and style image of each training pair), which a
    sample leaks when its layout matches better than its own prompt's (``leakage``)."""
    fidelity, structure = fidelity_and_structure(styled, base, target, readable)
    return dict(fidelity=fidelity, leakage=leakage(styled, base, target, pair_images), structure=structure,
                n=len(styled))


def shapes_read(image: np.ndarray) -> tuple[int, ...]:
    """The shapes the analyzer reads, left to right: the scene's structure, whatever its colours."""
    return tuple(shape for _, shape in analyze(image).objects)


def analyzer_reads(style: str | Style, count: int = 200, seed: int = 0) -> float:
    """Share of rendered scenes pushed through the style (a benchmark style's name, or any ``Style``) whose shapes
    the analyzer reads: can it read this style?"""
    images, scenes = render_batch(np.random.default_rng(seed), count)
    apply = (STYLES[style] if isinstance(style, str) else style).apply
    return float(np.mean([shapes_read(apply(image)) == tuple(s for _, s in scene.layout.objects)
                          for image, scene in zip(images, scenes)]))
