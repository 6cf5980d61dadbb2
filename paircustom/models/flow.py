"""The rectified-flow transformer families, SD3 and Flux, behind ``families.Family``.

What differs from the UNet families, and lives only here:

- the denoiser is ``pipe.transformer`` and the style file's keys start with ``transformer.``;
- the call signature: SD3 takes ``encoder_hidden_states`` + ``pooled_projections`` + ``timestep``
  (sigma x 1000); Flux takes *packed* latents (2x2 patches as tokens), ``img_ids``/``txt_ids``,
  ``timestep`` as sigma, and for guidance-distilled models (FLUX.1-dev) a ``guidance`` value;
- the training objective: flow matching (``objective.FlowMatching``), target ``eps - x0``;
- the LoRA targets: the attention projections including the joint blocks' text-stream ones;
- the VAE latents are shifted as well as scaled.

Every family predicts in the unpacked latent layout (B, C, h, w); Flux packs inside ``predict``.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import FluxPipeline, StableDiffusion3Pipeline
from diffusers.pipelines.flux.pipeline_flux import calculate_shift
from diffusers.pipelines.flux.pipeline_output import FluxPipelineOutput
from diffusers.pipelines.stable_diffusion_3.pipeline_output import StableDiffusion3PipelineOutput

from ..config.targets import DEFAULT_TARGETS, JOINT_TARGETS
from .family import Conditioning, Family
from .forward import FlowMatching

TRANSFORMER_TARGETS = DEFAULT_TARGETS + JOINT_TARGETS


def pack(latents: torch.Tensor) -> torch.Tensor:
    """Flux's token layout: (B, C, h, w) -> (B, h/2 · w/2, 4C), one token per 2x2 patch."""
    b, c, h, w = latents.shape
    return latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, h * w // 4, 4 * c)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The inverse of ``pack`` for latents h x w."""
    b, _, channels = tokens.shape
    c = channels // 4
    return tokens.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


class FlowFamily(Family):
    """What SD3 and Flux share: a transformer trained by flow matching on shifted, scaled VAE latents."""

    denoiser_name = lora_prefix = "transformer"
    lora_targets = TRANSFORMER_TARGETS
    flow = True
    patch = 2
    default_steps = 28  # sampling defaults of the family's pipelines

    def training_objective(self, pipe):
        return FlowMatching(pipe.scheduler.config)

    def vae_latents(self, vae, mean, std):
        shift = vae.config.shift_factor or 0.0
        return (mean - shift) * vae.config.scaling_factor, std * vae.config.scaling_factor

    def decode_latents(self, vae, latents):
        return latents / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)

    def text_encoders(self, pipe):
        return [getattr(pipe, n, None) for n in ("text_encoder", "text_encoder_2", "text_encoder_3")]

    def latent_shape(self, pipe, batch, height, width):
        """(B, C, h, w) of the unpacked latents for an image height x width."""
        factor = pipe.vae_scale_factor
        channels = pipe.vae.config.latent_channels
        return batch, channels, 2 * (height // (factor * 2)), 2 * (width // (factor * 2))

    def sampling_timesteps(self, pipe, scheduler, steps, latent_hw, device):
        """Set ``scheduler``'s timesteps the way the family's pipeline does; return them."""
        sigmas, extra = self.sampling_sigmas(steps), {}
        if scheduler.config.get("use_dynamic_shifting", False):
            seq = latent_hw[0] * latent_hw[1] // 4
            c = scheduler.config
            extra["mu"] = calculate_shift(
                seq,
                c.get("base_image_seq_len", 256),
                c.get("max_image_seq_len", 4096),
                c.get("base_shift", 0.5),
                c.get("max_shift", 1.15),
            )
        if sigmas is not None:
            scheduler.set_timesteps(sigmas=sigmas, device=device, **extra)
        else:
            scheduler.set_timesteps(steps, device=device, **extra)
        return scheduler.timesteps

    def sampling_sigmas(self, steps):
        return None

    def cfg(self, guidance_scale, true_cfg_scale, negative_prompt) -> tuple[float, bool]:
        """(scale of the ∅ term, whether there is one) for sampling."""
        return guidance_scale, guidance_scale > 1

    def with_guidance(self, pipe, cond: Conditioning, value: float) -> Conditioning:
        return cond


class StableDiffusion3(FlowFamily):
    name, pipeline_class = "sd3", StableDiffusion3Pipeline
    default_guidance = 7.0

    def encode(
        self, pipe, prompts, device, negative_prompt=None, with_negative=False, prompts_2=None, negative_prompt_2=None
    ):  # second prompts: refused before this (sampling.prepare.UNSUPPORTED)
        negative = None if negative_prompt is None else [negative_prompt] * len(prompts)
        embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
            prompts,
            None,
            None,
            device=device,
            do_classifier_free_guidance=with_negative,
            negative_prompt=negative,
            max_sequence_length=_t5_length(pipe, 256),
        )
        cond = Conditioning(embeds, {"pooled_projections": pooled})
        return cond, (Conditioning(negative_embeds, {"pooled_projections": negative_pooled}) if with_negative else None)

    def predict(self, model, noisy, timesteps, cond):
        return model(
            hidden_states=noisy,
            timestep=timesteps.expand(len(noisy)),
            encoder_hidden_states=cond.hidden,
            pooled_projections=cond.added["pooled_projections"],
            return_dict=False,
        )[0]

    def output(self, images):
        return StableDiffusion3PipelineOutput(images=images)


