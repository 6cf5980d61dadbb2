"""Models by name, before anything loads: hub ids, local folders and the embedded "shapes" model, with the
settings in their paircustom.json; the names of the weight dtypes.  Imports neither torch nor diffusers, so the
command line can check names (and build its parser) at once.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import UserError
from ..shapes import MODEL_DIR

# A Hugging Face hub id: "name" or "owner/name" (letters, digits, "-", "_", "."; not starting with "." or "-").
HUB_ID = re.compile(r"^(?:[A-Za-z0-9_][\w.-]*/)?[A-Za-z0-9_][\w.-]*$")
DTYPE_NAMES = ("fp32", "fp16", "bf16")  # of weights: families.DTYPES maps them to torch dtypes


def folder_or_hub_id(name: str, what: str, marker: str) -> str:
    """An existing folder holding ``marker`` as its absolute path, else a hub id; refuse a missing folder."""
    path = Path(name).expanduser()
    if path.exists():
        if not (path / marker).is_file():
            raise UserError(
                f"'{name}' is not a diffusers {'pipeline' if what == 'model' else what} folder (no {marker}); "
                "give a folder written by save_pretrained or a hub id."
            )
        return str(path.resolve())
    if not HUB_ID.match(name) or (path.parent.name and path.parent.is_dir()):  # ./x, /a/b, dir/missing
        raise UserError(
            f"the {what} folder '{name}' does not exist; give a diffusers folder written by "
            f"save_pretrained or a hub id such as {EXAMPLE_IDS[what]}."
        )
    return name


EXAMPLE_IDS = {
    "model": "stabilityai/stable-diffusion-xl-base-1.0 (or 'shapes')",
    "VAE": "madebyollin/sdxl-vae-fp16-fix",
    "ControlNet": "diffusers/controlnet-canny-sdxl-1.0",
}


def is_hub_id(model: str) -> bool:
    """True for a model that is neither the embedded one nor a local folder."""
    return model != "shapes" and not Path(model).expanduser().exists()


def resolve_model(model: str) -> tuple[str, dict]:
    """Map a model name to (absolute folder or hub id, its paircustom.json settings or {}).

    "shapes" names the small model shipped inside the package; a local folder
    saved with ``save_pretrained`` becomes its absolute path (style files then
    work from any folder); anything else must look like a hub id.  Nothing is loaded.
    """
    if model == "shapes":
        model = str(MODEL_DIR)
        if not (MODEL_DIR / "model_index.json").is_file():
            raise UserError(f"the embedded shapes model is missing from {MODEL_DIR}; reinstall paircustom.")
    model = folder_or_hub_id(model, "model", "model_index.json")
    if Path(model).is_dir():
        from .model_settings import check_model_folder

        check_model_folder(model)
    return model, folder_settings(model)


def folder_settings(folder: str | None) -> dict:
    """The paircustom.json of a model folder ({} for a hub id, or a folder without one)."""
    from .model_settings import read_settings

    return read_settings(folder)


def pipeline_settings(pipe) -> dict:
    """The paircustom.json settings of the folder ``pipe`` was loaded from ({} for one built in code)."""
    return folder_settings(pipe.name_or_path)
