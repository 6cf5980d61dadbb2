"""Property-based: the Python API driven with values of any type.  Whatever comes in, TrainConfig / train_pair,
load_style, a pipeline call and stylize either work or raise ``UserError`` with one sentence; any other
exception (TypeError, AttributeError, ZeroDivisionError, ...) fails the test."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from paircustom import StyleGuidedPipeline, TrainConfig, UserError, train_pair
from paircustom.tiny.unet import build_tiny_pipeline
from tests.conftest import write_pair

FUZZ = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
counter = itertools.count()

# Values of every kind a caller might pass by mistake.
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.binary(max_size=6),
    st.lists(st.integers(-3, 3), max_size=3),
    st.tuples(st.text(max_size=3)),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(np.zeros((2, 2))),
    st.just(torch.zeros(2)),
    st.just(Path("nowhere.png")),
    st.just(Image.new("RGB", (2, 2))),
)
TRAIN_FIELDS = [
    "content_image",
    "style_image",
    "subject",
    "style",
    "model",
    "output",
    "token",
    "content_prompt",
    "style_prompt",
    "rank",
    "content_rank",
    "style_rank",
    "alpha",
    "target_modules",
    "basis_seed",
    "learning_rate",
    "weight_decay",
    "max_steps",
    "style_start_step",
    "gradient_accumulation",
    "resolution",
    "seed",
    "mixed_precision",
    "device",
    "dtype",
    "save_dtype",
    "method",
    "orthogonal",
    "preview_every",
    "checkpoint_every",
    "keep_checkpoints",
    "save_every",
    "resume",
    "save_content",
    "overwrite",
    "extra_pairs",
    "pair_subjects",
    "scale_lr",
]
CALL_FIELDS = [
    "styles",
    "style_scale",
    "guidance_scale",
    "style_start_fraction",
    "style_end",
    "style_interval",
    "style_tolerance",
    "style_reuse",
    "num_inference_steps",
    "negative_prompt",
    "height",
    "width",
    "seed",
    "num_images_per_prompt",
    "base_adapter",
    "guidance_rescale",
    "denoising_end",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-api")
    content, style = write_pair(root / "pair", size=(16, 16))
    pipe = build_tiny_pipeline("sd")
    train_pair(
        TrainConfig(
            str(content),
            str(style),
            subject="dog",
            style="art",
            output=str(root / "art.safetensors"),
            rank=2,
            max_steps=2,
            style_start_step=1,
            resolution=16,
            progress=False,
        ),
        pipe,
    )
    guided = StyleGuidedPipeline(build_tiny_pipeline("sd"))
    guided.load_style(root / "art.safetensors", name="art")
    return root, pipe, guided


def outcome(call) -> str:
    """Run ``call``; a UserError must be one sentence; any other exception propagates (and fails the test)."""
    try:
        call()
    except UserError as refusal:
        assert "\n" not in str(refusal) and str(refusal), repr(str(refusal))
        event("refused")
        return "refused"
    event("worked")
    return "worked"


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(TRAIN_FIELDS), anything), min_size=1, max_size=3))
def test_train_pair_with_values_of_any_type(world, changes):
    root, pipe, _ = world
    values = dict(
        subject="dog",
        style="art",
        output=str(root / f"out-{next(counter)}.safetensors"),
        rank=2,
        max_steps=1,
        style_start_step=0,
        resolution=16,
        progress=False,
    )
    values.update(dict(changes))
    if values.get("max_steps") not in (None, 1):
        values["max_steps"] = values["max_steps"] if not isinstance(values["max_steps"], int) else 1
    outcome(
        lambda: train_pair(
            TrainConfig(
                **{
                    "content_image": str(root / "pair/content.png"),
                    "style_image": str(root / "pair/style.png"),
                    **values,
                }
            ),
            pipe,
        )
    )


@FUZZ
@given(anything, st.dictionaries(st.sampled_from(CALL_FIELDS), anything, max_size=3))
def test_pipeline_calls_with_values_of_any_type(world, prompt, kwargs):
    _, _, guided = world
    if isinstance(kwargs.get("num_images_per_prompt"), int):
        kwargs["num_images_per_prompt"] = min(kwargs["num_images_per_prompt"], 2)
    for side in ("height", "width"):
        if isinstance(kwargs.get(side), int) and not isinstance(kwargs[side], bool):
            kwargs[side] = min(kwargs[side], 64)
    kwargs = {"num_inference_steps": 1, "height": 16, "width": 16, "output_type": "latent", **kwargs}
    if isinstance(kwargs["num_inference_steps"], int):
        kwargs["num_inference_steps"] = min(kwargs["num_inference_steps"], 2)
    outcome(lambda: guided(prompt, **kwargs))


@FUZZ
@given(
    anything,
    st.dictionaries(
        st.sampled_from(["prompt", "strength", "method", "resolution", "styles", "inversion_refine"]),
        anything,
        max_size=2,
    ),
)
def test_stylize_with_values_of_any_type(world, image, kwargs):
    _, _, guided = world
    if isinstance(kwargs.get("resolution"), int):
        kwargs["resolution"] = min(kwargs["resolution"], 32)
    if isinstance(kwargs.get("inversion_refine"), int):
        kwargs["inversion_refine"] = min(kwargs["inversion_refine"], 1)
    outcome(lambda: guided.stylize(image, num_inference_steps=2, **{"resolution": 16, **kwargs}))


@FUZZ
@given(anything, anything, anything)
def test_load_style_with_values_of_any_type(world, path, name, suffix):
    _, _, guided = world
    before = set(guided.suffixes)
    if outcome(lambda: guided.load_style(path, name=name, suffix=suffix)) == "worked":
        assert set(guided.suffixes) - before, "load_style returned without loading a style"
