"""The axes of a sweep (``sampling.sweep``), checked without a model: strength ranges as the command line writes
them ('0:6:4', '0,1.5,3') and the shape of a grid (1-3 styles, a LoRA row only under a strength sweep)."""

from __future__ import annotations

import math

from ..errors import UserError
from .checks import MAX_SCALE, check_number

MAX_STYLES = 3  # axes of a grid: columns, rows, and the rows' second value
MAX_VALUES = 32  # strengths per axis
MAX_CELLS = 256  # cells of one grid


def parse_range(text: str, what: str) -> tuple[float, ...]:
    """'START:STOP:COUNT' (COUNT evenly spaced values, both ends included) or a list 'A,B,C'; checked."""
    parts = text.split(":")
    try:
        if len(parts) == 3:
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
            values = [start + (stop - start) * i / max(count - 1, 1) for i in range(count)] if count > 0 else []
        elif len(parts) == 1:
            values = [float(part) for part in text.split(",") if part.strip()]
        else:
            raise ValueError(text)
    except ValueError:
        raise UserError(
            f"'{text}' is not a range of {what}; give START:STOP:COUNT such as 0:6:4, or values such as 0,1.5,3."
        ) from None
    return check_values(values, what)


def check_values(values, what: str) -> tuple[float, ...]:
    """Refuse an empty list, too many values, or any value that is not a finite number within ±MAX_SCALE."""
    values = tuple(values)
    if not values:
        raise UserError(f"the range of {what} is empty; give at least one value, e.g. 0:6:4 or 0,1.5,3.")
    if len(values) > MAX_VALUES:
        raise UserError(f"{len(values)} values of {what} is more than {MAX_VALUES}; give fewer.")
    for value in values:
        check_number(f"every value of {what}", value, -MAX_SCALE, MAX_SCALE, hint="; e.g. 0:6:4")
    return tuple(float(value) for value in values)


def check_grid(styles: dict, lora_scales) -> tuple[dict[str, tuple[float, ...]], tuple[float, ...] | None]:
    """The axes of a sweep, checked: ({style: strengths}, LoRA scales or None); needs no model."""
    if not isinstance(styles, dict) or not 1 <= len(styles) <= MAX_STYLES:
        count = len(styles) if isinstance(styles, dict) else "no"
        raise UserError(
            f"a sweep takes 1 style (a strength sweep) or 2-{MAX_STYLES} (a blend grid), as "
            f"{{name: strengths}}; got {count} styles."
        )
    styles = {name: check_values(values, f"the strengths of '{name}'") for name, values in styles.items()}
    cells = math.prod(map(len, styles.values())) * (2 if lora_scales is not None else 1)
    if cells > MAX_CELLS:
        raise UserError(f"this grid has {cells} cells, more than {MAX_CELLS}; give fewer strengths.")
    if lora_scales is not None:
        strengths = next(iter(styles.values()))
        if len(styles) != 1:
            raise UserError(
                "the LoRA-scale baseline row goes with a strength sweep of one style; drop it or the other styles."
            )
        lora_scales = check_values(lora_scales, "the LoRA scales")
        if len(lora_scales) != len(strengths):
            raise UserError(
                f"give as many LoRA scales ({len(lora_scales)}) as style strengths ({len(strengths)}), "
                "so the rows line up."
            )
    return styles, lora_scales
