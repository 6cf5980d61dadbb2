"""``paircustom demo`` on the embedded model, shortened (the full demo is the README's main job)."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from paircustom.demo import DemoConfig, run_demo
from paircustom.shapes import MODEL_DIR
from paircustom.shapes.examples import EXAMPLES
from paircustom.shapes.world import Layout

pytestmark = pytest.mark.skipif(
    not (MODEL_DIR / "model_index.json").is_file(), reason=f"the embedded shapes model is not in {MODEL_DIR} yet"
)


def test_demo_writes_a_labelled_four_column_grid(tmp_path, capsys):
    """Two prompts (one held out): a label strip, then rows of (base, from the pair, exact member, family word alone);
    the exact column is the member's own function of the base column, and both fidelities are printed per split."""
    config = DemoConfig(train_steps=4, steps=3, layouts=DemoConfig().layouts[2:4], zoom=1, font_size=12)
    path = run_demo(SimpleNamespace(output_dir=str(tmp_path), quiet=True), config)
    sheet = np.asarray(Image.open(path).convert("RGB"))
    top = config.font_size + 8
    assert sheet.shape == (top + 2 * 64, 4 * 64, 3)  # labels + 2 prompts x 4 columns
    assert (sheet[:top] < 128).any(), "no label text drawn above the columns"
    example = EXAMPLES[config.example]
    for row in range(2):
        base, styled, exact, words = (
            sheet[top + 64 * row : top + 64 * (row + 1), 64 * col : 64 * (col + 1)] for col in range(4)
        )
        assert np.array_equal(exact, example.look.apply(base)), f"row {row}"
        assert not np.array_equal(words, base), f"row {row}: the family word changed nothing"
    assert (tmp_path / f"{config.example}-{example.style}.safetensors").is_file()
    out = capsys.readouterr().out
    assert "held out of base training" in out
    scores = re.findall(r"([+-]\d\.\d\d) on the (held-out|training) prompts", out)
    assert [split for _, split in scores] == ["held-out", "training"] * 2, out


def test_demo_pair_is_a_family_member_prompted_by_the_family_word():
    from paircustom.shapes.families import BENCHMARK_MEMBERS

    example = EXAMPLES[DemoConfig().example]
    assert example.style in BENCHMARK_MEMBERS and example.style_prompt == example.style
    content, style = example.images()
    assert np.array_equal(style, BENCHMARK_MEMBERS[example.style].apply(content))


def test_demo_prompts_start_with_three_held_out_layouts():
    held = [layout.held_out for layout in DemoConfig().layouts]
    assert held == [True, True, True, False, False, False], held
    assert isinstance(DemoConfig().layouts[0], Layout)
