"""Property-based fuzzing of the command line: random numbers for every numeric option, random bytes as
images and as style files.  Whatever comes in, the outcome is exit 0 with finite results, or exit 2 with
one 'paircustom: error:' line; never a traceback (any other exception fails the test)."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import struct

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from paircustom.cli.main import main
from paircustom.files.style_file import read_adapter
from paircustom.sampling.pipeline import StyleGuidedPipeline
from paircustom.tiny.unet import build_tiny_pipeline
from paircustom.training.trainer import train_pair
from tests.conftest import quick_config, write_pair

FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BASE = ["--subject", "dog", "--style", "art", "--quiet"]
counter = itertools.count()

any_float = st.floats(allow_nan=True, allow_infinity=True)
any_int = st.integers(-(2**70), 2**70)


def options(**choices):
    """Up to three of the options, each set to a value from its strategy (``--style-start-step`` for
    style_start_step=)."""
    one = st.one_of(
        *(values.map(lambda v, name=name: [f"--{name.replace('_', '-')}={v}"]) for name, values in choices.items())
    )
    return st.lists(one, max_size=3).map(lambda parts: sum(parts, []))


def sensible_or_any(low, high):
    """Half the time a value in the sensible range (so runs get through), else any float at all."""
    return st.one_of(st.floats(low, high), any_float)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    build_tiny_pipeline("sd").save_pretrained(root / "model")
    content, style = write_pair(root / "pair", size=(16, 16))
    train_pair(
        quick_config(
            content,
            style,
            root / "art.safetensors",
            model=str(root / "model"),
            max_steps=2,
            style_start_step=1,
            resolution=16,
        )
    )
    return root


def run(argv) -> int:
    """Run the CLI in-process; assert the clean-outcome property; return the exit code."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_info:
            code = exit_info.code
    text = err.getvalue()
    event(f"{argv[0]} exit {code}")  # pytest --hypothesis-show-statistics: how often each outcome
    assert "Traceback" not in text, text
    assert code in (0, 2), f"exit {code}: {text}"
    if code == 2:
        lines = text.splitlines()
        assert len(lines) == 1 and lines[0].startswith("paircustom: error: "), f"not one error line:\n{text}"
    return code


def fresh(world, suffix):
    return world / f"out-{next(counter)}{suffix}"


def assert_finite_style(path):
    tensors, metadata = read_adapter(path)  # itself refuses non-finite weights; checked again here
    assert all(torch.isfinite(t).all() for t in tensors.values())
    losses = [x for x in metadata.training["final_losses"] if x is not None]
    assert all(torch.isfinite(torch.tensor(losses))), losses


@FUZZ
@given(
    options(
        lr=sensible_or_any(1e-5, 1),
        alpha=sensible_or_any(1e-3, 1e4),
        weight_decay=sensible_or_any(0, 1),
        seed=st.one_of(st.integers(0, 2**63 - 1), any_int),
        basis_seed=any_int,
        rank=st.integers(-2, 40),
        content_rank=st.integers(-2, 20),
        style_rank=st.integers(-2, 20),
        steps=st.one_of(st.integers(-2, 3), st.integers(10**6 + 1, 2**70)),
        style_start_step=st.integers(-3, 4),
        accumulation=st.integers(-2, 2),
        checkpoint_every=st.integers(-3, 2),
        resolution=st.one_of(st.sampled_from([8, 12, 16, 33]), st.integers(4097, 2**70), st.integers(-(2**70), 7)),
    )
)
def test_random_training_numbers(world, options):
    output = fresh(world, ".safetensors")
    argv = [
        "train",
        world / "pair/content.png",
        world / "pair/style.png",
        *BASE,
        "--model",
        world / "model",
        "--output",
        output,
        "--steps",
        "2",
        "--resolution",
        "16",
        "--rank",
        "2",
        *options,
    ]
    if run(argv) == 0:
        assert_finite_style(output)


