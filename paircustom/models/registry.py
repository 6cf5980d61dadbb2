"""The registry of all model families and loading a model by name.

- ``sd``, ``sdxl``: the UNets, in ``unet``;
- ``sd3``, ``flux``: the flow-matching transformers, in ``flow``.
"""

from __future__ import annotations

import pickle

import torch
from diffusers import DiffusionPipeline

from ..config.model_names import DTYPE_NAMES, folder_or_hub_id, resolve_model
from ..errors import UserError
from .family import Family
from .flow import Flux, StableDiffusion3
from .loading_bars import loading_bars_for
from .unet import StableDiffusion, StableDiffusionXL

DTYPES = dict(zip(DTYPE_NAMES, (torch.float32, torch.float16, torch.bfloat16)))


FAMILIES: dict[str, Family] = {f.name: f for f in (StableDiffusion(), StableDiffusionXL(), StableDiffusion3(), Flux())}


def family_of(pipe) -> Family:
    """The family of a loaded diffusers pipeline (none of the pipeline classes subclasses another)."""
    for family in FAMILIES.values():
        if isinstance(pipe, tuple(c for c in (family.pipeline_class, family.controlnet_class) if c is not None)):
            return family
    raise UserError(
        f"{type(pipe).__name__} is not supported; paircustom works with StableDiffusionPipeline (SD 1.x/2.x), "
        "StableDiffusionXLPipeline (SDXL), their ControlNet pipelines, StableDiffusion3Pipeline and FluxPipeline."
    )


def load_pipeline(
    model: str,
    dtype=torch.float32,
    variant: str | None = None,
    vae: str | None = None,
) -> DiffusionPipeline:
    """Load an SD, SDXL, SD3 or Flux pipeline by name, folder or hub id (its paircustom settings: ``resolve_model``).

    ``variant`` picks weight files such as "fp16"; ``vae`` (folder or hub id) replaces the pipeline's VAE,
    e.g. madebyollin/sdxl-vae-fp16-fix, which SDXL needs to decode in fp16.
    """
    path, _ = resolve_model(model)
    vae_path = folder_or_hub_id(vae, "VAE", "config.json") if vae else None
    try:
        index = DiffusionPipeline.load_config(path)
        extra = {"safety_checker": None} if "safety_checker" in index else {}  # SDXL has none: no warning
        if vae_path:
            from diffusers import AutoencoderKL

            extra["vae"] = AutoencoderKL.from_pretrained(vae_path, dtype=dtype)
        with loading_bars_for(path):
            pipe = DiffusionPipeline.from_pretrained(path, dtype=dtype, variant=variant, **extra)
    except UserError:
        raise
    except (OSError, ValueError, pickle.UnpicklingError) as error:  # not on the hub, no network, no such variant,
        # an incomplete folder, a pickle that weights_only refused
        reason = str(error).strip().splitlines()[0].rstrip(".")
        what = f"the VAE '{vae}' or the model '{model}'" if vae else f"the model '{model}'"
        raise UserError(f"could not load {what} ({reason}); check the name or path.") from None
    family_of(pipe)
    pipe.set_progress_bar_config(disable=True)
    return pipe
