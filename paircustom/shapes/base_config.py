"""The base model's training settings (``BaseTrainConfig``) and the pair-training defaults shipped with it."""

from __future__ import annotations

from dataclasses import dataclass

# Pair-training defaults that suit this model (written to paircustom.json next to it).
TRAIN_DEFAULTS = dict(learning_rate=1e-3, max_steps=300, style_start=100, rank=8, resolution=64,
                      gradient_accumulation=1)


@dataclass(frozen=True)
class BaseTrainConfig:
    """Everything that shapes the base model and its training.

    Measured on one thread of our 2-core CPU, other work on the other core: the VAE stage took 19.9 minutes
    (2500 steps), the UNet stage runs at 2.1-2.4 s per step (batch 128), about 75 minutes; the stages checkpoint,
    so a session may stop between and inside them."""

    seed: int = 0
    vae_steps: int = 2500
    vae_channels: tuple = (32, 64, 64)  # 3 levels: 64x64 -> 16x16 latents, so a 16-pixel object spans 4x4 of them
    latent_channels: int = 8  # 16x16x8 latents: thin lines and hard block edges need more than SD's 4 channels
    vae_norm_groups: int = 2  # few, wide groups: per-channel norms would erase the flat colours
    vae_batch: int = 16
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6
    initial_logvar: float = -10.0  # bias of the encoder's log-variance outputs at initialisation
    random_colour_share: float = 0.0  # VAE scenes drawn in random colours instead of the palette
    colour_latent_weight: float = 1.0  # L1 tying latent channels 0-2 to the mean colour under each latent pixel
    decoder_steps: int = 400  # stage 3: the decoder alone, on the frozen encoder's latents
    decoder_lr: float = 3e-4
    unet_steps: int = 2000
    zero_terminal_snr: bool = True  # see networks.shapes_scheduler
    unet_channels: tuple = (64, 128, 192)  # 16x16, 8x8 and 4x4
    unet_plain_levels: int = 1  # leading UNet levels without attention (16x16 attention would cost ~4x the step)
    unet_heads: int = 8
    text_hidden: int = 128
    text_layers: int = 4
    max_length: int = 40  # tokens incl. BOS/EOS; the longest pair prompt takes 31
    pool_size: int = 20_000  # training scenes rendered and encoded once for the UNet stage
    known_style_share: float = 0.25  # of the pool, drawn in a known style and captioned so
    filler_share: float = 0.3  # of the pool's captions, with a FILLER_WORDS word where pair training puts V*
    family_share: float = 0.0  # of the pool's unstyled scenes, drawn as a random member of a style family
    member_caption_share: float = 0.5  # of those, captioned with the member's words, the rest with the family word
    family_focus: str = ""  # comma-separated families drawn 3x as often as the others (e.g. those not yet learned)
    unet_batch: int = 128
    unet_lr: float = 6e-4  # UNet and text encoder
    warmup_steps: int = 100
    caption_dropout: float = 0.1  # empty caption, for classifier-free guidance
    ema_decay: float = 0.999
    checkpoint_every: int = 200  # UNet steps between checkpoints
    sample_every: int = 500  # UNet steps between held-out checks
    sample_steps: int = 20  # DDIM steps of the periodic held-out check (at generate's CFG)
    threads: int = 1  # torch threads (a run may resume with others); 2 stall badly when another process shares 2 cores
