"""The numbers of the smoothness benchmark (``smoothness``, which defines them): a sweep's largest step, its stray
from the straight path and the structure it keeps; where a blended cell lies against the single styles."""

from __future__ import annotations

import numpy as np

from .scores import shapes_read


def rms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS pixel distance over the last three axes of float arrays (..., H, W, 3) -> (...)."""
    return np.sqrt(((a - b) ** 2).mean(axis=(-3, -2, -1)))


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def path_metrics(path: np.ndarray, readable: bool) -> dict:
    """``path`` (k, N, H, W, 3) float: the images of N samples along k strengths -> the 1-D metrics (means)."""
    steps = rms(path[1:], path[:-1])  # (k-1, N)
    share = steps.max(axis=0) / np.maximum(steps.sum(axis=0), 1e-6)  # (N,)
    start, chord = path[0], path[-1] - path[0]  # (N, H, W, 3)
    length = np.maximum((chord**2).sum(axis=(-3, -2, -1)), 1e-6)  # (N,)
    t = np.clip(((path - start) * chord).sum(axis=(-3, -2, -1)) / length, 0, 1)  # (k, N)
    stray = rms(path, start + t[..., None, None, None] * chord).max(axis=0) / np.maximum(rms(path[-1], start), 1e-6)
    result = dict(
        largest_step=float(share.mean()),
        stray=float(stray.mean()),
        change=float(rms(path[-1], start).mean()),
        structure=None,
    )
    if readable:
        reads = [[shapes_read(image.round().astype(np.uint8)) for image in row] for row in path]  # [k][N]
        kept = [reads[i][n] == reads[0][n] for n in range(path.shape[1]) if reads[0][n] for i in range(1, len(path))]
        result["structure"] = float(np.mean(kept)) if kept else None
    return result


def blend_metrics(cells: dict, targets: dict) -> list[dict]:
    """Each cell (the base image, the single styles A and B, then the blended ones) against the ground truths and
    the segment from A to B; the first three rows are the references the blended cells are read against."""
    a, b = cells["A"], cells["B"]
    rows = []
    for name, x in cells.items():
        ab = b - a
        t = ((x - a) * ab).sum(axis=(-3, -2, -1)) / np.maximum((ab**2).sum(axis=(-3, -2, -1)), 1e-6)  # (N,)
        off = rms(x, a + np.clip(t, 0, 1)[:, None, None, None] * ab) / np.maximum(rms(a, b), 1e-6)
        rows.append(
            dict(
                cell=name,
                **{f"to {k}": mae(x, v) for k, v in targets.items()},
                **{"to A": mae(x, a), "to B": mae(x, b)},
                t=float(t.mean()),
                off_segment=float(off.mean()),
            )
        )
    return rows
