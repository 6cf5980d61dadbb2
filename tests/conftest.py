"""Shared fixtures: tiny random pipelines, a synthetic image pair and trained style files (all offline)."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from paircustom.tiny.unet import build_tiny_pipeline
from paircustom.training.trainer import TrainConfig, train_pair

if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker per core (pyproject's addopts): one thread each, children too
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

RESOLUTION = 32  # pixels; the tiny VAE halves it to 16x16 latents
SHARED_PAIRS = Path(__file__).resolve().parents[2] / "shared" / "pairs"


def write_pair(folder: Path, size=(48, 48), style_size=None) -> tuple[Path, Path]:
    """A random content image and its colour-inverted 'style' counterpart."""
    rng = np.random.default_rng(0)
    content = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    style = Image.fromarray(255 - content).resize(style_size or size)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(content).save(folder / "content.png")
    style.save(folder / "style.png")
    return folder / "content.png", folder / "style.png"


def fast_flags(steps: int) -> list[str]:
    """The command line's flags for a quick tiny-model training run of ``steps`` steps (style from step 1)."""
    return ["--rank", "4", "--lr", "1e-2", "--steps", str(steps), "--style-start-step", "1", "--accumulation", "1",
            "--resolution", str(RESOLUTION), "--quiet"]  # fmt: skip


def quick_config(content, style, output, **overrides) -> TrainConfig:
    """A few fast steps with a large learning rate so the adapters move visibly."""
    settings = dict(
        subject="dog",
        style="digital art",
        output=str(output),
        rank=4,
        learning_rate=1e-2,
        max_steps=6,
        style_start_step=2,
        gradient_accumulation=1,
        resolution=RESOLUTION,
        progress=False,
    )
    settings.update(overrides)
    return TrainConfig(str(content), str(style), **settings)


def same_state(a, b) -> bool:
    """Equality of scheduler state (``vars(scheduler)``): tensors, numpy arrays, lists of them, plain values."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    if torch.is_tensor(a) or isinstance(a, np.ndarray):
        return type(a) is type(b) and a.shape == b.shape and bool((a == b).all())
    return a == b


@pytest.fixture
def pair(tmp_path):
    return write_pair(tmp_path / "pair")


@pytest.fixture(scope="session")
def style_files(tmp_path_factory):
    """One trained style file per family: {"sd": path, "sdxl": path}."""
    folder = tmp_path_factory.mktemp("styles")
    content, style = write_pair(folder)
    return {
        family: train_pair(quick_config(content, style, folder / f"{family}.safetensors"), build_tiny_pipeline(family))
        for family in ("sd", "sdxl")
    }
