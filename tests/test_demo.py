"""``paircustom demo`` on the embedded model, shortened (the full demo is the README's main job)."""

from types import SimpleNamespace

import pytest
from PIL import Image

from paircustom.demo import DemoConfig, run_demo
from paircustom.shapes.world import Layout
from paircustom.shapes import MODEL_DIR

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "model_index.json").is_file(),
                                reason=f"the embedded shapes model is not in {MODEL_DIR} yet")


def test_demo_writes_a_base_vs_styled_grid(tmp_path, capsys):
    config = DemoConfig(train_steps=4, steps=3, layouts=DemoConfig().layouts[2:4], zoom=1)
    path = run_demo(SimpleNamespace(output_dir=str(tmp_path), quiet=True), config)
    assert Image.open(path).size == (2 * 64, 2 * 64)             # 2 prompts x (base, styled)
    assert (tmp_path / "trio-inverted.safetensors").is_file()
    assert "held out of base training" in capsys.readouterr().out


def test_demo_prompts_start_with_three_held_out_layouts():
    held = [layout.held_out for layout in DemoConfig().layouts]
    assert held == [True, True, True, False, False, False], held
    assert isinstance(DemoConfig().layouts[0], Layout)
