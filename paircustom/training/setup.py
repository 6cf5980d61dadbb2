"""What a training run sets up before its first step: its settings checked against the model, the Accelerator
of this process and the optimizer class."""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from .. import distributed
from ..config.train import TrainConfig
from ..errors import PairCustomWarning, UserError
from ..files.images import say_resized
from ..models.plan import ModelPlan
from ..models.registry import DTYPES, load_pipeline
from .checkpoint import check_run_inputs
from .run_guard import announce_fresh_start, check_run_files
from .style_word import check_style_word_run


def checked_run(config: TrainConfig, images, pipe=None) -> tuple[TrainConfig, object, Path | None]:
    """Check a run's settings against the model (from its config files, or ``pipe``) before the weights load:
    (the config with the family's targets, the pipeline if it had to load to tell its family, the checkpoint to
    resume from).  Its notices come after every refusal: --resume starting over, then the pair's ``images``
    (``load_pair``'s) that training resizes."""
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
    check_run_files(config, distributed.is_main())  # inputs as outputs, earlier checkpoints, interrupted sets
    check_style_word_run(config, plan.family, distributed.world_size())
    resume_from = check_run_inputs(config, distributed.world_size())
    announce_fresh_start(config, distributed.is_main())
    say_resized(config.pairs, images, config.resolution)
    return config, pipe, resume_from


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
