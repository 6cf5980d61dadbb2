"""The files of a local model folder, checked before anything loads: model_index.json names components that
exist, weights are safetensors (pickled .bin files are never loaded), and paircustom.json holds settings of the
right types and ranges.  A damaged file is refused in one sentence naming it, never a traceback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import UserError, reason
from .validate import show

SETTINGS_FILE = "paircustom.json"
PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# train_defaults: (kind, low, high) of each key a model may set; the key names are those the files use.
TRAIN_DEFAULTS = {
    "learning_rate": (float, 1e-12, 1.0),
    "max_steps": (int, 1, 1_000_000),
    "style_start": (int, 0, 1_000_000),
    "rank": (int, 1, 100_000),
    "resolution": (int, 8, 4096),
    "gradient_accumulation": (int, 1, 1024),
}
TEXT_KEYS = ("family", "name")


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise UserError(
            f"{what} '{path}' is not readable JSON ({reason(error)}); fix it, or save the model again "
            "with save_pretrained."
        ) from None


def read_settings(folder: str | Path | None) -> dict:
    """paircustom.json of a model folder ({} without one), every value checked."""
    path = Path(folder) / SETTINGS_FILE if folder else None
    if path is None or not path.is_file():
        return {}
    settings = _read_json(path, "the model settings")
    where = f"the model settings '{path}'"
    if not isinstance(settings, dict):
        raise UserError(f"{where} hold {type(settings).__name__} where a JSON object is expected; fix or delete it.")
    for key in TEXT_KEYS:
        if key in settings and not isinstance(settings[key], str):
            raise UserError(f"{where} give {key} as {show(settings[key])}; it must be text. Fix or delete the file.")
    defaults = settings.get("train_defaults", {})
    if not isinstance(defaults, dict):
        raise UserError(f"{where} give train_defaults as {show(defaults)}; it must be a JSON object of settings.")
    for key, value in defaults.items():
        if key not in TRAIN_DEFAULTS:
            raise UserError(
                f"{where} set an unknown training default {show(key)}; known: "
                f"{', '.join(TRAIN_DEFAULTS)}. Fix or delete the file."
            )
        kind, low, high = TRAIN_DEFAULTS[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number or (kind is int and not isinstance(value, int)) or not low <= value <= high:
            kind_text = "a whole number" if kind is int else "a number"
            raise UserError(
                f"{where} set train_defaults.{key} to {show(value)}; it must be {kind_text} between "
                f"{low:g} and {high:g}. Fix or delete the file."
            )
    steps = defaults.get("max_steps", 750)
    if defaults.get("style_start", 0) >= steps:
        raise UserError(
            f"{where} set train_defaults.style_start ({defaults['style_start']}) at or past max_steps "
            f"({steps}); the style would never train. Fix or delete the file."
        )
    return settings


def check_model_folder(folder: str | Path) -> None:
    """A local diffusers folder: its model_index.json readable, each component it names present, no pickles."""
    folder = Path(folder)
    index = _read_json(folder / "model_index.json", "the model index")
    if not isinstance(index, dict):
        raise UserError(
            f"the model index '{folder / 'model_index.json'}' is not a JSON object; save the model again "
            "with save_pretrained."
        )
    components = [
        name
        for name, value in index.items()
        if not name.startswith("_")
        and isinstance(value, list)
        and len(value) == 2
        and value[0] is not None
        and value[1] is not None
    ]
    missing = [name for name in components if not (folder / name).is_dir()]
    if missing:
        raise UserError(
            f"the model folder '{folder}' lacks {', '.join(name + '/' for name in missing)} that its "
            "model_index.json names (nothing is downloaded for a local folder); copy the whole folder "
            "again, or save it with save_pretrained."
        )
    for name in components:
        files = [p for p in (folder / name).iterdir() if p.is_file()]
        if any(p.suffix in PICKLED for p in files) and not any(p.suffix == ".safetensors" for p in files):
            pickled = next(p for p in files if p.suffix in PICKLED)
            raise UserError(
                f"the model component '{pickled}' is pickled weights, which paircustom never loads "
                "because unpickling a file can run code; convert the model to .safetensors (diffusers' "
                "save_pretrained writes them) and try again."
            )
