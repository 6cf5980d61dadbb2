"""A checkpoint checked completely before any of it is used: header schema and types, tensor dtypes and shapes,
and the step told three ways (header, loss history, AdamW's own step counts) agreeing.

A hand-made or damaged checkpoint raises ``ValueError`` with the first thing wrong (``checkpoint`` turns it
into one sentence); an honest checkpoint of any run passes.  AdamW counts its steps per parameter: the
content B's from step 0, the style B's from ``style_start`` (pair training), so each count is the header step
or the header step less the style start.
"""

from __future__ import annotations

import math
import re

import torch

HEADER_KEYS = {"version", "step", "settings", "history", "optimizer_scalars", "num_processes"}
GENERATOR_BYTES = torch.Generator().get_state().numel()  # the CPU generator's state (5056 bytes)
MAX_STEP = 1_000_000


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_header(header: dict) -> None:
    """Schema and types of the JSON header, and its step against its history and settings."""
    unknown = set(header) - HEADER_KEYS
    if unknown:
        raise ValueError(f"unknown header entries {sorted(unknown)}")
    step, settings, history = header.get("step"), header.get("settings"), header.get("history")
    if not _whole(step) or not 0 <= step <= MAX_STEP:
        raise ValueError(f"step {step!r:.40} is not a whole number of steps")
    if not isinstance(settings, dict):
        raise ValueError("no settings")
    max_steps, start = settings.get("max_steps"), settings.get("style_start", 0)
    if not _whole(max_steps) or not _whole(start) or not 0 <= start < max(max_steps, 1) or step > max_steps:
        raise ValueError(
            f"step {step} does not fit its settings (max_steps {max_steps!r:.20}, style_start {start!r:.20})"
        )
    if not isinstance(history, list) or len(history) != step:
        raise ValueError(f"a loss history of {len(history) if isinstance(history, list) else '?'} rows for step {step}")
    for index, row in enumerate(history):
        ok = (
            isinstance(row, list)
            and len(row) == 3
            and row[0] == index + 1
            and _whole(row[0])
            and all(value is None or _number(value) for value in row[1:])
            and any(value is not None for value in row[1:])
        )
        if not ok:
            raise ValueError(f"history row {index + 1} is {row!r:.60}, not [step, content loss, style loss]")
    scalars = header.get("optimizer_scalars")
    if not isinstance(scalars, dict) or not all(
        isinstance(k, str) and re.fullmatch(r"\d+\.\w+", k) and _number(v) for k, v in scalars.items()
    ):
        raise ValueError("optimizer scalars that are not numbers")
    processes = header.get("num_processes", 1)
    if not _whole(processes) or not 1 <= processes <= 65536:
        raise ValueError("num_processes is not a positive whole number")


def check_tensors(header: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Parameters, optimizer state and generators: names, dtypes, shapes and step counts that fit together."""
    count = sum(key.startswith("param.") for key in tensors)
    params = [tensors.get(f"param.{i}") for i in range(count)]
    if count == 0 or any(p is None or not p.is_floating_point() or not torch.isfinite(p).all() for p in params):
        raise ValueError("no trainable parameters, or parameters that are not finite floating-point tensors")
    processes = header.get("num_processes", 1)
    names = ["generator"] + [f"generator.{r}" for r in range(1, processes)]
    for name in names:
        state = tensors.get(name)
        if state is None or state.dtype != torch.uint8 or state.shape != (GENERATOR_BYTES,):
            raise ValueError(f"{name} is not a random generator's state")
    known = {f"param.{i}" for i in range(count)} | set(names)
    step, start = header["step"], header["settings"].get("style_start", 0)
    counts = []
    for key, value in tensors.items():
        if key in known:
            continue
        match = re.fullmatch(r"optimizer\.(\d+)\.(\w+)", key)
        if not match or int(match.group(1)) >= count:
            raise ValueError(f"unexpected tensor {key!r:.60}")
        index, entry = int(match.group(1)), match.group(2)
        if not value.is_floating_point() or not torch.isfinite(value).all():
            raise ValueError(f"{key} is not finite floating-point")
        if entry == "step":
            if value.ndim != 0:
                raise ValueError(f"{key} is not one number")
            counts.append(value.item())
        elif entry in ("exp_avg", "exp_avg_sq") and value.shape != params[index].shape:
            raise ValueError(f"{key} has shape {tuple(value.shape)}, its parameter {tuple(params[index].shape)}")
        elif entry == "exp_avg_sq" and (value < 0).any():
            raise ValueError(f"{key} holds negative second moments")
    counts += [v for k, v in header["optimizer_scalars"].items() if k.endswith(".step")]
    if any(c not in (step, step - start) for c in counts) or (step > 0 and max(counts, default=-1) != step):
        raise ValueError(f"the optimizer's step counts {sorted(set(counts))[:4]} disagree with step {step}")
