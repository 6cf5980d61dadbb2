"""A diffusers SD 1.x folder (the embedded shapes model) as ComfyUI's MODEL, CLIP and VAE.

ComfyUI detects a model by the key names and shapes of a checkpoint it knows (SD 1.5 at 320 channels and
768-wide text, SDXL, ...).  The shapes model is none of those (8 latent channels, a 128-wide text encoder with
its own vocabulary, v-prediction on a zero-terminal-SNR schedule), so ``comfy.sd.load_diffusion_model`` cannot
place it.  Instead of teaching ComfyUI's detector a new architecture, the loader builds the three objects around
the diffusers modules themselves:

- MODEL: a real ``comfy.model_base.BaseModel`` in a ``ModelPatcher`` whose ``diffusion_model`` calls the
  diffusers UNet; ComfyUI's samplers, schedulers, LoRA patches and hooks work on it unchanged.  Its noise table
  is the one diffusers' Euler scheduler derives from the folder's scheduler config, so ComfyUI's "simple"
  scheduler gives the same sigmas as diffusers' "trailing" spacing.
- CLIP: ``tokenize`` / ``encode_from_tokens*`` as ComfyUI's CLIP object offers them, run by the folder's own
  tokenizer and text encoder exactly as diffusers' ``encode_prompt`` runs them.
- VAE: ``decode`` / ``encode`` on ComfyUI's image layout (B, H, W, 3) in [0, 1].
"""

from __future__ import annotations

import json
from pathlib import Path

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.supported_models_base
import torch

UNET_PREFIX = "diffusion_model.unet."  # where the diffusers UNet's parameters live inside ComfyUI's model


class DiffusersUNet(torch.nn.Module):
    """ComfyUI's ``diffusion_model`` call, (x, t, context=...), on a diffusers UNet2DConditionModel."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    @property
    def dtype(self):
        return self.unet.dtype

    def forward(self, x, timesteps, context=None, control=None, transformer_options=None, **kwargs):
        # x (B, C, h, w) already scaled by ComfyUI's model_sampling; timesteps (B,); context (B, T, D)
        return self.unet(x, timesteps, encoder_hidden_states=context, return_dict=False)[0]


def _latent_format(channels: int, scale: float):
    return type(
        "DiffusersLatent", (comfy.latent_formats.LatentFormat,), {"latent_channels": channels, "scale_factor": scale}
    )


def model_config(unet, vae, prediction_type: str):
    """A ComfyUI model config for the folder (no detection: it is built, not matched)."""
    base = comfy.supported_models_base.BASE
    config_class = type(
        "DiffusersSD",
        (base,),
        {
            "unet_config": {"disable_unet_model_creation": True, "in_channels": unet.config.in_channels},
            "unet_extra_config": {},
            "latent_format": _latent_format(vae.config.latent_channels, vae.config.scaling_factor),
            "memory_usage_factor": 1.0,
            "sampling_settings": {},
        },
    )
    return config_class(config_class.unet_config), (
        comfy.model_base.ModelType.V_PREDICTION if prediction_type == "v_prediction" else comfy.model_base.ModelType.EPS
    )


def noise_table(scheduler_config) -> torch.Tensor:
    """sigma_t = sqrt((1 − ᾱ_t) / ᾱ_t) for t = 0..T−1 as diffusers' Euler scheduler computes ᾱ (with its
    zero-terminal-SNR fix ᾱ_T = 2^-24 when the config asks for it)."""
    from diffusers import EulerDiscreteScheduler

    euler = EulerDiscreteScheduler.from_config(scheduler_config)
    alphas = euler.alphas_cumprod.double()
    return ((1 - alphas) / alphas).sqrt().float()  # (T,)


class DiffusersClip:
    """The CLIP object's methods that text-encoding nodes call, on a transformers tokenizer and text encoder."""

    def __init__(self, tokenizer, text_encoder):
        self.tokenizer, self.text_encoder = tokenizer, text_encoder

    def clone(self):
        return self

    def tokenize(self, text: str, return_word_ids: bool = False, **kwargs):
        ids = self.tokenizer(
            text, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids  # (1, T)
        return {"ids": ids}

    @torch.no_grad()
    def encode_from_tokens(self, tokens, return_pooled=False, return_dict=False):
        out = self.text_encoder(tokens["ids"].to(self.text_encoder.device))
        hidden, pooled = out[0].float().cpu(), out[1].float().cpu()  # (1, T, D), (1, D)
        if return_dict:
            return {"cond": hidden, "pooled_output": pooled}
        return (hidden, pooled) if return_pooled else hidden

    def encode_from_tokens_scheduled(self, tokens, unprojected=False, add_dict=None, show_pbar=True):
        hidden, pooled = self.encode_from_tokens(tokens, return_pooled=True)
        return [[hidden, {"pooled_output": pooled, **(add_dict or {})}]]


class DiffusersVAE:
    """The VAE object's decode/encode on ComfyUI's image layout; latents as ComfyUI hands them (unscaled)."""

    def __init__(self, vae):
        self.vae = vae
        self.downscale = 2 ** (len(vae.config.block_out_channels) - 1)
        self.latent_channels = vae.config.latent_channels

    def spacial_compression_decode(self):
        return self.downscale

    def spacial_compression_encode(self):
        return self.downscale

    @torch.no_grad()
    def decode(self, samples):
        images = self.vae.decode(samples.to(self.vae.dtype), return_dict=False)[0]  # (B, 3, H, W) in [-1, 1]
        return (images.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu()  # (B, H, W, 3) in [0, 1]

    @torch.no_grad()
    def encode(self, pixels):
        images = pixels[..., :3].permute(0, 3, 1, 2).to(self.vae.dtype) * 2 - 1  # (B, 3, H, W)
        return self.vae.encode(images).latent_dist.mode().float().cpu()


def load_diffusers_sd(folder: str | Path):
    """(MODEL, CLIP, VAE) of a diffusers SD 1.x folder, float32 on ComfyUI's device."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet").eval()
    vae = AutoencoderKL.from_pretrained(folder / "vae").eval()
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", dtype=torch.float32).eval()
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    config, model_type = model_config(unet, vae, scheduler.get("prediction_type", "epsilon"))
    model = comfy.model_base.BaseModel(config, model_type=model_type, device="cpu")
    model.diffusion_model = DiffusersUNet(unet)
    model.model_sampling.set_sigmas(noise_table(scheduler))
    patcher = comfy.model_patcher.ModelPatcher(
        model,
        load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device(),
    )
    return patcher, DiffusersClip(tokenizer, text_encoder), DiffusersVAE(vae)
