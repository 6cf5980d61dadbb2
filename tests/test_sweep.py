"""Strength sweeps and blend grids (issue 32): a 1x1 grid is a plain call, batched cells equal cell-by-cell ones,
the JSON records the strengths drawn, the grid is labelled, and bad input is one sentence that writes nothing."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from paircustom.cli.main import main
from paircustom.config.sweep import parse_range
from paircustom.errors import UserError
from paircustom.files.grid_image import Axes, labelled_grid
from paircustom.sampling.pipeline import StyleGuidedPipeline
from paircustom.tiny.unet import build_tiny_pipeline
from tests.helpers_bad_inputs import snapshot

STEPS = 2
SIZE = dict(height=32, width=32)
FAST = dict(num_inference_steps=STEPS, **SIZE)
TOLERANCE = 1e-4  # latents: batched vs one call per cell (float summation order only)
PIXEL_TOLERANCE = 2  # uint8 levels: the same, after the VAE and rounding


@pytest.fixture(scope="module")
def guided(style_files):
    pipe = StyleGuidedPipeline(build_tiny_pipeline("sd"))
    pipe.pipe.set_progress_bar_config(disable=True)
    for name in ("a", "b", "c"):
        pipe.load_style(style_files["sd"], name=name)
    return pipe


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-model")
    build_tiny_pipeline("sd").save_pretrained(root / "sd")
    return str(root / "sd")


def _array(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize(
    "styles, seed",
    [({"a": [3.0]}, 0), ({"a": [2.0], "b": [-1.5]}, 5), ({"a": [0.0]}, 1), ({"a": [1.0], "b": [2.0], "c": [-1.0]}, 2)],
)
def test_a_one_cell_grid_is_the_plain_call_bitwise(guided, styles, seed):
    cell = guided.sweep("a photo of a cat", styles, seeds=[seed], **FAST)
    plain = guided("a photo of a cat", styles={n: v[0] for n, v in styles.items()}, seed=seed, **FAST).images[0]
    assert np.array_equal(_array(cell.images[0][0][0]), _array(plain)), "the 1x1 grid differs from the plain call"


def test_one_scale_per_prompt_equals_one_call_per_prompt(guided):
    """The mechanism behind batched grids: row i of one call takes scale i (Eq. 11 with per-row λ's)."""
    scales, prompts = [0.0, 1.5, 3.0], ["a cat", "a dog", "a cat"]
    noise = torch.randn((3, 4, 16, 16), generator=torch.Generator().manual_seed(0))
    batched = guided(
        prompts, styles={"a": scales, "b": [1.0, -1.0, 2.0]}, latents=noise, output_type="latent", **FAST
    ).images
    for i in range(3):
        alone = guided(
            prompts[i],
            styles={"a": scales[i], "b": [1.0, -1.0, 2.0][i]},
            latents=noise[i : i + 1],
            output_type="latent",
            **FAST,
        ).images
        assert (batched[i] - alone[0]).abs().max() < TOLERANCE, f"row {i} differs from its own call"


@pytest.mark.parametrize(
    "styles, lora", [({"a": [0.0, 3.0], "b": [-1.0, 2.0]}, None), ({"a": [0.0, 2.0, 4.0]}, [0.0, 0.5, 1.0])]
)
def test_batched_grid_equals_cell_by_cell(guided, styles, lora):
    args = dict(seeds=[0, 1], lora_scales=lora, **FAST)
    batched = guided.sweep("a cat", styles, **args)
    single = guided.sweep("a cat", styles, cells_per_call=1, **args)
    worst = max(
        np.abs(_array(x) - _array(y)).max()
        for row_b, row_s in zip(batched.images, single.images)
        for cell_b, cell_s in zip(row_b, row_s)
        for x, y in zip(cell_b, cell_s)
    )
    assert worst <= PIXEL_TOLERANCE, f"batched and cell-by-cell grids differ by {worst} levels"
    moved = np.abs(_array(batched.images[0][0][0]) - _array(batched.images[0][-1][0])).max()
    assert moved > PIXEL_TOLERANCE, "the strengths made no visible difference, so the comparison shows nothing"


def test_the_json_records_the_strengths_drawn(guided, tmp_path, monkeypatch):
    used, lora_used = [], []
    call, lora_scale = StyleGuidedPipeline.__call__, StyleGuidedPipeline.lora_scale

    def spy(self, prompt, styles=None, **kwargs):
        if styles and "b" in styles:
            rows = len(prompt)
            used.extend(
                zip(*(styles[n] if isinstance(styles[n], (list, tuple)) else [styles[n]] * rows for n in ("a", "b")))
            )
        return call(self, prompt, styles=styles, **kwargs)

    def lora_spy(self, prompt, style, scale=1.0, **kwargs):
        lora_used.append(scale)
        return lora_scale(self, prompt, style, scale, **kwargs)

    monkeypatch.setattr(StyleGuidedPipeline, "__call__", spy)
    monkeypatch.setattr(StyleGuidedPipeline, "lora_scale", lora_spy)
    grid = guided.sweep("a cat", {"a": parse_range("0:3:3", "a"), "b": [2.5]}, seeds=[4], **FAST)
    grid.save(tmp_path / "blend.png")
    saved = json.loads((tmp_path / "blend.json").read_text())
    axes = {axis["style"]: axis["values"] for axis in saved["axes"]}
    assert axes == {"a": [0.0, 1.5, 3.0], "b": [2.5]} and saved["seeds"] == [4]
    assert set(used) == {(a, b) for a in axes["a"] for b in axes["b"]} and len(used) == 3
    assert saved["sampling"]["num_inference_steps"] == STEPS and saved["sampling"]["height"] == 32

    strip = guided.sweep("a cat", {"a": [0.0, 4.0]}, seeds=[0], lora_scales=[0.0, 1.25], **FAST)
    strip.save(tmp_path / "strip.png")
    saved = json.loads((tmp_path / "strip.json").read_text())
    assert saved["lora_scales"] == lora_used == [0.0, 1.25]


def test_the_grid_is_labelled_and_cells_sit_where_the_axes_say():
    cells = [[Image.new("RGB", (8, 8), (40 * r + 10 * c, 100, 200)) for c in range(3)] for r in range(2)]
    axes = Axes("a: style guidance scale", ["0", "1.5", "3"], "b", ["0", "2"])
    plain = labelled_grid(cells, Axes(), zoom=2)
    sheet = labelled_grid(cells, axes, zoom=2)
    assert plain.size == (3 * (16 + 2), 2 * (16 + 2)), "an unlabelled grid is the cells and gaps only"
    left, top = sheet.width - plain.width, sheet.height - plain.height
    assert left > 0 and top > 0, "no room was made for the labels"
    assert np.array_equal(np.asarray(sheet.crop((left, top, sheet.width, sheet.height))), np.asarray(plain))
    header = np.asarray(sheet.crop((left, 0, sheet.width, top)).convert("L"))
    assert (header < 128).sum() > 20, "no text was drawn above the columns"


def _cli(model_dir, style, tmp_path, *extra):
    return [
        "sweep",
        "a cat",
        "--model",
        model_dir,
        "--steps",
        str(STEPS),
        "--height",
        "32",
        "--width",
        "32",
        "--quiet",
        "-o",
        str(tmp_path / "sweep.png"),
        "-s",
        f"{style}=0,3",
        *extra,
    ]


def test_cli_strength_sweep_writes_grid_animation_and_settings(model_dir, style_files, tmp_path, capsys):
    assert main(_cli(model_dir, style_files["sd"], tmp_path, "--lora-scales", "0,1", "--seeds", "0,1")) == 0
    assert capsys.readouterr().out.count("wrote") == 3
    settings = json.loads((tmp_path / "sweep.json").read_text())
    assert settings["axes"][0]["values"] == [0.0, 3.0] and settings["lora_scales"] == [0.0, 1.0]
    assert settings["styles"]["sd"]["file"] == style_files["sd"].name  # names, not paths (docs/reliability.md)
    assert settings["seeds"] == [0, 1]
    with Image.open(tmp_path / "sweep.gif") as gif:
        assert gif.n_frames == 2
    with Image.open(tmp_path / "sweep.png") as png:
        assert json.loads(png.text["sweep"])["axes"] == settings["axes"]
        assert png.width > 2 * 128 and png.height > 2 * 2 * 128, (
            "two strengths; two panels of two rows of 128-pixel cells"
        )


BAD = {
    "NaN in a range": (["-s", "{style}=0,nan,3"], "must be a finite number"),
    "empty range": (["-s", "{style}="], "is empty"),
    "empty count": (["-s", "{style}=0:3:0"], "is empty"),
    "not a range": (["-s", "{style}=0:3"], "is not a range"),
    "four styles": (["-s", "{style}", "-s", "{style}", "-s", "{style}", "-s", "{style}"], "at most 3 styles"),
    "LoRA row on a grid": (
        ["-s", "{style}", "--name", "x", "-s", "{style}", "--name", "y", "--lora-scales", "0,1"],
        "goes with a strength sweep",
    ),
    "LoRA count": (["-s", "{style}=0:3:3", "--lora-scales", "0,1"], "as many LoRA scales"),
    "LoRA NaN": (["-s", "{style}=0:3:2", "--lora-scales", "0,inf"], "must be a finite number"),
    "too many cells": (["-s", "{style}=0:3:20", "--name", "x", "-s", "{style}=0:3:20", "--name", "y"], "more than 256"),
    "cells per call": (["-s", "{style}", "--cells-per-call", "0"], "--cells-per-call must lie"),
    "not a PNG": (["-s", "{style}", "-o", "{tmp}/grid.jpg"], "must be a .png"),
    "output exists": (["-s", "{style}", "-o", "{tmp}/taken.png"], "already exists"),
    "no style": ([], "give one style"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_cli_bad_input_is_one_sentence_and_writes_nothing(name, model_dir, style_files, tmp_path, capsys):
    argv, match = BAD[name]
    (tmp_path / "taken.png").write_bytes(b"not mine to replace")
    (tmp_path / "taken.json").write_text("{}")
    before = snapshot(tmp_path)
    values = dict(style=style_files["sd"], tmp=tmp_path)
    base = ["sweep", "a cat", "--model", model_dir, "--quiet", "-o", str(tmp_path / "new.png")]
    with pytest.raises(SystemExit) as exit_info:
        main(base + [part.format(**values) for part in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("paircustom: error: "), err
    assert match in err, f"refused for another reason than expected ({match!r}): {err}"
    assert snapshot(tmp_path) == before, "a refused sweep changed files"


@pytest.mark.parametrize(
    "styles, options, match",
    [
        ({"a": [0.0, float("nan")]}, {}, "must be a finite number"),
        ({"a": []}, {}, "is empty"),
        ({"a": [1.0], "b": [1.0], "c": [1.0], "d": [1.0]}, {}, "got 4 styles"),
        ({"zzz": [1.0]}, {}, "no style named 'zzz'"),
        ({"a": [1.0]}, {"seeds": []}, "at least one seed"),
        ({"a": [1.0]}, {"output_type": "np"}, "sets output_type itself"),
        ({"a": [1.0]}, {"lora_scales": [1.0, 2.0]}, "as many LoRA scales"),
    ],
)
def test_api_bad_input_is_refused_before_drawing(guided, styles, options, match, monkeypatch):
    monkeypatch.setattr(StyleGuidedPipeline, "__call__", lambda *a, **k: pytest.fail("drew before refusing"))
    with pytest.raises(UserError, match=match):
        guided.sweep("a cat", styles, **options)
