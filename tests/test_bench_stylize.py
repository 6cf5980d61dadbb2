"""Stylising benchmark (issue 13): its score on exact answers, its scenes, and a quick run on the v2 model."""

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from paircustom.bench.stylize import QUICK, StylizeBenchConfig, run, scenes, score
from paircustom.shapes import world_version
from paircustom.shapes.examples import EXAMPLES
from paircustom.shapes.styles import STYLES
from paircustom.shapes.world import render


@pytest.mark.parametrize("style", ["inverted", "grayscale", "line_sketch"])
def test_score_is_one_for_the_exact_answer_and_zero_for_the_unchanged_image(style):
    chosen = scenes(StylizeBenchConfig(scenes=4))
    images = np.stack([render(scene) for scene in chosen])
    targets = np.stack([STYLES[style].apply(image) for image in images])
    exact, unchanged = score(targets, images, targets, readable=True), score(images, images, targets, readable=True)
    assert exact["fidelity"] == pytest.approx(1.0) and unchanged["fidelity"] == pytest.approx(0.0, abs=1e-6)
    assert unchanged["structure"] == 1.0, "x itself keeps its own structure"
    assert score(targets, images, targets, readable=False)["structure"] is None


def test_scenes_alternate_training_and_held_out_and_skip_the_pair():
    chosen = scenes(StylizeBenchConfig(scenes=6))
    assert [scene.layout.held_out for scene in chosen] == [False, True] * 3
    assert EXAMPLES["trio"].scene.layout not in [scene.layout for scene in chosen]
    assert chosen == scenes(StylizeBenchConfig(scenes=6)), "a fixed seed draws the same scenes"


@pytest.mark.skipif(
    world_version() != 2, reason="needs the embedded v2 shapes model (python -m paircustom.shapes.train)"
)
def test_quick_stylize_benchmark_scores_each_edit_with_and_without_the_style(tmp_path):
    """Every (method, strength) is scored, and the style changes the edit. Whether it moves the edit towards f(x)
    is what the benchmark measures, not what this test asserts: on the shipped model it does not yet
    (docs/results.md)."""
    config = replace(StylizeBenchConfig(**QUICK), out=str(tmp_path), work=str(tmp_path / "work"))
    results = run(config, log=lambda message: None)
    assert {(r["method"], r["strength"]) for r in results["records"]} == {
        (m, s) for m in config.methods for s in config.strengths
    }
    assert all(abs(r["fidelity"] - r["fidelity_without_style"]) > 1e-3 for r in results["records"]), results["records"]
    images = np.stack([render(scene) for scene in scenes(config)]).astype(np.float64)
    targets = np.stack([STYLES["inverted"].apply(image) for image in images.astype(np.uint8)]).astype(np.float64)
    mean_colour = np.rint(targets.reshape(-1, 3).mean(axis=0))
    expected = 1 - np.abs(mean_colour - targets).sum() / np.abs(images - targets).sum()
    assert abs(results["constant"]["inverted"] - expected) < 1e-4, (results["constant"], expected)
    assert f"| inverted | sdedit | {expected:+.2f} |" in (tmp_path / "stylize-quick.md").read_text()
    assert (tmp_path / "stylize-quick.md").is_file() and (tmp_path / "stylize-quick.json").is_file()
    sheet = Image.open(tmp_path / "stylize-quick-samples.png")  # one style; per scene x, sdedit, inversion, f(x)
    assert sheet.size == (64 * 4 * config.scenes, 64), sheet.size