@FUZZ
@given(
    options(
        guidance_scale=sensible_or_any(-100, 100),
        style_scale=sensible_or_any(-100, 100),
        lora_scale=sensible_or_any(-100, 100),
        style_start_fraction=sensible_or_any(0, 1),
        steps=st.one_of(st.integers(-2, 2), st.integers(1001, 2**70)),
        height=st.one_of(st.sampled_from([8, 9, 16]), st.integers(4097, 2**70), st.integers(-(2**70), 1)),
        width=st.one_of(st.sampled_from([8, 9, 16]), st.integers(4097, 2**70), st.integers(-(2**70), 1)),
        seed=st.one_of(st.integers(0, 2**63 - 1), any_int),
        num_images=st.one_of(st.integers(-2, 2), st.integers(65, 2**70)),
    )
)
def test_random_generation_numbers(world, monkeypatch_module, options):
    output = fresh(world, ".png")
    decoded = monkeypatch_module
    decoded.clear()
    argv = [
        "generate",
        "a cat",
        "-s",
        world / "art.safetensors",
        "--model",
        world / "model",
        "--steps",
        "1",
        "--height",
        "8",
        "--width",
        "8",
        "--quiet",
        "-o",
        output,
        *options,
    ]
    if run(argv) == 0:
        assert decoded and all(decoded), "an image was written from non-finite latents"


@pytest.fixture(scope="module")
def monkeypatch_module():
    """Records, for every decode, whether its latents were finite (a check independent of the code's own)."""
    seen: list[bool] = []
    real = StyleGuidedPipeline._decode

    def spy(self, latents, *args, **kwargs):
        seen.append(bool(torch.isfinite(latents).all()))
        return real(self, latents, *args, **kwargs)

    StyleGuidedPipeline._decode = spy
    yield seen
    StyleGuidedPipeline._decode = real


MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00", b"RIFF\x00\x00\x00\x00WEBP"]


def mutated(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(data)
    for position, value in flips:
        data[position % len(data)] = value
    return bytes(data)


byte_flips = st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), min_size=1, max_size=4)


@FUZZ
@given(
    st.one_of(
        st.tuples(st.sampled_from(MAGIC), st.binary(max_size=600)).map(lambda t: t[0] + t[1]),
        byte_flips.map(lambda f: ("flip", f)),
    )
)
def test_random_bytes_as_images(world, data):
    image = fresh(world, ".png")
    good = (world / "pair/content.png").read_bytes()
    image.write_bytes(mutated(good, data[1]) if isinstance(data, tuple) else data)
    output = fresh(world, ".safetensors")
    argv = [
        "train",
        image,
        world / "pair/style.png",
        *BASE,
        "--model",
        world / "model",
        "--output",
        output,
        "--steps",
        "1",
        "--style-start-step",
        "0",
        "--resolution",
        "8",
        "--rank",
        "2",
    ]
    if run(argv) == 0:
        assert_finite_style(output)


def forged_safetensors(dtype: str, shape: list[int], offsets: list[int], metadata: dict, body: bytes) -> bytes:
    """A safetensors file with a hand-made header: one tensor of any dtype, shape and offsets."""
    header = {
        "unet.x.lora_A.weight": {"dtype": dtype, "shape": shape, "data_offsets": offsets},
        "__metadata__": metadata,
    }
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


forged = st.builds(
    forged_safetensors,
    st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "F64", "XX"]),
    st.lists(st.integers(0, 2**40), max_size=3),
    st.lists(st.integers(-1, 2**20), max_size=3),
    st.dictionaries(st.sampled_from(["paircustom", "format"]), st.text(max_size=40)),
    st.binary(max_size=256),
)


@FUZZ
@given(st.one_of(st.binary(max_size=400), forged, byte_flips.map(lambda f: ("flip", f))))
def test_random_bytes_as_style_files(world, data):
    style = fresh(world, ".safetensors")
    good = (world / "art.safetensors").read_bytes()
    style.write_bytes(mutated(good, data[1]) if isinstance(data, tuple) else data)
    run(["info", style])
    output = fresh(world, ".png")
    run(
        [
            "generate",
            "a cat",
            "-s",
            style,
            "--model",
            world / "model",
            "--steps",
            "1",
            "--height",
            "8",
            "--width",
            "8",
            "--quiet",
            "-o",
            output,
        ]
    )
