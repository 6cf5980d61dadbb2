"""The smoothness benchmark's numbers (``bench.smoothness_metrics``, issue 32) on paths and grids whose answers are
known by construction: an even straight path, one jump, a detour; a blended cell at the pixel mix of A and B."""

import numpy as np
import pytest

from paircustom.bench.smoothness_metrics import blend_metrics, path_metrics

K, N, SIDE = 5, 2, 8  # strengths, samples, pixels


def _images(values) -> np.ndarray:
    """(k, N, SIDE, SIDE, 3) float: image i of every sample filled with values[i] (a grey level)."""
    return np.broadcast_to(np.asarray(values, np.float32)[:, None, None, None, None], (len(values), N, SIDE, SIDE, 3))


def _detour() -> np.ndarray:
    """A path from black to white whose middle image is half white, half black (off the grey line between them)."""
    path = _images(np.linspace(0, 200, K)).copy()
    path[K // 2, :, :, : SIDE // 2] = 200
    path[K // 2, :, :, SIDE // 2 :] = 0
    return path


@pytest.mark.parametrize(
    "name, path, step, stray",
    [
        ("even straight path", _images(np.linspace(0, 200, K)), 1 / (K - 1), 0.0),
        ("all change in one step", _images([0, 0, 0, 0, 200]), 1.0, 0.0),
        ("uneven but straight", _images([0, 20, 40, 60, 200]), 140 / 200, 0.0),
        ("a detour through a half-white image", _detour(), None, 0.5),
    ],
)
def test_path_metrics_on_paths_with_known_answers(name, path, step, stray):
    metrics = path_metrics(path, readable=False)
    if step is not None:
        assert metrics["largest_step"] == pytest.approx(step, abs=1e-4), f"{name}: largest step {metrics}"
    assert metrics["stray"] == pytest.approx(stray, abs=1e-4), f"{name}: stray {metrics}"
    assert metrics["change"] == pytest.approx(200, abs=1e-3), f"{name}: RMS change from end to end {metrics}"
    assert metrics["structure"] is None, "structure is only scored for styles the analyzer reads"


def test_blend_metrics_place_cells_on_the_segment_from_a_to_b():
    rng = np.random.default_rng(0)
    a, b = (rng.uniform(0, 255, (N, SIDE, SIDE, 3)).astype(np.float32) for _ in range(2))
    off_line = (a + b) / 2 + rng.normal(0, 20, a.shape).astype(np.float32)
    cells = {"base": np.zeros_like(a), "A": a, "B": b, "mix": (a + b) / 2, "near B": 0.1 * a + 0.9 * b, "off": off_line}
    rows = {row["cell"]: row for row in blend_metrics(cells, {"pixel mix": (a + b) / 2})}
    assert list(rows) == list(cells), "every cell gets a row, the references (base, A, B) first"
    for cell, t in (("A", 0.0), ("B", 1.0), ("mix", 0.5), ("near B", 0.9)):
        assert rows[cell]["t"] == pytest.approx(t, abs=1e-4), f"{cell}: projection on A -> B {rows[cell]}"
        assert rows[cell]["off_segment"] == pytest.approx(0, abs=1e-4), f"{cell} lies on the segment {rows[cell]}"
    assert rows["mix"]["to pixel mix"] == pytest.approx(0, abs=1e-4), "the mix cell is the pixel mix"
    assert rows["A"]["to A"] == 0 and rows["B"]["to B"] == 0, "A and B are at distance 0 from themselves"
    assert rows["off"]["off_segment"] > 0.1, f"noise of 20 levels puts a cell off the segment: {rows['off']}"
