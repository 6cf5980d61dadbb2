"""The UNet model families behind ``family.Family``.

- ``sd``:   Stable Diffusion 1.x / 2.x (one CLIP text encoder; 2.x may predict v).
- ``sdxl``: Stable Diffusion XL (two text encoders, pooled text embeddings and
            the "micro-conditioning" time ids: original size, crop, target size).
"""

from __future__ import annotations

import torch
from diffusers import (
    StableDiffusionControlNetPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLControlNetPipeline,
    StableDiffusionXLPipeline,
)
from diffusers.pipelines.stable_diffusion import StableDiffusionPipelineOutput
from diffusers.pipelines.stable_diffusion_xl import StableDiffusionXLPipelineOutput

from .family import Conditioning, Family
from .forward import training_scheduler


class UNetFamily(Family):
    """What SD and SDXL share: a UNet trained on the DDPM forward process of its own noise schedule."""

    def training_objective(self, pipe):
        """The forward process training noises with: the model's DDPM schedule (``forward.training_scheduler``)."""
        return training_scheduler(pipe)


class StableDiffusion(UNetFamily):
    name, pipeline_class, controlnet_class = "sd", StableDiffusionPipeline, StableDiffusionControlNetPipeline

    def encode(
        self, pipe, prompts, device, negative_prompt=None, with_negative=False, prompts_2=None, negative_prompt_2=None
    ):
        negative = None if negative_prompt is None else [negative_prompt] * len(prompts)
        embeds, negative_embeds = pipe.encode_prompt(prompts, device, 1, with_negative, negative)
        return Conditioning(embeds), (Conditioning(negative_embeds) if with_negative else None)

    def output(self, images):
        return StableDiffusionPipelineOutput(images=images, nsfw_content_detected=None)


class StableDiffusionXL(UNetFamily):
    name, pipeline_class, controlnet_class = "sdxl", StableDiffusionXLPipeline, StableDiffusionXLControlNetPipeline

    def encode(
        self, pipe, prompts, device, negative_prompt=None, with_negative=False, prompts_2=None, negative_prompt_2=None
    ):
        negative = None if negative_prompt is None else [negative_prompt] * len(prompts)
        negative_2 = None if negative_prompt_2 is None else [negative_prompt_2] * len(prompts)
        embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
            prompts,
            prompt_2=prompts_2,
            device=device,
            do_classifier_free_guidance=with_negative,
            negative_prompt=negative,
            negative_prompt_2=negative_2,
        )
        cond = Conditioning(embeds, {"text_embeds": pooled})
        return cond, (Conditioning(negative_embeds, {"text_embeds": negative_pooled}) if with_negative else None)

    def add_size(self, pipe, cond, sizes):
        projection = int(cond.added["text_embeds"].shape[-1])
        time_ids = torch.cat(
            [
                pipe._get_add_time_ids(s.original, s.crop_top_left, s.target, cond.hidden.dtype, projection)
                for s in sizes
            ]
        ).to(cond.hidden.device)  # (B, 6)
        return Conditioning(cond.hidden, {**cond.added, "time_ids": time_ids})

    def output(self, images):
        return StableDiffusionXLPipelineOutput(images=images)
