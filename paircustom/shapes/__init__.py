"""The embedded shapes-world model: a tiny Stable Diffusion pipeline trained from scratch.

It lives in ``MODEL_DIR`` (stored in fp16); ``families.load_pipeline("shapes")`` loads it offline, in fp32 by
default for CPUs.  ``world`` renders the images it was trained on, ``analyzer`` reads them back, ``train``
rebuilds the model.
"""

from __future__ import annotations

import json
from pathlib import Path

MODEL_DIR = Path(__file__).parent / "model"


def world_version(model_dir: str | Path = MODEL_DIR) -> int:
    """The shapes world a saved model was trained on: 2 for this package's world, 1 for the single-object world."""
    settings = Path(model_dir) / "paircustom.json"
    return json.loads(settings.read_text()).get("version", 1) if settings.is_file() else 0
