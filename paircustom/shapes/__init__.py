"""The embedded shapes-world model: a tiny Stable Diffusion pipeline trained from scratch.

``load_shapes_pipeline()`` loads it offline from ``MODEL_DIR`` (stored in fp16,
cast to ``dtype``, fp32 by default for CPUs).  ``world`` renders the images it
was trained on, ``analyzer`` reads them back, ``train`` rebuilds the model.
"""

from __future__ import annotations

from pathlib import Path

import torch

MODEL_DIR = Path(__file__).parent / "model"


def load_shapes_pipeline(dtype: torch.dtype = torch.float32, model_dir: str | Path | None = None):
    """The embedded ``StableDiffusionPipeline`` (or the one saved in ``model_dir``), offline."""
    from diffusers import StableDiffusionPipeline

    model_dir = Path(model_dir or MODEL_DIR)
    if not (model_dir / "model_index.json").exists():
        raise FileNotFoundError(f"no shapes pipeline in {model_dir}; train one with python -m paircustom.shapes.train")
    return StableDiffusionPipeline.from_pretrained(
        model_dir, dtype=dtype, local_files_only=True, safety_checker=None, requires_safety_checker=False
    )
