"""``paircustom demo`` on the embedded model, shortened (the full demo is the README's main job)."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from paircustom.demo import DemoConfig, run_demo
from paircustom.shapes import MODEL_DIR
from paircustom.shapes.examples import EXAMPLES
from paircustom.shapes.styles import STYLES
from paircustom.shapes.world import Layout

pytestmark = pytest.mark.skipif(
    not (MODEL_DIR / "model_index.json").is_file(), reason=f"the embedded shapes model is not in {MODEL_DIR} yet"
)


def test_demo_writes_a_base_vs_styled_vs_exact_grid(tmp_path, capsys):
    """Two prompts (one held out): rows of (base, styled, f(base)), the last column the style's own function of the
    first, and the benchmark's fidelity of the middle column printed per split."""
    config = DemoConfig(train_steps=4, steps=3, layouts=DemoConfig().layouts[2:4], zoom=1)
    path = run_demo(SimpleNamespace(output_dir=str(tmp_path), quiet=True), config)
    sheet = np.asarray(Image.open(path).convert("RGB"))
    assert sheet.shape == (2 * 64, 3 * 64, 3)  # 2 prompts x (base, styled, exact)
    for row in range(2):
        base, styled, exact = (sheet[64 * row : 64 * (row + 1), 64 * col : 64 * (col + 1)] for col in range(3))
        assert np.array_equal(exact, STYLES[EXAMPLES[config.example].style].apply(base)), f"row {row}"
    assert (tmp_path / "trio_posterized-posterized.safetensors").is_file()
    out = capsys.readouterr().out
    assert "held out of base training" in out
    scores = re.findall(r"([+-]\d\.\d\d) on the (held-out|training) prompts", out)
    assert [split for _, split in scores] == ["held-out", "training"], out


def test_demo_prompts_start_with_three_held_out_layouts():
    held = [layout.held_out for layout in DemoConfig().layouts]
    assert held == [True, True, True, False, False, False], held
    assert isinstance(DemoConfig().layouts[0], Layout)
