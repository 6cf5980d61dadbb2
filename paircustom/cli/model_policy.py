"""Which model ``generate`` and ``stylize`` load when the user names none: the policy for the model that a style
file records (its metadata's ``base_model``).  A style file may come from anyone, so its word alone decides
little:

1. ``--model`` given: that model, whatever the files say.
2. The file records "shapes": the embedded model.
3. The file records a local folder: used only if it exists here (and is a complete diffusers folder); else
   refused, naming the folder, with the advice to pass ``--model``.
4. The file records a hub id: used only if it is already in the local Hugging Face cache (no download);
   otherwise refused in one sentence.  paircustom never downloads a model because a file names it: pass
   ``--model <id>`` to download it deliberately.
5. No file records a model (files from other tools): the embedded "shapes" model.

Whichever it is, one line says which model loads and why (``announce``).
"""

from __future__ import annotations

from pathlib import Path

from ..config.model_names import HUB_ID, folder_or_hub_id
from ..config.validate import arg
from ..errors import UserError


def cached_hub_model(model_id: str) -> bool:
    """Is the hub model already downloaded (its model_index.json in the local cache)?  Never goes online."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(model_id, "model_index.json"), str)
    except Exception:  # a malformed id: not cached  # noqa: BLE001
        return False


def choose_model(given: str | None, recorded: str | None, style_file: str | Path | None) -> tuple[str, str]:
    """(model, why) under the policy of the module docstring; refusals are one sentence."""
    if given:
        return given, f"given with {arg('model')}"
    if recorded is None:
        return "shapes", f"no style file records a base model and no {arg('model')} was given"
    where = f"recorded in '{style_file}'"
    if recorded == "shapes":
        return "shapes", where
    path = Path(recorded).expanduser()
    if path.is_absolute() or path.exists() or not HUB_ID.match(recorded):
        if not path.is_dir():
            raise UserError(
                f"'{style_file}' records the base model folder '{recorded}', which does not exist "
                f"here; give the model with {arg('model')}."
            )
        return folder_or_hub_id(recorded, "model", "model_index.json"), f"{where} (a local folder)"
    if not cached_hub_model(recorded):
        raise UserError(
            f"'{style_file}' records the hub model '{recorded}', which is not downloaded here; "
            "paircustom never downloads a model because a file names it: pass "
            f"{arg('model')} {recorded} to download it, or {arg('model')} with another model."
        )
    return recorded, f"{where} (found in the local Hugging Face cache; nothing is downloaded)"


def announce(model: str, why: str) -> None:
    """One line on standard output: the model that loads and why."""
    from .. import distributed
    from ..errors import printable

    if distributed.is_main():
        print(printable(f"model: {model} ({why})"), flush=True)
