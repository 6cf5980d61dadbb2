"""The web app's logic without the web (``ui.studio.Studio``) on a tiny SD model saved to disk: the CLI's
sentences for bad uploads, training in a background thread with live progress, other tools' files."""

import json
import time

import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from paircustom.errors import UserError
from paircustom.tiny.unet import build_tiny_pipeline
from paircustom.ui.studio import Studio
from tests.conftest import RESOLUTION
from tests.test_layouts import kohya, with_text_encoder

TINY_DEFAULTS = dict(
    rank=4, learning_rate=1e-2, max_steps=3, style_start=1, gradient_accumulation=1, resolution=RESOLUTION
)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui-model") / "tiny"
    build_tiny_pipeline("sd").save_pretrained(folder)
    (folder / "paircustom.json").write_text(json.dumps({"train_defaults": TINY_DEFAULTS}))
    return folder


@pytest.fixture
def studio(model, tmp_path):
    return Studio(str(model), tmp_path / "work", device="cpu")


@pytest.mark.parametrize(
    "case, match",
    [
        ("no images", "give a content image and a style image"),
        ("no words", "give the subject word"),
        ("text as image", "is not a readable image"),
        ("aspect", "same aspect ratio"),
    ],
)
def test_bad_uploads_get_the_clis_sentence_and_start_nothing(case, match, studio, pair, tmp_path):
    content, style = pair
    subject, words = "dog", "digital art"
    if case == "no images":
        content = None
    elif case == "no words":
        words = "  "
    elif case == "text as image":
        content.write_text("hello")
    elif case == "aspect":
        Image.new("RGB", (64, 32)).save(style)
    with pytest.raises(UserError, match=match):
        studio.train(content, style, subject, words)
    assert not studio.progress.running and studio._thread is None
    assert list((tmp_path / "work").iterdir()) == []


def test_training_runs_in_the_background_with_progress_and_loads_the_style(studio, pair):
    start = time.monotonic()
    studio.train(*pair, "dog", "digital art", steps=3)
    returned = time.monotonic() - start
    assert studio.progress.running, "train() waited for the run instead of returning at once"
    with pytest.raises(UserError, match="already going"):
        studio.train(*pair, "dog", "digital art")
    progress = studio.wait(120)
    assert progress.error is None, progress.error
    assert (progress.step, progress.total, progress.running) == (3, 3, False)
    assert progress.content_loss > 0 and progress.style_loss > 0, progress
    assert progress.preview.is_file() and progress.output.is_file() and progress.style_name in studio.styles
    assert progress.text().startswith("step 3/3 · content loss ") and "done" in progress.text()
    assert returned < time.monotonic() - start, "train() returned only after training"
    base, styled, compare = studio.generate("a photo of a cat", {progress.style_name: 3.0}, steps=3)
    assert base.size == styled.size == (32, 32) and compare.width == 64
    with pytest.raises(UserError, match="give a prompt"):
        studio.generate(" ", {progress.style_name: 3.0})


def test_files_from_other_tools_need_a_suffix_and_their_text_encoder_is_noted(studio, style_files, tmp_path):
    with pytest.raises(UserError, match="no style is loaded"):
        studio.generate("a photo of a cat", {})
    path = tmp_path / "kohya.safetensors"
    save_file(with_text_encoder(kohya(load_file(style_files["sd"])), "kohya"), path)
    with pytest.raises(UserError, match="no paircustom metadata"):
        studio.load(path, suffix=" ")
    assert studio._pipe is None, "the model loaded before the file was checked"
    assert studio.load(path, suffix=" in digital art style") == "kohya"
    assert studio.load(path, suffix=" in digital art style") == "kohya-2"
    assert len(studio.notices) == 2 and all("2 text-encoder LoRA tensors" in n for n in studio.notices)


def test_ui_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    import sys

    from paircustom.cli.main import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    with pytest.raises(SystemExit) as refused:
        main(["ui"])
    assert refused.value.code == 2
    assert capsys.readouterr().err == (
        "paircustom: error: the web app needs Gradio; install it with pip install 'paircustom[ui]'.\n"
    )


def test_blend_view_draws_a_labelled_grid_and_strip(studio, style_files):
    from paircustom.ui.app import build
    from paircustom.ui.blend import blend_grid, strength_strip

    build(studio)  # the page, blend view included, wires up
    a = studio.load(style_files["sd"])
    with pytest.raises(UserError, match="two different styles"):
        blend_grid(studio, "a cat", a, a, 3.0, 3.0, steps=2)
    b = studio.load(style_files["sd"])
    grid = blend_grid(studio, "a cat", a, b, 3.0, 2.0, steps=2)
    strip = strength_strip(studio, "a cat", a, 4.0, steps=2)
    cell = 128  # the tiny model's 32 pixels, enlarged
    assert grid.width > 3 * cell and 3 * cell < grid.height < 4 * cell, f"grid {grid.size}: not 3x3 labelled cells"
    assert strip.width > 5 * cell and cell < strip.height < 2 * cell, f"strip {strip.size}: not 5 labelled cells"
