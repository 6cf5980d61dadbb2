"""Pixels <-> the UNet's latents through the pipeline's VAE, with each family's latent normalisation.

    encode:  z = (E(x).mean - m) · s / σ        decode:  x = D(z · σ / s + m)

``s`` is the VAE's scaling factor; ``m`` and ``σ`` are the per-channel latent mean and std of VAEs that
declare them (``latents_mean``/``latents_std``), else 0 and 1.  A half-precision VAE that asks for it
(``force_upcast``: SDXL's, which overflows in fp16) runs in float32.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch

from ..errors import UserError


def _normalisation(vae, like: torch.Tensor) -> tuple[torch.Tensor | float, torch.Tensor | float, float]:
    """(m, σ, s) of the formulas above, m and σ shaped (1, C, 1, 1) to broadcast over ``like``."""
    mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
    if mean is None or std is None:
        return 0.0, 1.0, vae.config.scaling_factor
    shape = (1, -1, 1, 1)
    return torch.tensor(mean).view(shape).to(like), torch.tensor(std).view(shape).to(like), vae.config.scaling_factor


def _precision(vae):
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    return _float32(vae) if upcast else nullcontext()


def decode(pipe, latents: torch.Tensor, generator=None) -> torch.Tensor:
    """Latents (B, C, h, w) -> images (B, 3, H, W) in about [-1, 1]."""
    vae = pipe.vae
    with _precision(vae):
        latents = latents.to(vae.dtype)
        mean, std, scale = _normalisation(vae, latents)
        return vae.decode(latents * std / scale + mean, return_dict=False, generator=generator)[0]


def to_images(pipe, latents: torch.Tensor, output_type: str, generator=None):
    """Finished latents as the pipeline's images of ``output_type`` ("pil", "np", "pt"; "latent": unchanged);
    never black images made of NaN."""
    if not torch.isfinite(latents).all():
        raise UserError(
            "sampling produced non-finite values (NaN or infinity); lower the guidance, style or LoRA scale."
        )
    if output_type == "latent":
        return latents
    images = decode(pipe, latents, generator)
    if not torch.isfinite(images).all():  # e.g. a half-precision VAE that overflowed
        raise UserError(
            "decoding produced non-finite values (NaN or infinity); lower the guidance, style or "
            "LoRA scale, or decode in float32."
        )
    return pipe.image_processor.postprocess(images, output_type=output_type)


def encode(pipe, pixels: torch.Tensor) -> torch.Tensor:
    """Images (B, 3, H, W) in [-1, 1] -> latents (B, C, h, w): the mean of the VAE's latent distribution
    (deterministic, so stylising twice gives the same picture)."""
    vae = pipe.vae
    with _precision(vae):
        pixels = pixels.to(vae.device, vae.dtype)
        mean_latent = vae.encode(pixels).latent_dist.mean
        mean, std, scale = _normalisation(vae, mean_latent)
        return (mean_latent - mean) * scale / std


@contextmanager
def _float32(vae):
    """Run a half-precision VAE in float32 (SDXL's VAE overflows in fp16)."""
    vae.to(torch.float32)
    try:
        yield
    finally:
        vae.to(torch.float16)
