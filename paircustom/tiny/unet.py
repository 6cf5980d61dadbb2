"""Tiny, randomly initialised SD 1.x and SDXL pipelines built entirely in code.

They run the same diffusers code paths as the real models, in seconds on a CPU,
with no network: the tests, the performance benchmark and the embedded shapes
model all start from here.  The tokenizer is a genuine ``CLIPTokenizer`` whose
byte-pair vocabulary is written from a word list (see ``write_clip_tokenizer``).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import diffusers
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

# Words every tiny tokenizer knows as single tokens; anything else falls back to letters.
BASE_WORDS = [
    "a",
    "photo",
    "of",
    "an",
    "the",
    "in",
    "on",
    "with",
    "style",
    "sbu",
    "dog",
    "cat",
    "man",
    "woman",
    "painting",
    "digital",
    "art",
    "sketch",
    "watercolor",
    "oil",
    "drawing",
    "portrait",
    "red",
    "green",
    "blue",
    "yellow",
    "background",
]

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def write_clip_tokenizer(directory: str | Path, words=BASE_WORDS, max_length: int = 77) -> CLIPTokenizer:
    """Write vocab.json/merges.txt so that each word in ``words`` is one token, and load them.

    CLIP's byte-pair encoder splits a word into letters (the last one carrying
    ``</w>``) and then applies merges in rank order.  For each word we add the
    merges that rebuild it from what earlier merges make of it, and every single
    letter with and without ``</w>``, so unknown words still encode (letter by letter).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    letters = string.ascii_lowercase + string.digits + ".,'-!?<>*"
    vocab: dict[str, int] = {}
    for token in [*letters, *(c + "</w>" for c in letters)]:
        vocab.setdefault(token, len(vocab))
    ranks: dict[tuple[str, str], int] = {}
    for word in dict.fromkeys(w.lower() for w in words):
        # First split the word the way the merges written so far would, then join what is left
        # left to right with new (lower-priority) merges, so earlier words keep their tokens.
        pieces = _apply_merges(list(word[:-1]) + [word[-1] + "</w>"], ranks)
        while len(pieces) > 1:
            ranks.setdefault((pieces[0], pieces[1]), len(ranks))
            pieces = [pieces[0] + pieces[1]] + pieces[2:]
            vocab.setdefault(pieces[0], len(vocab))
    vocab.setdefault(BOS, len(vocab))
    vocab.setdefault(EOS, len(vocab))
    (directory / "vocab.json").write_text(json.dumps(vocab))
    merges = [f"{a} {b}" for (a, b), _ in sorted(ranks.items(), key=lambda item: item[1])]
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(
        vocab=str(directory / "vocab.json"), merges=str(directory / "merges.txt"), model_max_length=max_length
    )


def _apply_merges(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encoding of one word: repeatedly join the adjacent pair with the lowest merge rank."""
    while True:
        pairs = [(ranks[p], i) for i, p in enumerate(zip(pieces, pieces[1:])) if p in ranks]
        if not pairs:
            return pieces
        _, i = min(pairs)
        pieces = pieces[:i] + [pieces[i] + pieces[i + 1]] + pieces[i + 2 :]


def tiny_text_encoder(vocab_size: int, hidden: int, projection: int | None = None, seed: int = 0):
    """A 2-layer CLIP text encoder; with ``projection`` it also returns pooled text embeddings (SDXL's second)."""
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=projection or hidden,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)


def tiny_vae(seed: int = 0) -> AutoencoderKL:
    """A two-level AutoencoderKL: images (B, 3, H, W) <-> latents (B, 4, H/2, W/2)."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
    )


def tiny_unet(cross_attention_dim: int, sdxl: bool = False, seed: int = 0) -> UNet2DConditionModel:
    """A two-level UNet with cross-attention; ``sdxl`` adds SDXL's text-and-time micro-conditioning."""
    torch.manual_seed(seed)
    extra = {}
    if sdxl:
        # SDXL: pooled text embeds (cross_attention_dim wide here) + 6 time ids embedded with 8 channels each.
        extra = dict(
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + cross_attention_dim,
        )
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        norm_num_groups=8,
        **extra,
    )


