"""Leakage: does a sample copy the training pair's scene instead of drawing its own prompt's?

The paper's content/style separation (Sec. 3) exists so that the style adapter does not carry the pair's content
into other prompts.  A sample *leaks* when its layout is explained by a training image (the content or the style
image of any training pair) clearly better than by its own prompt's images (x_base or f(x_base)):

    u(s, r)  = share of r's pixel variance that no affine colour map of s explains
             = min_M |r - [s, 1] M|² / |r - mean(r)|²      (M: 4 x 3, least squares over the 64 x 64 pixels)
    leaks(s) = min_pairs u(s, p) + LEAK_MARGIN < min(u(s, x_base), u(s, f(x_base)))

``u`` compares *layouts*, not colours: any per-pixel colour change that is an affine function of the colour
(inversion, hue rotation, grayscale, a tint, a partly applied colour style: every mix of x and f(x) for these) is
absorbed by ``M``, so a half-styled sample is as close to its own prompt as a fully styled one.  A copy of a
training image scores u = 0 against it; x_base and f(x_base) score 0 against themselves, so neither can leak.
The replaced metric (foreground intersection over union against the style images only) counted 25-50% of
samples drawn with a perfect style term as leaks: their foreground mask moved more than their layout did.
"""

from __future__ import annotations

import numpy as np

LEAK_MARGIN = 0.25   # u must be this much lower against a training image than against the prompt's own images
RIDGE = 1e-3         # relative ridge on the normal equations: a flat sample explains nothing, without NaNs


def unexplained(samples: np.ndarray, references: np.ndarray) -> np.ndarray:
    """``u`` of the module docstring for each (sample, reference): (N, H, W, 3) uint8 x2 (``references`` may be
    one (H, W, 3) image for all) -> (N,) in [0, 1]."""
    n = len(samples)
    x = samples.reshape(n, -1, 3).astype(np.float64) / 255                            # (N, P, 3)
    x = np.concatenate([x, np.ones_like(x[..., :1])], axis=-1)                          # (N, P, 4)
    y = np.broadcast_to(references, samples.shape).reshape(n, -1, 3).astype(np.float64) / 255   # (N, P, 3)
    gram = x.transpose(0, 2, 1) @ x                                                     # (N, 4, 4)
    gram += RIDGE * np.trace(gram, axis1=1, axis2=2)[:, None, None] / 4 * np.eye(4)
    fit = np.linalg.solve(gram, x.transpose(0, 2, 1) @ y)                               # (N, 4, 3)
    residual = ((y - x @ fit) ** 2).sum(axis=(1, 2))                                    # (N,)
    spread = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=(1, 2))                # (N,)
    return np.clip(residual / np.maximum(spread, 1e-9), 0.0, 1.0)


def leaks(samples: np.ndarray, base: np.ndarray, target: np.ndarray, pair_images: np.ndarray) -> np.ndarray:
    """(N,) bool: which samples leak (module docstring); ``base`` = x_base and ``target`` = f(x_base), (N, H, W, 3)
    each; ``pair_images`` (P, H, W, 3): every training image (content and style of every training pair)."""
    own = np.minimum(unexplained(samples, base), unexplained(samples, target))              # (N,)
    to_pairs = np.min([unexplained(samples, image) for image in pair_images], axis=0)     # (N,)
    return to_pairs + LEAK_MARGIN < own


def leakage(samples: np.ndarray, base: np.ndarray, target: np.ndarray, pair_images: np.ndarray) -> float:
    """Share of ``samples`` that leak."""
    return float(leaks(samples, base, target, pair_images).mean())
