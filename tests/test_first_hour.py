"""A new user's first hour (issue 33), on the command line: stylize's default prompt and --compare, the notices
for --resume without a checkpoint and for resized pairs, the loading bars, and the words of a few messages."""

import io
import json
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paircustom.cli.main import main
from paircustom.files.images import LABEL_HEIGHT
from paircustom.shapes import MODEL_DIR
from paircustom.shapes.caption import caption_of
from paircustom.shapes.world import Scene, Thing, render
from paircustom.tiny.unet import build_tiny_pipeline
from tests.conftest import RESOLUTION, write_pair
from tests.test_cli import _train_args


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "sd"
    build_tiny_pipeline("sd").save_pretrained(folder)
    return str(folder)


def _train(content, style, model, output, *extra):
    """The CLI's training on the tiny model, in test_cli's fast settings."""
    return main(_train_args(content, style, model, output, *extra))


@pytest.fixture(scope="module")
def style_file(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("style")
    content, style = write_pair(folder, size=(RESOLUTION, RESOLUTION))
    assert _train(content, style, model, folder / "art.safetensors") == 0
    return folder / "art.safetensors"


def _warnings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("paircustom: warning:")]


# ---- 1. stylize: the default prompt says what it is, and --compare shows input | stylised -----------------------
SCENES = {
    "one object": Scene(2, (Thing(0, 0, left=16, top=16, size=32),)),
    "three objects": Scene(
        6,
        (
            Thing(1, 3, left=3, top=20, size=20),
            Thing(4, 2, left=22, top=4, size=20),
            Thing(5, 1, left=42, top=30, size=19),
        ),
    ),
}


@pytest.mark.parametrize("scene", list(SCENES))
def test_a_shapes_image_is_captioned_with_what_it_shows(scene):
    image = Image.fromarray(render(SCENES[scene]))
    assert caption_of(image) == SCENES[scene].layout.caption
    assert caption_of(image.resize((200, 200), Image.Resampling.NEAREST)) == SCENES[scene].layout.caption, "resized"


def test_an_image_from_outside_the_shapes_world_has_no_caption():
    noise = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    assert caption_of(Image.fromarray(noise)) is None
    assert caption_of(Image.new("RGB", (64, 64), (40, 40, 215))) is None, "a plain background has no object"