def sd_scheduler(prediction_type: str = "epsilon") -> DDIMScheduler:
    """DDIM with Stable Diffusion's noise schedule (scaled-linear betas 0.00085 to 0.012)."""
    return DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


# Each family's real sampling scheduler, as its scheduler/scheduler_config.json ships it (the one place
# tests and benchmarks take them from).  All three share SD's scaled-linear betas; they differ in how
# they sample (PNDM, DDIM, Euler in sigma space) and in what the UNet predicts (eps or v).
SCHEDULER_CONFIGS = {
    "sd1-pndm": dict(  # runwayml/stable-diffusion-v1-5
        _class_name="PNDMScheduler",
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        set_alpha_to_one=False,
        skip_prk_steps=True,
        steps_offset=1,
        clip_sample=False,
    ),
    "sd2-v": dict(  # stabilityai/stable-diffusion-2-1 (768 px, v-prediction)
        _class_name="DDIMScheduler",
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        set_alpha_to_one=False,
        steps_offset=1,
        clip_sample=False,
        prediction_type="v_prediction",
    ),
    "sdxl-euler": dict(  # stabilityai/stable-diffusion-xl-base-1.0
        _class_name="EulerDiscreteScheduler",
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        prediction_type="epsilon",
        timestep_spacing="leading",
        steps_offset=1,
        interpolation_type="linear",
        use_karras_sigmas=False,
    ),
}


def real_scheduler(name: str):
    """A fresh scheduler of ``SCHEDULER_CONFIGS[name]``, e.g. "sdxl-euler"."""
    if name not in SCHEDULER_CONFIGS:
        raise ValueError(f"unknown scheduler config {name!r}; use one of {', '.join(SCHEDULER_CONFIGS)}")
    config = SCHEDULER_CONFIGS[name]
    return getattr(diffusers, config["_class_name"]).from_config(config)


def build_tiny_pipeline(
    family: str = "sd",
    directory: str | Path | None = None,
    seed: int = 0,
    prediction_type: str = "epsilon",
    scheduler: str | None = None,
):
    """Return a random tiny ``StableDiffusionPipeline`` (family "sd") or ``StableDiffusionXLPipeline`` ("sdxl").

    ``directory`` keeps the tokenizer files (default: a temporary folder, removed at once); the
    pipeline itself lives in memory until you call ``save_pretrained``.
    ``scheduler`` names a real family's config in ``SCHEDULER_CONFIGS`` (it then
    sets the prediction type too); by default DDIM with SD's schedule.
    """
    import tempfile

    if directory is None:  # the tokenizer reads its files at once, so a temporary folder can go right away
        with tempfile.TemporaryDirectory(prefix="paircustom-tiny-") as folder:
            tokenizer = write_clip_tokenizer(Path(folder) / "tokenizer")
    else:
        tokenizer = write_clip_tokenizer(Path(directory) / "tokenizer")
    vocab = len(tokenizer)
    scheduler = real_scheduler(scheduler) if scheduler else sd_scheduler(prediction_type)
    if family == "sd":
        return StableDiffusionPipeline(
            vae=tiny_vae(seed),
            text_encoder=tiny_text_encoder(vocab, 32, seed=seed),
            tokenizer=tokenizer,
            unet=tiny_unet(32, seed=seed),
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    if family == "sdxl":
        # SDXL concatenates the hidden states of both encoders (16 + 16 = 32) and pools the second.
        return StableDiffusionXLPipeline(
            vae=tiny_vae(seed),
            text_encoder=tiny_text_encoder(vocab, 16, seed=seed),
            tokenizer=tokenizer,
            text_encoder_2=tiny_text_encoder(vocab, 16, projection=32, seed=seed + 1),
            tokenizer_2=tokenizer,
            unet=tiny_unet(32, sdxl=True, seed=seed),
            scheduler=scheduler,
        )
    raise ValueError(f"unknown tiny family {family!r}; use 'sd' or 'sdxl'")