class Flux(FlowFamily):
    name, pipeline_class = "flux", FluxPipeline
    train_guidance = 3.5  # the distilled-guidance input while training, as diffusers' Flux LoRA scripts default
    default_guidance, default_style_start_fraction = 3.5, 6 / 28  # research code: style term from step 6 of 28

    def cfg(self, guidance_scale, true_cfg_scale, negative_prompt):
        """Guidance-distilled: no ∅ term unless a negative prompt asks for true CFG (FluxPipeline's rule)."""
        return true_cfg_scale, true_cfg_scale > 1 and negative_prompt is not None

    def encode(
        self, pipe, prompts, device, negative_prompt=None, with_negative=False, prompts_2=None, negative_prompt_2=None
    ):  # second prompts: refused before this (sampling.prepare.UNSUPPORTED)
        def one(texts):
            embeds, pooled, _ = pipe.encode_prompt(
                texts, None, device=device, max_sequence_length=_t5_length(pipe, 512)
            )
            return self.with_guidance(pipe, Conditioning(embeds, {"pooled_projections": pooled}), self.train_guidance)

        uncond = one([negative_prompt or ""] * len(prompts)) if with_negative else None
        return one(prompts), uncond

    def with_guidance(self, pipe, cond: Conditioning, value: float) -> Conditioning:
        """Set the distilled-guidance input of every row (models without a guidance embedding take none)."""
        if not pipe.transformer.config.guidance_embeds:
            return cond
        guidance = torch.full((len(cond),), float(value), device=cond.hidden.device, dtype=torch.float32)
        return Conditioning(cond.hidden, {**cond.added, "guidance": guidance})

    def predict(self, model, noisy, timesteps, cond):
        b, _, h, w = noisy.shape
        img_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, noisy.device, noisy.dtype)
        txt_ids = torch.zeros(cond.hidden.shape[1], 3, device=noisy.device, dtype=noisy.dtype)
        out = model(
            hidden_states=pack(noisy),
            timestep=(timesteps / 1000).expand(b),
            guidance=cond.added.get("guidance"),
            pooled_projections=cond.added["pooled_projections"],
            encoder_hidden_states=cond.hidden,
            txt_ids=txt_ids,
            img_ids=img_ids,
            return_dict=False,
        )[0]
        return unpack(out, h, w)

    def pipeline_latents(self, latents):
        return pack(latents)

    def from_pipeline_latents(self, latents, shape):
        return unpack(latents, *shape[2:])

    def sampling_sigmas(self, steps):
        return np.linspace(1.0, 1 / steps, steps)

    def output(self, images):
        return FluxPipelineOutput(images=images)


def _t5_length(pipe, default: int) -> int:
    """The pipeline's default T5 sequence length, shortened to what its tokenizer takes (tiny models: 32)."""
    tokenizer = getattr(pipe, "tokenizer_3", None) or pipe.tokenizer_2
    return min(default, tokenizer.model_max_length)
