"""Promises beyond refusing bad input: images read as they look, training that diverges stops with the step,
no NaN image is ever handed out, and what a killed run left behind is cleaned up."""

import numpy as np
import pytest
import torch
from PIL import Image

from paircustom.config.checks import remove_stale_temp_files
from paircustom.errors import UserError
from paircustom.files.images import atomic_write, open_rgb
from paircustom.sampling.pipeline import StyleGuidedPipeline
from paircustom.tiny.unet import build_tiny_pipeline
from paircustom.training.trainer import PairTrainer
from tests.conftest import quick_config

GREY = np.arange(0, 256, dtype=np.uint8).reshape(16, 16)  # every 8-bit level once


def _save(image, path, **options):
    image.save(path, **options)
    return path


@pytest.mark.parametrize("mode", ["I;16", "LA", "P-transparent", "CMYK", "RGBA"])
def test_image_modes_read_as_they_look(mode, tmp_path):
    """16-bit grey keeps its levels (not all white); transparency shows the white page; CMYK becomes RGB."""
    if mode == "I;16":
        path = _save(Image.fromarray(GREY.astype(np.uint16) * 257), tmp_path / "a.png")
        expected = np.repeat(GREY[..., None], 3, axis=2)
    elif mode == "LA":
        la = np.stack([GREY, np.where(GREY < 128, 0, 255).astype(np.uint8)], axis=2)
        path = _save(Image.fromarray(la, "LA"), tmp_path / "a.png")
        expected = np.repeat(np.where(GREY < 128, 255, GREY)[..., None], 3, axis=2)  # transparent -> white
    elif mode == "P-transparent":
        image = Image.new("P", (16, 16), 0)
        image.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
        image.paste(1, (0, 0, 8, 16))
        path = _save(image, tmp_path / "a.png", transparency=0)
        expected = np.zeros((16, 16, 3), np.uint8) + 255
        expected[:, :8] = (200, 10, 10)
    elif mode == "CMYK":
        path = _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "a.jpg", quality=100)
        expected = np.zeros((16, 16, 3), np.uint8) + (255, 0, 0)
    else:
        rgba = np.zeros((16, 16, 4), np.uint8)
        rgba[..., 0], rgba[:8, :, 3] = 255, 255  # red, top half opaque
        path = _save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png")
        expected = np.zeros((16, 16, 3), np.uint8) + 255
        expected[:8] = (255, 0, 0)
    got = np.asarray(open_rgb(path, "content image")).astype(int)
    error = np.abs(got - expected).max()
    assert error <= (3 if mode == "CMYK" else 1), f"{mode}: largest channel error {error} of 255"


def test_exif_orientation_is_applied(tmp_path):
    """A landscape JPEG whose EXIF says 'rotate 90°' is a portrait picture, as every viewer shows it."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view
    path = tmp_path / "a.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    image = open_rgb(path, "content image")
    assert image.size == (20, 40), f"read as {image.size}, EXIF orientation ignored"
    top, bottom = np.asarray(image)[:20].mean(), np.asarray(image)[20:].mean()
    assert top > 200 and bottom < 50, f"rotated the wrong way: top {top:.0f}, bottom {bottom:.0f}"


def test_training_that_diverges_stops_naming_the_step(pair, tmp_path, monkeypatch):
    import paircustom.training.trainer as training

    calls = {"n": 0}
    real = training.pair_losses

    def poisoned(*args, **kwargs):  # the loss turns NaN at the third step, as a huge lr would make it
        calls["n"] += 1
        losses = real(*args, **kwargs)
        return {k: v * float("nan") for k, v in losses.items()} if calls["n"] == 3 else losses

    monkeypatch.setattr(training, "pair_losses", poisoned)
    output = tmp_path / "out.safetensors"
    trainer = PairTrainer(quick_config(*pair, output), build_tiny_pipeline("sd"))
    with pytest.raises(UserError, match=r"training diverged at step 3: the content loss is nan, most likely"):
        trainer.fit()
    assert not output.exists()


def test_a_nan_sample_is_refused_not_saved_as_black(monkeypatch):
    guided = StyleGuidedPipeline(build_tiny_pipeline("sd"))
    unet = guided.pipe.unet
    monkeypatch.setattr(unet, "forward", lambda *a, **k: (torch.full_like(a[0], float("nan")),))
    with pytest.raises(UserError, match="non-finite values"):
        guided("a cat", styles={}, num_inference_steps=2, height=32, width=32, seed=0)


def test_stale_temp_files_are_removed_and_nothing_else(tmp_path):
    output = tmp_path / "k.safetensors"
    stale = [tmp_path / ".k.safetensors.ab_cd123.safetensors", tmp_path / ".k.safetensors.00000000.safetensors"]
    kept = [tmp_path / "k.safetensors", tmp_path / ".k.safetensors.notmine.safetensors", tmp_path / "other.txt"]
    for path in stale + kept:
        path.write_bytes(b"")
    assert sorted(remove_stale_temp_files(output)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_atomic_write_leaves_no_temp_file_when_writing_fails(tmp_path):
    target = tmp_path / "new" / "x.png"

    def fail(temp):
        open(temp, "wb").write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, fail)
    assert list((tmp_path / "new").iterdir()) == []


def test_building_a_tiny_pipeline_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkdtemp / TemporaryDirectory go
    build_tiny_pipeline("sd")
    assert list(tmp_path.iterdir()) == [], "the tokenizer's temporary folder was left behind"
