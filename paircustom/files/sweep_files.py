"""The files of a sweep: the labelled grid PNG, the animated GIF of a strength sweep, and the JSON sidecar with
every setting; all checked before any is written, each written atomically (temp file + rename)."""

from __future__ import annotations

import json
from pathlib import Path

from ..config.checks import check_writable
from ..errors import UserError


def sweep_outputs(path, animated: bool) -> dict[str, Path]:
    """{"grid": PATH.png, "animation": PATH.gif (strength sweeps), "settings": PATH.json} of ``path``."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UserError(f"the sweep's grid '{path}' must be a .png file (the GIF and JSON go beside it).")
    outputs = {"grid": path, "settings": path.with_suffix(".json")}
    if animated:
        outputs["animation"] = path.with_suffix(".gif")
    return outputs


def check_outputs(path, animated: bool, overwrite: bool) -> dict[str, Path]:
    """``sweep_outputs``, each refused if it exists (without ``overwrite``) or cannot be written; writes nothing."""
    outputs = sweep_outputs(path, animated)
    for output in outputs.values():
        check_writable(output, overwrite)
    return outputs


def save_sweep(result, path, overwrite: bool = False, extra: dict | None = None) -> list[Path]:
    """Write a ``SweepResult``'s grid, animation (1-D) and settings (plus ``extra``, e.g. the style files)."""
    from .grid_image import save_animation
    from .images import atomic_write, save_image

    outputs = check_outputs(path, len(result.styles) == 1, overwrite)
    settings = {**result.settings, **(extra or {}), "outputs": {kind: output.name for kind, output in outputs.items()}}
    text = json.dumps(settings, indent=2)
    written = [save_image(result.grid(), outputs["grid"], overwrite, text={"sweep": text})]
    if "animation" in outputs:
        frames = result.frames()
        written.append(atomic_write(outputs["animation"], lambda temp: save_animation(frames, temp)))
    written.append(atomic_write(outputs["settings"], lambda temp: Path(temp).write_text(text + "\n")))
    return written
