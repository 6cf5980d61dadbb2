"""Everything a training run checks and sets up before its first step, entered through ``checked_run``.

1. Settings: with ``--resume`` and no ``--style-start-step``, the checkpoint's style start (so that ``--resume
   --steps M`` extends a finished run instead of being refused for a style start that moved with the step count);
   then the model's defaults (``TrainConfig.resolved``); the pair's images; the settings against the model's
   config files (targets, ranks, prompts, resolution) and a learned style word against the family.
2. The files beside the output, before any model loads:
   - a set of outputs that a killed run had half renamed is completed first (``safe_outputs.finish_interrupted_set``);
   - no output may be an input (the content or style image of any pair);
   - a checkpoint beside the output belongs to an earlier run: only ``--resume`` reads, replaces or removes it;
   - a checkpoint to resume from must come from the same settings and number of processes;
   - ``--resume`` without a checkpoint says, in one line, that it trains from step 0.
3. ``lock_run``: one writer per output (``safe_outputs.OutputLock``), the outputs checked again under the lock;
   ``accelerator_of``: the Accelerator of this process; ``optimizer_class``.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from .. import distributed
from ..config.checks import check_writable, remove_stale_temp_files
from ..config.train import TrainConfig
from ..config.validate import arg
from ..errors import PairCustomWarning, UserError
from ..files.images import load_pair, say_resized
from ..files.safe_outputs import OutputLock, check_not_input, finish_interrupted_set
from ..models.plan import ModelPlan
from ..models.registry import DTYPES, load_pipeline
from .checkpoint import check_same_settings, numbered_checkpoints, read_header, result_settings


def checked_run(config: TrainConfig, pipe=None) -> tuple[TrainConfig, object, list, Path | None]:
    """Resolve an unresolved config (with ``pipe``: that pipeline's defaults), load its pair, and check the run
    against the model (from its config files, or ``pipe``) and the files beside its output, before the weights
    load: (the resolved config with the family's targets, the pipeline if it had to load to tell its family, the
    pair's images as ``load_pair`` gives them, the checkpoint to resume from).  Its notices come after every
    refusal: --resume starting over, then the images that training resizes."""
    config = resume_settings(config).resolved(pipe)
    images = [image for content, style in config.pairs for image in load_pair(content, style, config.resolution)]
    if config.checkpoint_every and os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        raise UserError(
            "checkpoints (--checkpoint-every) are not supported under DeepSpeed, whose optimizer keeps "
            "its state in shards; train without them, or use plain DDP (no DeepSpeed config)."
        )
    plan = ModelPlan.of_model(config.model) if pipe is None else ModelPlan.of_pipeline(pipe)
    if plan is None:  # a hub id whose config files did not download: its family is known once it loads
        pipe = load_pipeline(config.model, DTYPES[config.dtype], config.variant, config.vae)
        plan = ModelPlan.of_pipeline(pipe)
    config = config.with_targets(plan.lora_targets)
    plan.check_targets(
        config.target_modules, config.content_rank, config.style_rank, config.orthogonal, len(config.pairs)
    )
    for content_prompt, _ in config.pair_prompts:
        plan.check_prompt(content_prompt, config.style_suffix)
    plan.check_resolution(config.resolution)
    main, processes = distributed.is_main(), distributed.world_size()
    check_run_files(config, main)  # inputs as outputs, earlier checkpoints, interrupted sets
    check_style_word_run(config, plan.family, processes)
    resume_from = check_run_inputs(config, processes)
    if config.resume and resume_from is None and main:
        warnings.warn(
            f"{arg('resume')} found no checkpoint '{config.checkpoint_path}'; training starts from step 0.",
            PairCustomWarning,
            stacklevel=2,
        )
    say_resized(config.pairs, images, config.resolution)
    return config, pipe, images, resume_from


def resume_settings(config: TrainConfig) -> TrainConfig:
    """An unresolved TrainConfig with, when resuming without an explicit style start, the checkpoint's."""
    if not config.resume or config.style_start_step is not None or config.method != "pair":
        return config
    path = config.checkpoint_path
    if not path.is_file():
        return config
    start = read_header(path)["settings"].get("style_start")
    return config if start is None else replace(config, style_start_step=start)


def check_style_word_run(config: TrainConfig, family: str, processes: int) -> None:
    """The settings of a run with (or without) a learned style word (``style_word``)."""
    if not config.learn_style_word:
        if config.style_word_lr is not None:
            raise UserError("a style word learning rate needs --learn-style-word; add it, or drop --style-word-lr.")
        return
    if config.method == "slider" or f" {config.style} " not in f"{config.style_suffix} ":
        raise UserError(
            f"--learn-style-word learns the style words ({config.style!r}), so they must stand in the style "
            f"prompt's suffix ({config.style_suffix!r}) and the method must use it (not the slider)."
        )
    if family not in ("sd", "sdxl") or processes > 1:
        raise UserError(
            f"--learn-style-word trains SD and SDXL models in one process (this is {family} in {processes}); "
            "drop the option, or run it without accelerate launch."
        )


def check_run_files(config: TrainConfig, main: bool) -> None:
    """Interrupted sets, inputs as outputs and earlier checkpoints (module docstring, 2; ``main``: the process
    that writes)."""
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


def check_run_inputs(config: TrainConfig, processes: int = 1) -> Path | None:
    """Outputs and resume state of a resolved TrainConfig run by ``processes`` processes, before any model loads.

    Returns the checkpoint to resume from (None: start from step 0); deletes temporary files
    that a killed earlier run left beside the outputs once everything else is in order.
    """
    path, output = config.checkpoint_path, Path(config.output)
    legacy = output.with_suffix(".checkpoint.pt")  # a pickled checkpoint: refused, never loaded (unpickling runs code)
    resuming = config.resume and path.is_file()
    if config.resume and not resuming and legacy.is_file():
        raise UserError(
            f"'{legacy}' is a checkpoint of an older paircustom, written with pickle, which is never "
            "loaded because unpickling a file can run code; delete it and train from the start."
        )
    if config.resume and not resuming and output.exists() and not config.overwrite:
        raise UserError(
            f"--resume found no checkpoint '{path}' and '{output}' already exists; pass --overwrite to "
            "train it again from the start, or choose another output."
        )
    check_outputs_writable(config, resuming)
    if resuming:
        header = read_header(path)
        written_by = header.get("num_processes", 1)
        if written_by != processes:
            raise UserError(
                f"the checkpoint '{path}' was written by a run of {written_by} process"
                f"{'es' * (written_by != 1)} and this run has {processes}; resume with {written_by} "
                "(each process continues its own noise draws), or delete the checkpoint to start over."
            )
        check_same_settings(path, header, result_settings(config))
    if distributed.is_main():  # only process 0 writes, or deletes
        for written in config.outputs():
            remove_stale_temp_files(written)
        for _, stale in numbered_checkpoints(path, temporary=True):
            stale.unlink(missing_ok=True)
    return path if resuming else None


def check_outputs_writable(config: TrainConfig, resuming: bool) -> None:
    """Every output of the run may be written: new, or replaced with --overwrite; a resumed run replaces its own
    outputs, and the checkpoint is always its run's own."""
    for written in config.outputs():
        check_writable(written, overwrite=config.overwrite or resuming or written == config.checkpoint_path)


def lock_run(config: TrainConfig, resuming: bool) -> OutputLock:
    """Hold the outputs of a run (enter it); what another run wrote meanwhile is refused under the lock."""
    return OutputLock([Path(config.output)], lambda: check_outputs_writable(config, resuming))


def accelerator_of(config: TrainConfig, device: str) -> tuple[TrainConfig, object]:
    """(the config, without mixed precision off a GPU; the Accelerator of this process).  Several processes:
    parameters a step does not use are left out of DDP (``PairTrainer._train_only``), so DDP keeps its default of not
    searching the graph for unused ones."""
    from accelerate import Accelerator

    if config.mixed_precision != "no" and not device.startswith("cuda"):
        warnings.warn(f"mixed precision needs a GPU; training without it on {device}.", PairCustomWarning, stacklevel=3)
        config = replace(config, mixed_precision="no")
    if device.startswith("cuda:"):
        torch.cuda.set_device(torch.device(device))  # the Accelerator takes the current GPU
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation,
        cpu=device == "cpu",
    )
    return config, accelerator


def optimizer_class(config: TrainConfig, device="cpu"):
    """AdamW, fused on a CPU or CUDA device (one kernel updates every adapter, not a Python loop over the
    tensors); or bitsandbytes' 8-bit AdamW with ``use_8bit_adam``."""
    if not config.use_8bit_adam:
        return functools.partial(torch.optim.AdamW, fused=torch.device(device).type in ("cpu", "cuda"))
    try:
        import bitsandbytes
    except ImportError:
        raise UserError(
            "--use-8bit-adam needs bitsandbytes; run 'pip install bitsandbytes' or drop the option."
        ) from None
    return bitsandbytes.optim.AdamW8bit
