"""docs/diffusers.md: the embedded model loads and runs in plain diffusers the plain way (no torch_dtype), and gives
the same image as paircustom's pipeline with no style; ``one_dtype`` fixes folders saved from fp16 pipelines."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from paircustom.shapes import MODEL_DIR
from paircustom.shapes.one_dtype import load_in_one_dtype, transformers_configs

DOC = Path(__file__).resolve().parents[1] / "docs" / "diffusers.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_docs_snippet_gives_the_image_of_our_pipeline_without_style(tmp_path, monkeypatch):
    plain, ours = python_blocks()
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model is fastest on one thread
    try:
        exec(compile(plain, "docs/diffusers.md (plain diffusers)", "exec"), {})
        exec(compile(ours, "docs/diffusers.md (paircustom)", "exec"), {})
    finally:
        torch.set_num_threads(threads)
    a, b = (
        np.asarray(Image.open(tmp_path / name), dtype=np.int16)
        for name in ("red-circle.png", "red-circle-paircustom.png")
    )
    assert a.shape == (64, 64, 3), a.shape
    assert a.std() > 5, "the plain-diffusers image is flat: the model did not draw"
    difference = np.abs(a - b).max()
    assert difference <= 1, f"plain diffusers and paircustom without style differ by up to {difference} levels"


def test_the_shipped_model_names_one_default_dtype():
    for path in transformers_configs(MODEL_DIR):
        assert json.loads(path.read_text()).get("dtype") == "float32", (
            f"{path} makes transformers load this component in another dtype than diffusers' fp32; run "
            "python -m paircustom.shapes.one_dtype paircustom/shapes/model"
        )


def test_one_dtype_makes_a_folder_saved_in_fp16_load_in_fp32(tmp_path):
    from diffusers import StableDiffusionPipeline

    folder = tmp_path / "model"
    shutil.copytree(MODEL_DIR, folder)
    (config_path,) = transformers_configs(folder)
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "dtype": "float16"}))  # as save_pretrained writes an fp16 pipeline
    before = StableDiffusionPipeline.from_pretrained(folder)
    assert before.text_encoder.dtype == torch.float16 and before.unet.dtype == torch.float32, "no mismatch to fix"

    assert load_in_one_dtype(folder) == [config_path]
    assert load_in_one_dtype(folder) == [], "a second run changed the folder again"
    after = StableDiffusionPipeline.from_pretrained(folder)
    dtypes = {name: module.dtype for name, module in after.components.items() if isinstance(module, torch.nn.Module)}
    assert set(dtypes.values()) == {torch.float32}, dtypes
    half = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float16)
    assert {half.text_encoder.dtype, half.unet.dtype, half.vae.dtype} == {torch.float16}, "torch_dtype no longer wins"


@pytest.fixture(autouse=True)
def _quiet_loading():
    """No loading bars in the test log."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.disable_progress_bar()
    yield
    for library in (diffusers_logging, transformers_logging):
        library.enable_progress_bar()
