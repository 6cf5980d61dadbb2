"""The UNet model families behind ``family.Family``, the registry of all families, and loading a model by name.

- ``sd``:   Stable Diffusion 1.x / 2.x (one CLIP text encoder; 2.x may predict v).
- ``sdxl``: Stable Diffusion XL (two text encoders, pooled text embeddings and
            the "micro-conditioning" time ids: original size, crop, target size).
- ``sd3``, ``flux``: the flow-matching transformers, in ``flow``.
"""

from __future__ import annotations

import torch
from diffusers import (DiffusionPipeline, StableDiffusionControlNetPipeline, StableDiffusionPipeline,
                       StableDiffusionXLControlNetPipeline, StableDiffusionXLPipeline)
from diffusers.pipelines.stable_diffusion import StableDiffusionPipelineOutput
from diffusers.pipelines.stable_diffusion_xl import StableDiffusionXLPipelineOutput

from .errors import UserError
from .family import Conditioning, Family
from .flow import Flux, StableDiffusion3
from .model_names import DTYPE_NAMES, folder_or_hub_id, resolve_model

DTYPES = dict(zip(DTYPE_NAMES, (torch.float32, torch.float16, torch.bfloat16)))


class StableDiffusion(Family):
    name, pipeline_class, controlnet_class = "sd", StableDiffusionPipeline, StableDiffusionControlNetPipeline

    def encode(self, pipe, prompts, device, negative_prompt=None, with_negative=False, prompts_2=None,
               negative_prompt_2=None):
        negative = None if negative_prompt is None else [negative_prompt] * len(prompts)
        embeds, negative_embeds = pipe.encode_prompt(prompts, device, 1, with_negative, negative)
        return Conditioning(embeds), (Conditioning(negative_embeds) if with_negative else None)

    def output(self, images):
        return StableDiffusionPipelineOutput(images=images, nsfw_content_detected=None)


class StableDiffusionXL(Family):
    name, pipeline_class, controlnet_class = "sdxl", StableDiffusionXLPipeline, StableDiffusionXLControlNetPipeline

    def encode(self, pipe, prompts, device, negative_prompt=None, with_negative=False, prompts_2=None,
               negative_prompt_2=None):
        negative = None if negative_prompt is None else [negative_prompt] * len(prompts)
        negative_2 = None if negative_prompt_2 is None else [negative_prompt_2] * len(prompts)
        embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
            prompts, prompt_2=prompts_2, device=device, do_classifier_free_guidance=with_negative,
            negative_prompt=negative, negative_prompt_2=negative_2)
        cond = Conditioning(embeds, {"text_embeds": pooled})
        return cond, (Conditioning(negative_embeds, {"text_embeds": negative_pooled}) if with_negative else None)

    def add_size(self, pipe, cond, sizes):
        projection = int(cond.added["text_embeds"].shape[-1])
        time_ids = torch.cat([
            pipe._get_add_time_ids(s.original, s.crop_top_left, s.target, cond.hidden.dtype, projection)
            for s in sizes
        ]).to(cond.hidden.device)                                           # (B, 6)
        return Conditioning(cond.hidden, {**cond.added, "time_ids": time_ids})

    def output(self, images):
        return StableDiffusionXLPipelineOutput(images=images)


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


def load_pipeline(model: str, dtype=torch.float32, variant: str | None = None, vae: str | None = None,
                  ) -> DiffusionPipeline:
    """Load an SD, SDXL, SD3 or Flux pipeline by name, folder or hub id (its paircustom settings: ``resolve_model``).

    ``variant`` picks weight files such as "fp16"; ``vae`` (folder or hub id) replaces the pipeline's VAE,
    e.g. madebyollin/sdxl-vae-fp16-fix, which SDXL needs to decode in fp16.
    """
    path, _ = resolve_model(model)
    vae_path = folder_or_hub_id(vae, "VAE", "config.json") if vae else None
    try:
        index = DiffusionPipeline.load_config(path)
        extra = {"safety_checker": None} if "safety_checker" in index else {}   # SDXL has none: no warning
        if vae_path:
            from diffusers import AutoencoderKL

            extra["vae"] = AutoencoderKL.from_pretrained(vae_path, dtype=dtype)
        pipe = DiffusionPipeline.from_pretrained(path, dtype=dtype, variant=variant, **extra)
    except UserError:
        raise
    except (OSError, ValueError) as error:   # not on the hub, no network, no such variant, an incomplete folder
        reason = str(error).strip().splitlines()[0].rstrip(".")
        what = f"the VAE '{vae}' or the model '{model}'" if vae else f"the model '{model}'"
        raise UserError(f"could not load {what} ({reason}); check the name or path.") from None
    family_of(pipe)
    pipe.set_progress_bar_config(disable=True)
    return pipe
