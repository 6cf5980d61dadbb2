"""Resumable training state as ONE .safetensors file: tensors as tensors, everything else as JSON.

Nothing here unpickles: a checkpoint (or a file someone put in its place) can hold
numbers and text, never code.  The header also records the settings that shape
the result, so ``--resume`` with other settings is refused with what changed.

    param.<i>                the trainable tensors in optimizer order: the content adapters' B's, then the style
                             adapter's (with orthogonal=False also their A's, which train there), then a
                             learned style word's vectors (--learn-style-word)
    optimizer.<i>.<key>      tensor entries of the optimizer state (AdamW: step, exp_avg, exp_avg_sq)
    generator                the noise generator's state (uint8) of process 0 ...
    generator.<r>            ... and of process r of a run under several processes
    header "paircustom_checkpoint": {"version", "step", "settings", "history", "optimizer_scalars",
                                     "num_processes" (absent: 1)}

With ``keep`` > 1 (--keep-checkpoints) each checkpoint is also kept under a numbered name,
``<stem>.checkpoint-step00250.safetensors``, and the newest ``keep`` of those stay; the rolling
``<stem>.checkpoint.safetensors`` is a hard link to the newest (no extra space) and is what
``--resume`` reads.  To go back, copy a numbered file over the rolling name."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from ..config.train import file_name
from ..errors import PairCustomWarning, UserError, reason
from ..files.images import atomic_write
from ..files.safe_outputs import saver
from .checkpoint_check import check_header, check_tensors

VERSION = 1
HEADER_KEY = "paircustom_checkpoint"
# Settings that change the trained weights; the rest (output, progress, preview/checkpoint cadence) may differ.
RESULT_SETTINGS = (
    "model",
    "content_rank",
    "style_rank",
    "alpha",
    "target_modules",
    "basis_seed",
    "learning_rate",
    "weight_decay",
    "max_steps",
    "style_start_step",
    "gradient_accumulation",
    "resolution",
    "seed",
    "mixed_precision",
    "use_8bit_adam",
    "method",
    "orthogonal",
    "content_prompt",
    "style_prompt",
    "scale_lr",
    "pair_subjects",
    "learn_style_word",
    "style_word_lr",
)
# What a checkpoint written before a setting existed meant by it.
LEGACY_SETTINGS = {
    "scale_lr": False,
    "extra_pairs_sha256": [],
    "pair_subjects": [],
    "learn_style_word": False,
    "style_word_lr": None,
}


def result_settings(config) -> dict:
    """The settings of ``config`` that shape the result, plus fingerprints of the two images, as JSON values."""
    settings = {file_name(key): getattr(config, key) for key in RESULT_SETTINGS}
    digest = lambda path: hashlib.sha256(Path(path).read_bytes()).hexdigest()  # noqa: E731
    for role in ("content_image", "style_image"):
        settings[role + "_sha256"] = digest(getattr(config, role))
    settings["extra_pairs_sha256"] = [[digest(content), digest(style)] for content, style in config.extra_pairs]
    return json.loads(json.dumps(settings))  # tuples become lists, as they come back from the file


@dataclass
class Checkpoint:
    step: int
    settings: dict
    history: list
    params: list[torch.Tensor]
    optimizer_state: dict  # {param index: {key: tensor or JSON value}}
    generator_states: list[torch.Tensor]  # one per process, in process order


def split_optimizer_state(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's per-parameter state {index: {key: value}} -> (tensors "optimizer.<i>.<key>", JSON scalars
    "<i>.<key>"), so that it can be stored without pickle."""
    tensors, scalars = {}, {}
    for index, entries in state.items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, scalars


def join_optimizer_state(tensors: dict[str, torch.Tensor], scalars: dict) -> dict[int, dict]:
    """The inverse of ``split_optimizer_state`` (other entries of ``tensors`` are ignored)."""
    state: dict[int, dict] = {}
    for key, value in [
        *((k, v) for k, v in tensors.items() if k.startswith("optimizer.")),
        *((f"optimizer.{k}", v) for k, v in scalars.items()),
    ]:
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    return state


def numbered_path(path: str | Path, step: int) -> Path:
    """style.checkpoint.safetensors -> style.checkpoint-step00250.safetensors"""
    path = Path(path)
    return path.with_name(f"{path.name[: -len('.safetensors')]}-step{step:05d}.safetensors")


