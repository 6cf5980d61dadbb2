"""The shapes world: renderer, analyzer, held-out rule, styles, examples and the embedded model."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from paircustom.shapes import MODEL_DIR, load_shapes_pipeline
from paircustom.shapes.analyzer import analyze
from paircustom.shapes.evaluate import generate, score
from paircustom.shapes.examples import EXAMPLES, example_paths
from paircustom.shapes.styles import STYLES, grayscale, hue_rotated, inverted, line_sketch, pixelate, posterize
from paircustom.shapes.world import (
    COLOURS, SHAPES, Scene, all_combos, caption, held_out_combos, is_held_out, random_scene, render, render_batch,
    training_combos,
)

RED, BLUE = COLOURS["red"], COLOURS["blue"]


def test_renderer_analyzer_round_trip_is_exact():
    rng = np.random.default_rng(123)
    images, scenes = render_batch(rng, 600, all_combos())
    readings = [analyze(image) for image in images]
    wrong = [(s, r) for s, r in zip(scenes, readings) if (r.colour, r.shape, r.background) != s.combo]
    assert not wrong, wrong[:3]


def test_extreme_sizes_and_positions_read_back():
    for combo in all_combos()[::7]:
        for size in (0.35 * 64, 0.65 * 64):
            for corner in (2.0, 62.0 - size):
                reading = analyze(render(Scene(*combo, left=corner, top=corner, size=size)))
                assert (reading.colour, reading.shape, reading.background) == combo


def test_render_pixels():
    image = render(Scene(0, 0, 2, left=16, top=16, size=32))  # red circle on blue
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == BLUE and tuple(image[32, 32]) == RED
    ring = render(Scene(0, 3, 2, left=16, top=16, size=32))
    assert tuple(ring[32, 32]) == BLUE and tuple(ring[32, 20]) == RED
    # Anti-aliased: the circle's rim holds colours between red and blue.
    assert len({tuple(p) for p in image.reshape(-1, 3)}) > 2


def test_held_out_rule_and_sampler():
    assert len(all_combos()) == 8 * 7 * 4
    assert len(held_out_combos()) == 32 and len(training_combos()) == 224 - 32
    assert all((c + s + b) % 7 == 0 for c, s, b in held_out_combos())
    assert is_held_out(0, 3, 4) and not is_held_out(0, 0, 2)
    rng = np.random.default_rng(0)
    scenes = [random_scene(rng) for _ in range(500)]
    assert not any(is_held_out(*scene.combo) for scene in scenes)
    assert all(0.35 * 64 <= s.size <= 0.65 * 64 and s.left >= 2 and s.left + s.size <= 62 for s in scenes)


def test_caption():
    assert caption(0, 0, 2) == "a photo of a red circle on a blue background"
    assert caption(7, 3, 6) == "a photo of a black ring on a white background"
    assert SHAPES == ("circle", "square", "triangle", "ring")


def test_styles_shapes_and_dtypes():
    image = render(Scene(3, 2, 4, left=10, top=12, size=30))
    for style in STYLES.values():
        out = style.apply(image)
        assert out.shape == (64, 64, 3) and out.dtype == np.uint8, style.name
    assert {s.prompt for s in STYLES.values()} >= {"inverted colours", "line sketch", "grayscale"}


def test_style_pixels():
    red = np.full((64, 64, 3), RED, dtype=np.uint8)
    assert tuple(inverted(red)[5, 5]) == (35, 215, 215)
    assert tuple(grayscale(red)[5, 5]) == (94, 94, 94)  # 0.299 * 220 + 0.587 * 40 + 0.114 * 40 = 93.8
    assert tuple(posterize(red)[5, 5]) == (255, 0, 0)
    assert tuple(hue_rotated(red)[5, 5]) == (40, 220, 40)  # red -> green
    assert (pixelate(red) == red).all() and (line_sketch(red) == 255).all()
    stripes = np.zeros((64, 64, 3), dtype=np.uint8)
    stripes[:, ::2] = 200
    assert (pixelate(stripes) == 100).all()
    split = np.zeros((64, 64, 3), dtype=np.uint8)
    split[:, 32:] = 255
    sketch = line_sketch(split)
    assert sketch[10, 31, 0] == 0 and sketch[10, 10, 0] == 255 and sketch[10, 50, 0] == 255


def test_example_pairs_are_shipped_and_current():
    for name, pair in EXAMPLES.items():
        content, style = pair.images()
        assert analyze(content).colour == pair.combo[0]
        for path, expected in zip(example_paths(name), (content, style)):
            assert (np.asarray(Image.open(path).convert("RGB")) == expected).all(), path


@pytest.mark.skipif(not (MODEL_DIR / "model_index.json").exists(),
                    reason="embedded shapes model not trained/committed yet (python -m paircustom.shapes.train)")
def test_embedded_model_follows_prompts():
    meta = json.loads((MODEL_DIR / "paircustom.json").read_text())
    assert meta["family"] == "sd" and set(meta["train_defaults"]) == {
        "learning_rate", "max_steps", "style_start", "rank", "resolution", "gradient_accumulation"}
    size = sum(f.stat().st_size for f in MODEL_DIR.rglob("*") if f.is_file())
    assert size < 25e6
    torch.manual_seed(0)
    pipe = load_shapes_pipeline()
    pipe.set_progress_bar_config(disable=True)
    assert pipe.unet.dtype == torch.float32
    assert pipe.tokenizer("a photo of a sbu red circle on a blue background in line sketch style").input_ids[-1] \
        == pipe.tokenizer.eos_token_id  # pair prompts are not truncated
    combos = training_combos()[::24] + held_out_combos()[::8]  # 8 + 4
    result = score(generate(pipe, combos, seeds=(0,), steps=20, cfg=5.0), combos)
    assert result.colour >= 0.75 and result.background >= 0.75 and result.shape >= 0.5, result  # saw 1.0, 1.0, 0.83
