"""The shapes model's networks and noise schedule: a small SD-style VAE, CLIP text encoder and UNet, built fresh
and seeded from a ``BaseTrainConfig`` (``paircustom.shapes.train`` trains them)."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from ..tiny.unet import sd_scheduler
from .base_config import BaseTrainConfig
from .world import SIZE


def orthogonal_output(conv: torch.nn.Conv2d) -> None:
    """Give the decoder's last conv (3, C, k, k) three orthonormal rows at its initial norm; training keeps it frozen.

    Trained, those rows become equal within ~100 steps: each pixel then decodes to the median of its channels
    (the L1 optimum without colour), and as the gradient reaching the features is ``W^T g`` with equal rows, no
    chroma signal gets back to the decoder or encoder again. Fixed orthonormal rows pass every colour's gradient.
    """
    weight = conv.weight  # (3, C, k, k)
    basis, _ = torch.linalg.qr(torch.randn(weight[0].numel(), weight.shape[0]))  # (C*k*k, 3), orthonormal columns
    weight.copy_(basis.T.reshape(weight.shape) * weight.norm() / weight.shape[0] ** 0.5)


def shapes_scheduler(zero_terminal_snr: bool = True) -> DDIMScheduler:
    """SD's scaled-linear schedule, rescaled to zero SNR at t=999 with v-prediction and trailing DDIM steps.

    On run 3's 8x8 latents SD's schedule left signal at t=999 (alpha_bar 0.0047, and the 64 positions of a flat
    background average it up), so a UNet trained on it reads the background from the noisy input instead of the
    caption: at t=999 its x0 took the input's background in 20 of 24 swapped-caption cases, and sampling from pure
    noise then drew random backgrounds (12.5% right, chance). With zero terminal SNR (Lin et al. 2024) nothing
    leaks; epsilon-prediction is undefined there, hence v.
    """
    if not zero_terminal_snr:  # runs saved before this option
        return sd_scheduler("epsilon")
    return DDIMScheduler.from_config(sd_scheduler("v_prediction").config, rescale_betas_zero_snr=True,
                                     timestep_spacing="trailing")


def build_models(config: BaseTrainConfig, vocab_size: int):
    """Fresh (vae, text_encoder, unet, scheduler), seeded."""
    torch.manual_seed(config.seed)
    levels = len(config.vae_channels)
    vae = AutoencoderKL(
        block_out_channels=config.vae_channels, down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels, latent_channels=config.latent_channels,
        norm_num_groups=config.vae_norm_groups, sample_size=SIZE,
    )
    with torch.no_grad():  # start the posterior narrow (std e^-5) so that the decoder sees the means
        vae.encoder.conv_out.bias[config.latent_channels:] = config.initial_logvar
        orthogonal_output(vae.decoder.conv_out)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=config.text_hidden, intermediate_size=2 * config.text_hidden,
        num_hidden_layers=config.text_layers, num_attention_heads=4, max_position_embeddings=config.max_length,
        projection_dim=config.text_hidden, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    ))
    n, plain = len(config.unet_channels), config.unet_plain_levels
    unet = UNet2DConditionModel(
        sample_size=SIZE // 2 ** (levels - 1), in_channels=config.latent_channels,
        out_channels=config.latent_channels, block_out_channels=config.unet_channels, layers_per_block=1,
        down_block_types=("DownBlock2D",) * plain + ("CrossAttnDownBlock2D",) * (n - plain),
        up_block_types=("CrossAttnUpBlock2D",) * (n - plain) + ("UpBlock2D",) * plain,
        cross_attention_dim=config.text_hidden, attention_head_dim=config.unet_heads, norm_num_groups=16,
    )
    return vae, text_encoder, unet, shapes_scheduler(config.zero_terminal_snr)
