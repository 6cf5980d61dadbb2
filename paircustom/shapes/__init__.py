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
    from ..families import load_pipeline

    return load_pipeline(str(model_dir) if model_dir else "shapes", dtype)[0]
