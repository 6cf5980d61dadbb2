"""Up-front checks of numbers and output paths: bad input is one sentence, before any model loads.

Bounds are wide enough for every sensible setting and narrow enough that the
arithmetic stays finite in float32 (a learning rate of 1e30 or a guidance scale
of -1e30 would otherwise write all-NaN files and black images).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from ..errors import UserError

MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds; one bit is kept for seed + process index
MAX_BASIS_SEED = 2**32 - 1  # basis.py multiplies it by ~1e6 before seeding
MAX_SIDE = 4096  # pixels: beyond any released SD/SDXL size, and 16x SDXL's memory
MAX_SCALE = 100.0  # CFG, style and LoRA scales; published values are below 20
MAX_STEPS = 1_000_000
STYLE_REUSE = ("forecast", "hold")  # what a step between style recomputations adds (``StyleSchedule``)
MAX_IMAGES = 64  # images per prompt in one batch


def check_number(name: str, value, low, high, *, integer: bool = False, hint: str = "", required: bool = False) -> None:
    """Refuse ``value`` unless it is a finite number (an integer with ``integer``) in [low, high]; None passes
    (not given) unless ``required``."""
    if value is None and not required:
        return
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise UserError(f"{name} must be a whole number (got {value!r}){hint}.")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number (got {value!r}){hint}.")
    if not low <= value <= high:
        show = (lambda x: str(x)) if integer else (lambda x: f"{x:g}")  # noqa: E731  seeds stay exact
        raise UserError(f"{name} must lie between {show(low)} and {show(high)} (got {show(value)}){hint}.")


def check_sampling(
    guidance_scale: float,
    style_scales: dict[str, float],
    style_start_fraction: float,
    steps: int,
    height: int | None,
    width: int | None,
    seed: int | None,
    num_images: int,
    factor: int = 8,
    max_steps: int = 1000,
    lora_scale: float | None = None,
    style_end: float | None = None,
    style_interval: int = 1,
    style_tolerance: float | None = None,
    style_reuse: str | None = None,
) -> None:
    """The numbers of one generation call; ``factor`` is the VAE's, ``max_steps`` the scheduler's train steps
    (``style_reuse`` None: not checked)."""
    from .validate import arg  # deferred: this module stays on the lowest import floor

    check_number(arg("guidance_scale"), guidance_scale, -MAX_SCALE, MAX_SCALE, hint="; the paper uses 5", required=True)
    for name, scale in style_scales.items():
        for value in scale if isinstance(scale, tuple) else (scale,):  # a tuple: one per prompt
            check_number(f"the scale of style '{name}'", value, -MAX_SCALE, MAX_SCALE, hint="; the paper uses 3")
    check_number(arg("lora_scale"), lora_scale, -MAX_SCALE, MAX_SCALE, hint="; 1 applies the style as trained")
    start, end = arg("style_start_fraction"), arg("style_end")
    check_number(start, style_start_fraction, 0, 1, hint=" (a fraction of the steps)", required=True)
    check_number(end, style_end, 0, 1, hint=" (a fraction of the steps)")
    if style_end is not None and style_end <= style_start_fraction:
        raise UserError(
            f"{end} ({style_end:g}) must come after {start} ({style_start_fraction:g}); "
            "with no style steps left, drop the styles instead."
        )
    interval_hint = "; 1 recomputes the style terms on every step"
    check_number(arg("style_interval"), style_interval, 1, MAX_STEPS, integer=True, hint=interval_hint, required=True)
    check_number(arg("style_tolerance"), style_tolerance, 0, MAX_SCALE, hint="; e.g. 0.1, or omit it")
    if style_reuse is not None and style_reuse not in STYLE_REUSE:
        raise UserError(f"{arg('style_reuse')} must be {' or '.join(map(repr, STYLE_REUSE))} (got {style_reuse!r}).")
    steps_hint = f"; the scheduler has {max_steps} timesteps"
    check_number(arg("num_inference_steps"), steps, 1, max_steps, integer=True, hint=steps_hint, required=True)
    for side, value in (("height", height), ("width", width)):
        check_number(arg(side), value, factor, MAX_SIDE, integer=True, hint=" pixels")
        if value is not None and value % factor:
            raise UserError(f"{arg('height')} and {arg('width')} must be multiples of {factor}; got {side} {value}.")
    check_number(arg("seed"), seed, 0, MAX_SEED, integer=True)
    check_number(arg("num_images_per_prompt"), num_images, 1, MAX_IMAGES, integer=True, required=True)


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_folder_writable(folder: str | Path, what: str = "output folder") -> None:
    """Refuse a folder that is a file, lies under a file, or cannot be written; nothing is created."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"the {what} '{folder}' is a file, not a folder; give a folder path.")
    existing = _existing_ancestor(folder)
    if not existing.is_dir():
        raise UserError(f"'{folder}' cannot be made: '{existing}' is a file, not a folder; choose another path.")
    if not _can_write_in(existing):
        raise UserError(f"cannot write in '{existing}' (read-only or no permission); choose another output path.")


def _can_write_in(folder: Path) -> bool:
    """Try it: permission bits say nothing to root, and read-only mounts only show on writing."""
    probe = folder / f".paircustom-probe-{os.getpid()}"
    try:
        probe.touch(exist_ok=False)
    except OSError:
        return False
    probe.unlink()
    return True


def check_writable(path: str | Path, overwrite: bool) -> Path:
    """Refuse an output that exists (unless ``overwrite``), is a folder, or cannot be written; create nothing."""
    from .validate import special_file

    path = Path(path)
    if path.is_dir():
        raise UserError(f"the output '{path}' is a folder; give a file path such as '{path / 'out'}{path.suffix}'.")
    kind = special_file(path)
    if kind:
        raise UserError(
            f"the output '{path}' is {kind}, which is never replaced, not even with --overwrite; "
            "choose a regular file path."
        )
    if path.exists() and not overwrite:
        raise UserError(f"'{path}' already exists; pass --overwrite (overwrite=True) or choose another output path.")
    check_folder_writable(path.parent)
    return path


def temp_pattern(path: Path) -> re.Pattern:
    """Names that ``atomic_write`` gives its temporary files for ``path`` (mkstemp: 8 random characters)."""
    return re.compile(re.escape(f".{path.name}.") + r"[A-Za-z0-9_]{8}" + re.escape(path.suffix) + "$")


def remove_stale_temp_files(path: str | Path) -> list[Path]:
    """Delete temporary files an interrupted write of ``path`` left beside it; return what was removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = temp_pattern(path)
    stale = [p for p in path.parent.iterdir() if pattern.match(p.name) and p.is_file() and not p.is_symlink()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
