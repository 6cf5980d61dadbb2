"""Why shapes fall short: experiments/shape_words.py (fill cue, shape-word swap losses, text states) and
shapes.evaluate --by-shape (which shape is read for each prompted one); tiny runs on the shipped model."""

import numpy as np
import pytest

from experiments import shape_words
from paircustom.shapes.world import SHAPES, Scene, Thing, render


@pytest.mark.parametrize("shape, low, high", [(0, 0.7, 0.85), (1, 0.95, 1.0), (2, 0.45, 0.65)])
def test_fill_ratio_of_a_rendered_object_is_its_shapes(shape, low, high):
    module = shape_words
    image = render(Scene(7, (Thing(2, shape, 16, 16, 28),)))
    fill = module.fill_ratio(image, 2)
    assert low <= fill <= high, f"{SHAPES[shape]}: fill {fill:.3f} outside [{low}, {high}]"
    assert module.fill_ratio(image, 5) is None  # a colour that is not drawn


def test_report_has_a_fill_a_loss_and_a_similarity_row_per_shape(tmp_path):
    module = shape_words
    out = tmp_path / "words.md"
    report = module.main(["--scenes", "1", "--draws", "1", "--steps", "2", "--threads", "1", "--out", str(out)])
    rows = [
        line
        for line in report.splitlines()
        if line.startswith("| ") and not line.startswith("| prompted") and not line.startswith("| shape")
    ]
    assert [row.split(" | ")[0][2:] for row in rows] == [*SHAPES] * 3, rows
    losses = [[float(cell) for cell in row.strip(" |").split(" | ")[1:] if cell != "-"] for row in rows[4:8]]
    assert all(len(cells) == 4 and all(np.isfinite(cells)) and min(cells) > 0 for cells in losses), losses
    similarity = np.array([[float(cell) for cell in row.strip(" |").split(" | ")[1:]] for row in rows[8:]])
    assert np.allclose(np.diag(similarity), 1.0, atol=0.006) and np.allclose(similarity, similarity.T), similarity
    assert similarity.min() < 0.99, f"the shape words are not all one state: {similarity}"
    assert out.read_text().startswith("# Does the base model")


def test_evaluate_by_shape_prints_a_confusion_table_per_split(capsys):
    from paircustom.shapes import evaluate

    evaluate.main(["--layouts", "2", "--seeds", "1", "--steps", "2", "--by-shape"])
    out = capsys.readouterr().out
    assert out.count("| prompted \\ read | circle | square | triangle | ring | none | right |") == 2, out
    assert "\nheld-out:\n" in out and "\ntraining:\n" in out, out
    counts = [
        sum(int(n) for n in line.split(" | ")[1:6])
        for line in out.splitlines()
        if line.startswith(("| circle", "| square", "| triangle", "| ring"))
    ]
    assert sum(counts) == 2 * (1 + 2), f"one row per prompted object (layouts of 1 and 2 objects): {counts}"
