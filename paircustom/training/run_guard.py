"""What a training run may do to the files beside its output, decided before any model loads.

- A set of outputs that a killed run had half renamed is completed first (``safe_outputs.finish_interrupted_set``).
- No output may be an input (the content or style image of any pair).
- A checkpoint beside the output belongs to an earlier run: only ``--resume`` reads, replaces or removes it.
- ``--resume`` without a checkpoint says, in one line, that it trains from step 0.
- ``--resume`` without ``--style-start-step`` takes the checkpoint's style start, so that ``--resume --steps M``
  extends a finished run instead of being refused for a style start that moved with the step count.
- ``lock_run``: one writer per output (``safe_outputs.OutputLock``), the outputs checked again under the lock.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

from ..config.validate import arg
from ..errors import PairCustomWarning, UserError
from ..files.safe_outputs import OutputLock, check_not_input, finish_interrupted_set


def resume_settings(config):
    """An unresolved TrainConfig with, when resuming without an explicit style start, the checkpoint's."""
    if not config.resume or config.style_start_step is not None or config.method != "pair":
        return config
    path = config.checkpoint_path
    if not path.is_file():
        return config
    from .checkpoint import read_header

    start = read_header(path)["settings"].get("style_start")
    return config if start is None else replace(config, style_start_step=start)


def check_run_files(config, main: bool) -> None:
    """The checks of the module docstring for a resolved TrainConfig (``main``: the process that writes)."""
    from .checkpoint import numbered_checkpoints

    if main:
        finished = finish_interrupted_set(config.output)
        if finished:
            warnings.warn(
                f"finished writing {', '.join(repr(str(p)) for p in finished)}, which a killed run had "
                "left half renamed.",
                PairCustomWarning,
                stacklevel=3,
            )
    images = [("content image", config.content_image), ("style image", config.style_image)]
    for number, (content, style) in enumerate(config.extra_pairs, start=2):
        images += [(f"content image of pair {number}", content), (f"style image of pair {number}", style)]
    check_not_input(config.outputs(), images)
    path = config.checkpoint_path
    earlier = [path] * path.exists() + [p for _, p in numbered_checkpoints(path)]
    if earlier and not config.resume:
        raise UserError(
            f"'{earlier[0]}' is the checkpoint of an earlier run, which only {arg('resume')} reads or "
            "replaces; pass it to continue that run, or move the checkpoint away to start over."
        )


def announce_fresh_start(config, main: bool) -> None:
    """``--resume`` with no checkpoint to resume from: one line saying so (the run goes on from step 0)."""
    path = config.checkpoint_path
    if config.resume and not path.is_file() and main:
        warnings.warn(
            f"{arg('resume')} found no checkpoint '{path}'; training starts from step 0.",
            PairCustomWarning,
            stacklevel=3,
        )


def lock_run(config, resuming: bool) -> OutputLock:
    """Hold the outputs of a run (enter it); what another run wrote meanwhile is refused under the lock."""
    from ..config.checks import check_writable

    def recheck():
        for written in config.outputs():
            check_writable(written, overwrite=config.overwrite or resuming or written == config.checkpoint_path)

    return OutputLock([Path(config.output)], recheck)