def numbered_checkpoints(path: str | Path, temporary: bool = False) -> list[tuple[int, Path]]:
    """(step, file) of the numbered checkpoints beside the rolling ``path``, oldest first; with ``temporary``,
    the temporary files that killed writes of them left (step 0)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    name = re.escape(path.name[: -len(".safetensors")]) + r"-step(\d{5,})\.safetensors"
    pattern = re.compile(rf"\.{name}\.[A-Za-z0-9_]{{8}}\.safetensors$" if temporary else rf"{name}$")
    return sorted(
        (0 if temporary else int(m.group(1)), p)
        for p in path.parent.iterdir()
        if (m := pattern.match(p.name)) and p.is_file() and not p.is_symlink()
    )


def save_checkpoint(path: str | Path, checkpoint: Checkpoint, keep: int = 1) -> Path:
    """Write atomically: a kill at any moment leaves the previous checkpoint (or none), never half of one.

    ``keep`` > 1: write the numbered checkpoint, make the rolling name a link to it, then delete the numbered
    checkpoints older than the newest ``keep`` (those after this step, left by a run you went back from, stay
    until this run overwrites them).
    """
    if keep > 1:
        numbered = save_checkpoint(numbered_path(path, checkpoint.step), checkpoint)
        _link(numbered, Path(path))
        older = [p for step, p in numbered_checkpoints(path) if step <= checkpoint.step]
        for stale in older[:-keep]:
            stale.unlink(missing_ok=True)
        return Path(path)
    tensors = {f"param.{i}": p.detach().cpu().contiguous() for i, p in enumerate(checkpoint.params)}
    for index, state in enumerate(checkpoint.generator_states):
        tensors["generator" if index == 0 else f"generator.{index}"] = state.cpu().contiguous()
    optimizer_tensors, scalars = split_optimizer_state(checkpoint.optimizer_state)
    tensors.update(optimizer_tensors)
    header = {
        "version": VERSION,
        "step": checkpoint.step,
        "settings": checkpoint.settings,
        "history": checkpoint.history,
        "optimizer_scalars": scalars,
        "num_processes": len(checkpoint.generator_states),
    }
    metadata = {HEADER_KEY: json.dumps(header)}
    return atomic_write(path, saver(tensors, metadata))


def _link(source: Path, target: Path) -> None:
    """Point ``target`` at ``source``'s data atomically: a hard link, or a copy where links are not possible."""
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(handle)
    try:
        os.unlink(temp)
        try:
            os.link(source, temp)
        except OSError:  # file systems without hard links
            shutil.copyfile(source, temp)
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def read_header(path: str | Path) -> dict:
    """The JSON header only (cheap): for checking settings before any model loads."""
    try:
        with safe_open(str(path), framework="pt") as file:
            header = json.loads((file.metadata() or {})[HEADER_KEY])
        if not isinstance(header, dict) or header.get("version") != VERSION:
            raise ValueError(f"unknown checkpoint version {header.get('version') if isinstance(header, dict) else '?'}")
        if not isinstance(header.get("step"), int) or not isinstance(header.get("settings"), dict):
            raise ValueError("no step or settings")
        check_header(header)
    except Exception as error:  # damaged file, foreign file, hand-edited header
        raise unusable_checkpoint(path, reason(error)) from None
    return header


def check_same_settings(path: str | Path, header: dict, settings: dict) -> None:
    """Refuse to resume under settings other than those the checkpoint was written with; list the changes.

    Only ``max_steps`` may grow (train longer): that is announced, not refused.
    """
    saved, step = header["settings"], header["step"]
    saved = {**LEGACY_SETTINGS, **saved}
    changed = [
        f"{key} {saved.get(key)!r} -> {value!r}"
        for key, value in settings.items()
        if saved.get(key) != value and key != "max_steps"
    ]
    if changed:
        raise UserError(
            f"the checkpoint '{path}' was written with other settings ({'; '.join(changed)}); resume with "
            "the same settings and images, or delete the checkpoint to start over."
        )
    if settings["max_steps"] < step:
        raise UserError(
            f"the checkpoint '{path}' is at step {step}, past max_steps {settings['max_steps']}; "
            "give at least that many steps, or delete the checkpoint to start over."
        )
    if settings["max_steps"] != saved.get("max_steps"):
        warnings.warn(
            f"resuming at step {step} and training to {settings['max_steps']} steps (the checkpoint was "
            f"written for {saved.get('max_steps')}).",
            PairCustomWarning,
            stacklevel=3,
        )


def load_checkpoint(path: str | Path) -> Checkpoint:
    header = read_header(path)
    try:
        with safe_open(str(path), framework="pt") as file:
            tensors = {key: file.get_tensor(key) for key in file.keys()}
        check_tensors(header, tensors)
        params = [tensors[f"param.{i}"] for i in range(sum(k.startswith("param.") for k in tensors))]
        state = join_optimizer_state(tensors, header["optimizer_scalars"])
        generators = [tensors["generator"]] + [
            tensors[f"generator.{r}"] for r in range(1, header.get("num_processes", 1))
        ]
        return Checkpoint(header["step"], header["settings"], header["history"], params, state, generators)
    except Exception as error:
        raise unusable_checkpoint(path, reason(error)) from None


def unusable_checkpoint(path, reason: str) -> UserError:
    return UserError(
        f"cannot resume from '{path}' ({reason}); delete it to start over, or use the same model and "
        "ranks as the run that wrote it."
    )