def test_stylize_compare_writes_input_and_stylised_side_by_side(style_file, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    picture = (np.random.default_rng(3).random((40, 56, 3)) * 255).astype(np.uint8)  # not square: centre-cropped
    Image.fromarray(picture).save(photo)
    out = tmp_path / "styled.png"
    argv = [
        "stylize",
        str(photo),
        "-s",
        str(style_file),
        "--strength",
        "0.5",
        "--steps",
        "4",
        "-o",
        str(out),
        "--compare",
        "--quiet",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert 'prompt: "a photo of a sbu dog" (the style\'s training prompt; give --prompt' in printed, printed
    sheet, styled = Image.open(tmp_path / "styled-compare.png"), Image.open(out)
    assert sheet.size == (2 * RESOLUTION, LABEL_HEIGHT + RESOLUTION), sheet.size
    assert sheet.text["layout"] == "input | stylised"
    pixels = np.asarray(sheet.convert("RGB"), dtype=np.int16)
    right = pixels[LABEL_HEIGHT:, RESOLUTION:]
    assert np.array_equal(right, np.asarray(styled.convert("RGB"))), "the right column is not the stylised image"
    expected_left = np.asarray(Image.fromarray(picture).crop((8, 0, 48, 40)).resize((RESOLUTION,) * 2), np.int16)
    error = np.abs(pixels[LABEL_HEIGHT:, :RESOLUTION] - expected_left).mean()
    assert error < 8, f"the left column is not the input's centre square (mean error {error:.1f} levels)"
    strip = pixels[:LABEL_HEIGHT]
    assert (strip[:, :RESOLUTION] < 128).any() and (strip[:, RESOLUTION:] < 128).any(), "a column has no label"

    (tmp_path / "other-compare.png").write_bytes(b"")
    with pytest.raises(SystemExit) as refused:  # an existing comparison sheet is refused before any work
        main([*argv[:-3], str(tmp_path / "other.png"), "--compare", "--quiet"])
    assert refused.value.code == 2 and not (tmp_path / "other.png").exists()
    printed = capsys.readouterr()
    assert "already exists" in printed.err and "prompt:" not in printed.out, f"said before the refusal: {printed.out!r}"


def test_stylize_on_the_shapes_model_prompts_with_the_image_caption(tmp_path):
    from paircustom.cli import stylize

    scene = SCENES["three objects"]
    photo = tmp_path / "scene.png"
    Image.fromarray(render(scene)).save(photo)
    prompt, note = stylize.default_prompt(Image.open(photo), "shapes", [("x.safetensors", 3.0)], [None])
    assert prompt == scene.layout.caption
    assert note.startswith(f'prompt: "{scene.layout.caption}" (read from the image'), note


# ---- 4. --resume with no checkpoint says it starts over; 8. resized pairs say so, after every refusal -----------
def test_resume_without_a_checkpoint_says_it_starts_from_step_0_then_the_resize(model, tmp_path, capsys):
    content, style = write_pair(tmp_path, size=(RESOLUTION, RESOLUTION), style_size=(2 * RESOLUTION,) * 2)
    output = tmp_path / "out.safetensors"
    assert _train(content, style, model, output, "--resume") == 0
    lines = _warnings(capsys.readouterr().err)
    assert lines == [
        f"paircustom: warning: --resume found no checkpoint '{tmp_path / 'out.checkpoint.safetensors'}'; "
        "training starts from step 0.",
        "paircustom: warning: resizing the style image style.png (64x64) to 32x32, the training resolution "
        "(--resolution).",
    ], lines


REFUSED = {  # a resized pair whose run is refused: (files left beside the output, extra options, the refusal's words)
    "earlier checkpoint": (("out.checkpoint.safetensors",), (), "is the checkpoint of an earlier run"),
    "output exists": (("out.safetensors",), (), "already exists"),
    "resume, no checkpoint, output exists": (("out.safetensors",), ("--resume",), "found no checkpoint"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refusal_comes_before_the_resize_notice(case, model, tmp_path, capsys):
    """The pair is read (and may be refused) first, but says it is resized only once the run's checks passed: a
    refused run prints its one sentence and nothing else."""
    left, extra, words = REFUSED[case]
    content, style = write_pair(tmp_path, size=(RESOLUTION, RESOLUTION), style_size=(2 * RESOLUTION,) * 2)
    for name in left:
        (tmp_path / name).write_bytes(b"from an earlier run")
    with pytest.raises(SystemExit) as refused:
        _train(content, style, model, tmp_path / "out.safetensors", *extra)
    printed = capsys.readouterr()
    lines = printed.err.splitlines()
    assert refused.value.code == 2 and printed.out == "", (refused.value.code, printed.out)
    assert len(lines) == 1 and lines[0].startswith("paircustom: error:") and words in lines[0], lines


RESIZES = {  # (content size, style size) -> the warning line's text after "resizing ", or None for no line
    "same size as trained": ((RESOLUTION, RESOLUTION), (RESOLUTION, RESOLUTION), None),
    "style twice as large": (
        (RESOLUTION, RESOLUTION),
        (2 * RESOLUTION, 2 * RESOLUTION),
        "the style image style.png (64x64) to 32x32, the training resolution (--resolution).",
    ),
    "both large": (
        (1024, 1024),
        (1024, 1024),
        "the content image content.png (1024x1024) and the style image "
        "style.png (1024x1024) to 32x32, the training resolution (--resolution).",
    ),
    "not square": (
        (48, 40),
        (48, 40),
        "the content image content.png (48x40) and the style image style.png (48x40) "
        "to 32x32 and centre-cropped, the training resolution (--resolution).",
    ),
}


@pytest.mark.parametrize("case", list(RESIZES))
def test_a_resized_pair_is_said_in_one_line(case, model, tmp_path, capsys):
    content_size, style_size, expected = RESIZES[case]
    content, style = write_pair(tmp_path, size=content_size, style_size=style_size)
    assert _train(content, style, model, tmp_path / "out.safetensors") == 0
    lines = _warnings(capsys.readouterr().err)
    assert lines == ([] if expected is None else [f"paircustom: warning: resizing {expected}"]), lines


# ---- 6. words and the loading bars ---------------------------------------------------------------------------
def test_info_ends_with_a_newline(style_file, capsys):
    assert main(["info", str(style_file)]) == 0
    printed = capsys.readouterr().out
    assert printed.endswith("}\n"), repr(printed[-20:])
    assert json.loads(printed[printed.index("{") :])["base_model"]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("case", ["embedded model", "large folder", "not a terminal"])
def test_loading_bars_show_only_for_large_models_on_a_terminal(case, model, tmp_path, monkeypatch):
    import shutil

    from paircustom.models.loading_bars import BARS_FROM_BYTES
    from paircustom.models.registry import load_pipeline

    folder = str(MODEL_DIR)
    if case == "large folder":  # the tiny model plus a sparse file: large on paper, no disk used
        folder = str(tmp_path / "large")
        shutil.copytree(model, folder)
        with open(os.path.join(folder, "padding.bin"), "wb") as padding:
            padding.truncate(BARS_FROM_BYTES)
    stream = io.StringIO() if case == "not a terminal" else _Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    load_pipeline(folder)
    shown = "Loading pipeline components" in stream.getvalue()
    assert shown == (case == "large folder"), f"{case}: bars shown={shown}: {stream.getvalue()[-300:]!r}"


# ---- 7. examples with your own pair on the embedded model ----------------------------------------------------
OWN_PAIR = Path(__file__).resolve().parents[1] / "docs" / "own-pair.md"


def test_own_pair_page_draws_a_pair_the_embedded_model_reads(tmp_path, monkeypatch):
    (block,) = re.findall(r"```python\n(.*?)```", OWN_PAIR.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/own-pair.md", "exec"), {})
    scene, styled = Image.open("my-scene.png"), Image.open("my-scene-outlined.png")
    assert scene.size == styled.size == (64, 64)
    assert caption_of(scene) == "a photo of a red circle and a yellow square on a blue background"
    assert np.abs(np.asarray(scene, np.int16) - np.asarray(styled, np.int16)).max() > 100, "no visible style"


@pytest.mark.parametrize("where", ["docs/own-pair.md", "paircustom --help", "paircustom train --help"])
def test_examples_run_on_the_embedded_model_and_name_its_style_words(where, capsys):
    from paircustom.cli.main import build_parser
    from paircustom.shapes.families import FAMILIES

    if where.endswith("--help"):
        with pytest.raises(SystemExit):
            main(where.split()[1:])
        text = capsys.readouterr().out
    else:
        text = OWN_PAIR.read_text()
    commands = [line.strip() for line in text.splitlines() if line.strip().startswith("paircustom train my-scene")]
    assert commands, f"{where} has no example with your own pair"
    args = build_parser().parse_args(shlex.split(commands[0])[1:])
    assert args.model == "shapes", "the own-pair example is not on the embedded model"
    missing = [word for word in FAMILIES if word not in text]
    assert not missing, f"{where} does not name the style words {missing}"
    assert "64x64" in text and "flat-colour" in text, f"{where} does not say what the embedded model draws"
