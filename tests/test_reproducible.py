"""Refactoring guard: style files trained with a fixed seed are bitwise those recorded here (issue 11).

The hashes were computed before the configs were reorganised; a change that alters them changes what training
computes or writes.  A hash covers the file's bytes with its JSON header's keys in sorted order: safetensors
writes the header's metadata map in an order that varies from process to process (a Rust HashMap), so the raw
bytes of two equal files can differ there.  One torch thread, because float sums (and so the last bits of the
weights) depend on the count. The hashes hold on the machine they were recorded on (RECORDED_ON: its CPU's
feature flags and the torch version); other CPUs run other float kernels, so there the tests compare a sum over
the weights or pixels instead, within 1e-3 relative.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from paircustom.cli.main import main
from paircustom.tiny.unet import build_tiny_pipeline
from paircustom.training.trainer import train_pair
from tests.conftest import quick_config, write_pair

# The style file (tiny in-code pipeline passed in, 4 steps, style loss from step 2).
STYLE_FILE_SHA256 = {
    "sd": "3df4487b3fc11b0d3f3a89e158f67bd9c1959df2e3ec3a4e077c8ee9891f7a34",
    "sdxl": "4a2da46baabcc55e4472acf70db9c73ed292bbc0cb35338c8b15e7382f2c5d3f",
}
# The style file trained by the command line on a model folder whose paircustom.json holds the training defaults
# (its metadata's base_model aside: that is the temporary folder's path).
CLI_STYLE_SHA256 = "bc54772404f205ec63ff7267c3dfbc2b63aee0bcbc9144f4e78872344c3bf024"
# The pixels and settings (the file paths aside) of images the command line draws with that style and the
# default sampling settings: "generate" and "stylize".
IMAGE_SHA256 = {
    "generate": "fedea277813ebcac69b0f30dfeb9c8274d4a54c1bf5fa546bad4305d593b4d55",
    "stylize": "19231ea85347dc8d8736343621b7350202615e848b7d8f26719300ddfe8b483c",
}
# sum of |B| of each style file, mean pixel of each image, on the recording machine
SUMMARY = {
    "sd": 79.15762757696211,
    "sdxl": 79.2293044840917,
    "cli": 100.07992010284215,
    "generate": 120.55143229166667,
    "stylize": 117.8427734375,
}
RECORDED_ON = "9e8fdfa210cc209b 2.13.0+cpu"  # _machine() where the hashes were recorded
MODEL_DEFAULTS = dict(learning_rate=1e-2, max_steps=4, style_start=2, rank=4, resolution=32, gradient_accumulation=1)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _machine() -> str:
    """A hash of the CPU's feature flags, and the torch version."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:16] + " " + torch.__version__


def _assert_recorded(what: str, key: str, digest: str, summary: float, recorded: str) -> None:
    """Bitwise (the hash) on the recording machine, the summary within 1e-3 relative elsewhere."""
    if _machine() == RECORDED_ON:
        assert digest == recorded, f"{what} is no longer the recorded one"
    else:
        assert summary == pytest.approx(SUMMARY[key], rel=1e-3), (
            f"{what}: summary {summary} vs recorded {SUMMARY[key]} (another machine, compared within 1e-3)"
        )


def _weight_sum(path) -> float:
    """Sum of |B| over the file's trained up-projections (the frozen A's would drown them)."""
    with safe_open(str(path), framework="pt") as file:
        return sum(file.get_tensor(key).double().abs().sum().item() for key in file.keys() if "lora_B" in key)


def _sha256(path, without_base_model: bool = False) -> str:
    """sha256 of the file with its header's keys sorted (safetensors: 8-byte header size, JSON header, data)."""
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    metadata = json.loads(header["__metadata__"]["paircustom"])
    if without_base_model:
        metadata.pop("base_model")
    header["__metadata__"]["paircustom"] = metadata
    return hashlib.sha256(json.dumps(header, sort_keys=True).encode() + data[8 + size :]).hexdigest()


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_style_file_of_a_fixed_seed_is_bitwise_the_recorded_one(family, tmp_path, one_thread):
    content, style = write_pair(tmp_path / "pair")
    path = train_pair(
        quick_config(content, style, tmp_path / "style.safetensors", max_steps=4, style_start_step=2),
        build_tiny_pipeline(family),
    )
    _assert_recorded(f"the {family} style file", family, _sha256(path), _weight_sum(path), STYLE_FILE_SHA256[family])


def test_command_line_training_with_the_model_defaults_gives_the_recorded_weights(tmp_path, one_thread):
    model = tmp_path / "model"
    build_tiny_pipeline("sd").save_pretrained(model)
    (model / "paircustom.json").write_text(json.dumps({"train_defaults": MODEL_DEFAULTS}))
    content, style = write_pair(tmp_path / "pair")
    output = tmp_path / "style.safetensors"
    assert (
        main(
            [
                "train",
                str(content),
                str(style),
                "--subject",
                "dog",
                "--style",
                "art",
                "--model",
                str(model),
                "--steps",
                "6",
                "--output",
                str(output),
                "--quiet",
            ]
        )
        == 0
    )
    metadata = json.loads(safe_open(str(output), framework="pt").metadata()["paircustom"])
    assert metadata["training"]["style_start"] == 3, "the model's style start (2 of 4) was not kept as a share"
    _assert_recorded(
        "the command line's style file",
        "cli",
        _sha256(output, without_base_model=True),
        _weight_sum(output),
        CLI_STYLE_SHA256,
    )
    _check_images_drawn_with_default_settings(output, tmp_path)


def _check_images_drawn_with_default_settings(style_file, folder) -> None:
    image = folder / "pair" / "content.png"
    commands = {
        "generate": ["generate", "a photo of a cat", "--steps", "4", "--height", "32", "--width", "32"],
        "stylize": ["stylize", str(image), "--steps", "4", "--resolution", "32"],
    }
    for command, argv in commands.items():
        out = folder / f"{command}.png"
        assert main([*argv, "-s", str(style_file), "-o", str(out), "--quiet"]) == 0
        written = Image.open(out)
        settings = {k: v for k, v in written.text.items() if k not in ("model", "styles", "image", "software")}
        pixels = np.asarray(written)
        digest = hashlib.sha256(pixels.tobytes() + json.dumps(settings, sort_keys=True).encode()).hexdigest()
        _assert_recorded(f"the image '{command}' draws", command, digest, float(pixels.mean()), IMAGE_SHA256[command])
