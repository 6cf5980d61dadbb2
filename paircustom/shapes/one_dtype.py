"""Make a saved pipeline folder load in one dtype in plain diffusers.

    python -m paircustom.shapes.one_dtype paircustom/shapes/model

The embedded model stores its weights in fp16 (half the size).  Called without ``torch_dtype``,
``StableDiffusionPipeline.from_pretrained`` builds the diffusers components (UNet, VAE) in fp32, but transformers 5
builds the text encoder in the dtype its ``config.json`` names ("dtype": "float16", written by ``save_pretrained``
of an fp16 model), so the first matrix product of the UNet with the text embeddings fails with "mat1 and mat2 must
have the same dtype".  Naming "float32" in the transformers components' configs makes every component load in
fp32 by default; the weight files stay fp16 (they are upcast on load), and an explicit ``torch_dtype`` still wins.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..files.images import atomic_write

DEFAULT_DTYPE = "float32"  # what diffusers builds its own components in when no torch_dtype is given
DTYPE_KEYS = ("dtype", "torch_dtype")  # transformers 5 writes "dtype"; 4.x wrote "torch_dtype"


def transformers_configs(folder: str | Path) -> list[Path]:
    """The config.json of every component of ``folder`` that transformers loads (per model_index.json)."""
    folder = Path(folder)
    index = json.loads((folder / "model_index.json").read_text())
    return [
        folder / name / "config.json"
        for name, entry in index.items()
        if isinstance(entry, list) and entry[0] == "transformers" and (folder / name / "config.json").is_file()
    ]


def load_in_one_dtype(folder: str | Path) -> list[Path]:
    """Rewrite the transformers components' configs of ``folder`` to default to fp32; returns those changed."""
    changed = []
    for path in transformers_configs(folder):
        config = json.loads(path.read_text())
        present = [key for key in DTYPE_KEYS if key in config] or [DTYPE_KEYS[0]]
        if all(config.get(key) == DEFAULT_DTYPE for key in present):
            continue
        config.update(dict.fromkeys(present, DEFAULT_DTYPE))
        text = json.dumps(config, indent=2, sort_keys=True) + "\n"
        atomic_write(path, lambda temp, text=text: Path(temp).write_text(text))
        changed.append(path)
    return changed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a diffusers pipeline folder (with model_index.json)")
    folder = parser.parse_args(argv).folder
    changed = load_in_one_dtype(folder)
    print("\n".join(f"{path}: dtype {DEFAULT_DTYPE}" for path in changed) or f"{folder}: already loads in one dtype")


if __name__ == "__main__":
    main()
