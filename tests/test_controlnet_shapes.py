"""The shapes ControlNet benchmark trains, samples and reports (a few steps; what it measures is in its results)."""

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import controlnet_shapes
from paircustom.shapes import world_version


def test_sketch_condition_is_the_line_sketch_in_unit_range():
    from paircustom.shapes.styles import line_sketch
    from paircustom.shapes.world import render_batch

    images, _ = render_batch(np.random.default_rng(0), 3)
    control = controlnet_shapes.sketches(images)
    assert control.shape == (3, 3, 64, 64) and control.dtype == torch.float32
    assert torch.equal(control[1].permute(1, 2, 0), torch.from_numpy(line_sketch(images[1])).float() / 255)


@pytest.mark.skipif(world_version() != 2, reason="needs the embedded v2 shapes model")
def test_controlnet_benchmark_reports_three_rows_and_a_sheet(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    controlnet_shapes.main(
        [
            "--steps",
            "2",
            "--pool",
            "64",
            "--pair-steps",
            "4",
            "--sampling-steps",
            "4",
            "--out",
            str(out),
            "--work",
            str(work),
        ]
    )
    text = (out / "controlnet-shapes.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split("|")[1].strip() for row in rows][:2] == ["no ControlNet", "ControlNet"], rows
    assert len(rows) == 3 and all(0.0 <= float(cell) <= 1.0 for row in rows for cell in row.split("|")[2:4]), rows
    assert Image.open(out / "controlnet-shapes.png").size == (4 * 4 * 64, 2 * 64)  # 4 columns x 4 scenes, 2 rows
    assert (work / "controlnet" / "config.json").is_file(), "the trained ControlNet is kept in --work for reuse"
