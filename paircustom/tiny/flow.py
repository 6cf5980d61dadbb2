"""Tiny, randomly initialised SD3 and Flux pipelines built entirely in code (no downloads).

The rectified-flow counterparts of ``tiny.build_tiny_pipeline``: the same diffusers
classes as the real models (``SD3Transformer2DModel`` / ``FluxTransformer2DModel``,
CLIP and T5 text encoders, ``FlowMatchEulerDiscreteScheduler``) at toy widths.
The T5 tokenizer is a genuine ``T5Tokenizer`` (sentencepiece-style unigram model)
whose vocabulary is written here from a word list, so it needs no files at all.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
)
from transformers import T5Config, T5EncoderModel, T5Tokenizer

from .unet import BASE_WORDS, tiny_text_encoder, write_clip_tokenizer

# The scheduler configs the real models ship (scheduler/scheduler_config.json), the one place tests take them from.
FLOW_SCHEDULER_CONFIGS = {
    "sd3": dict(num_train_timesteps=1000, shift=3.0),  # stabilityai/stable-diffusion-3-medium
    "flux": dict(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,  # FLUX.1-dev
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    ),
}


def tiny_t5_tokenizer(words=BASE_WORDS, max_length: int = 32) -> T5Tokenizer:
    """A unigram (sentencepiece-style) T5 tokenizer: each word of ``words`` is one piece, letters the fallback.

    Pieces carry sentencepiece's word-start marker "▁"; scores make whole words win over spelling.
    """
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("▁" + w, -1.0) for w in dict.fromkeys(w.lower() for w in words)]
    pieces += [("▁", -5.0)] + [(c, -8.0) for c in string.ascii_lowercase + string.digits + ".,'-!?"]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_length)


def tiny_t5(vocab_size: int, width: int = 32, seed: int = 0, ff: int | None = None) -> T5EncoderModel:
    """A 2-layer T5 encoder ``width`` wide (feed-forward ``ff`` wide, default 2 x ``width``)."""
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=vocab_size,
        d_model=width,
        d_kv=8,
        d_ff=ff or 2 * width,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(config).eval()


def tiny_flow_vae(seed: int = 0, latent_channels: int = 4) -> AutoencoderKL:
    """A 2x-downsampling VAE with the latent shift and scale the SD3 / Flux VAEs have."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=latent_channels,
        norm_num_groups=8,
        sample_size=32,
        scaling_factor=1.5,
        shift_factor=0.1,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def tiny_sd3_transformer(seed: int = 0, in_channels: int = 4) -> SD3Transformer2DModel:
    """Two joint (MM-DiT) blocks, 32 wide; text 32 wide (T5, and the two CLIPs padded to it), pooled 32."""
    torch.manual_seed(seed)
    return SD3Transformer2DModel(
        sample_size=16,
        patch_size=2,
        in_channels=in_channels,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=32,
        caption_projection_dim=32,
        pooled_projection_dim=32,
        out_channels=in_channels,
        pos_embed_max_size=32,
    )


def tiny_flux_transformer(seed: int = 0, latent_channels: int = 4, guidance_embeds: bool = True):
    """One double-stream and one single-stream block, 32 wide; packed input 4 x ``latent_channels``."""
    torch.manual_seed(seed)
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * latent_channels,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=(2, 2, 4),
    )


def build_tiny_flow_pipeline(family: str = "flux", seed: int = 0, guidance_embeds: bool = True):
    """A random tiny ``FluxPipeline`` ("flux"; ``guidance_embeds`` like FLUX.1-dev) or ``StableDiffusion3Pipeline``."""
    with tempfile.TemporaryDirectory(prefix="paircustom-tiny-") as folder:
        clip_tokenizer = write_clip_tokenizer(Path(folder) / "tokenizer")
    t5_tokenizer = tiny_t5_tokenizer()
    vocab, t5 = len(clip_tokenizer), tiny_t5(len(t5_tokenizer), seed=seed + 2)
    scheduler = FlowMatchEulerDiscreteScheduler(**FLOW_SCHEDULER_CONFIGS[family if family in ("sd3",) else "flux"])
    if family == "flux":
        return FluxPipeline(
            scheduler=scheduler,
            vae=tiny_flow_vae(seed),
            text_encoder=tiny_text_encoder(vocab, 32, seed=seed),
            tokenizer=clip_tokenizer,
            text_encoder_2=t5,
            tokenizer_2=t5_tokenizer,
            transformer=tiny_flux_transformer(seed, guidance_embeds=guidance_embeds),
        )
    if family == "sd3":
        # SD3 concatenates the two CLIPs' hidden states (16 + 16, padded to T5's 32) and pools both (16 + 16).
        return StableDiffusion3Pipeline(
            transformer=tiny_sd3_transformer(seed),
            scheduler=scheduler,
            vae=tiny_flow_vae(seed),
            text_encoder=tiny_text_encoder(vocab, 16, projection=16, seed=seed),
            tokenizer=clip_tokenizer,
            text_encoder_2=tiny_text_encoder(vocab, 16, projection=16, seed=seed + 1),
            tokenizer_2=clip_tokenizer,
            text_encoder_3=t5,
            tokenizer_3=t5_tokenizer,
        )
    raise ValueError(f"unknown tiny flow family {family!r}; use 'sd3' or 'flux'")
