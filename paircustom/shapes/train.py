"""Train the shapes-world Stable Diffusion pipeline from scratch on rendered images.

    python -m paircustom.shapes.train --out DIR [--seed 0] [--vae-minutes 9] [--unet-minutes 45] [--decoder-minutes 8]
    python -m paircustom.shapes.train --out DIR --refine PIPELINE_DIR   # stage 3 only

Stage 1 trains an AutoencoderKL (64x64x3 <-> 8x8x4).  Stage 2 renders a pool of
training images, encodes it once, and trains the UNet and the CLIP text encoder
jointly through the epsilon-prediction diffusion loss, dropping the caption
10% of the time for classifier-free guidance.  Stage 3 sharpens the VAE decoder
on the frozen encoder's latents, which leaves the UNet's latent space unchanged.  Each stage runs for a wall-clock
budget with a cosine learning rate over that time.  Sample grids and analyzer
scores are written to DIR as it goes; the fp16 pipeline lands in DIR/pipeline.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from tqdm import tqdm
from transformers import CLIPTextConfig, CLIPTextModel

from ..images import to_uint8
from ..tiny import BASE_WORDS, sd_scheduler, write_clip_tokenizer
from .evaluate import generate, save_grid, score
from .world import WORLD_WORDS, caption, held_out_combos, render_batch

# Words of the style prompts later benchmarks use; they must be single tokens too.
STYLE_WORDS = "inverted colours colors grayscale posterized hue rotated pixelated line sketch".split()

# Pair-training defaults that suit this model (written to paircustom.json next to it).
TRAIN_DEFAULTS = dict(learning_rate=1e-3, max_steps=300, style_start=100, rank=8, resolution=64,
                      gradient_accumulation=1)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes the model and its training (defaults fit ~57 minutes on one CPU core)."""

    seed: int = 0
    vae_minutes: float = 9.0  # wall-clock budget of stage 1
    unet_minutes: float = 45.0  # wall-clock budget of stage 2
    vae_channels: tuple = (8, 16, 32, 64)  # 4 levels: 64x64 -> 8x8 latents
    vae_norm_groups: int = 2  # few, wide groups: per-channel norms would erase the flat colours
    vae_batch: int = 16
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6
    decoder_minutes: float = 8.0  # stage 3: the decoder alone, on the frozen encoder's latents
    decoder_lr: float = 3e-4
    unet_channels: tuple = (64, 128)  # 8x8 and 4x4, cross-attention at both
    unet_heads: int = 4
    text_hidden: int = 64
    text_layers: int = 3
    max_length: int = 32  # tokens incl. BOS/EOS; pair prompts "a photo of a sbu <caption> in <style> style" take <= 26
    pool_size: int = 12_000  # training images rendered and encoded once for stage 2
    unet_batch: int = 128
    unet_lr: float = 6e-4  # UNet and text encoder
    warmup_steps: int = 100
    caption_dropout: float = 0.1  # empty caption, for classifier-free guidance
    ema_decay: float = 0.999
    sample_every_minutes: float = 5.0
    sample_steps: int = 20  # DDIM steps of the periodic held-out check (CFG 5)
    threads: int = 1  # torch threads; 2 threads stall badly when another process shares the 2 cores


def lr_at(base: float, step: int, warmup: int, progress: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay over the time budget (``progress`` in 0-1)."""
    return base * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def build_models(config: TrainConfig, vocab_size: int):
    """Fresh (vae, text_encoder, unet, scheduler), seeded."""
    torch.manual_seed(config.seed)
    levels = len(config.vae_channels)
    vae = AutoencoderKL(
        block_out_channels=config.vae_channels, down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels, latent_channels=4, norm_num_groups=config.vae_norm_groups, sample_size=64,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=config.text_hidden, intermediate_size=2 * config.text_hidden,
        num_hidden_layers=config.text_layers, num_attention_heads=4, max_position_embeddings=config.max_length,
        projection_dim=config.text_hidden, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    ))
    n = len(config.unet_channels)
    unet = UNet2DConditionModel(
        sample_size=64 // 2 ** (levels - 1), in_channels=4, out_channels=4, block_out_channels=config.unet_channels,
        layers_per_block=1, down_block_types=("CrossAttnDownBlock2D",) * n, up_block_types=("CrossAttnUpBlock2D",) * n,
        cross_attention_dim=config.text_hidden, attention_head_dim=config.unet_heads, norm_num_groups=16,
    )
    return vae, text_encoder, unet, sd_scheduler("epsilon")


class Budget:
    """A wall-clock budget with a tqdm bar counting its seconds."""

    def __init__(self, minutes: float, desc: str):
        self.seconds, self.start = minutes * 60, time.time()
        self.bar = tqdm(total=round(self.seconds), desc=desc, unit="s", mininterval=20)

    @property
    def progress(self) -> float:
        return (time.time() - self.start) / self.seconds

    def tick(self, **postfix) -> bool:
        """Update the bar; False once the budget is spent."""
        self.bar.update(min(round(time.time() - self.start), self.bar.total) - self.bar.n)
        self.bar.set_postfix(postfix, refresh=False)
        if self.progress >= 1:
            self.bar.close()
        return self.progress < 1


def train_vae(vae: AutoencoderKL, config: TrainConfig, out: Path, rng: np.random.Generator,
              decoder_only: bool = False) -> None:
    """Stage 1: L1 reconstruction + a tiny KL term, on freshly rendered training images.

    With ``decoder_only`` (stage 3) the encoder is frozen, so the latent space the
    UNet learned stays put while the decoder sharpens.
    """
    name, minutes, base_lr = ("decoder", config.decoder_minutes, config.decoder_lr) if decoder_only else (
        "vae", config.vae_minutes, config.vae_lr)
    params = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()] if decoder_only else list(vae.parameters())
    vae.requires_grad_(False)
    for param in params:
        param.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=base_lr, weight_decay=0.0)
    budget, step = Budget(minutes, name), 0
    vae.train()
    while budget.tick():
        for group in optimizer.param_groups:
            group["lr"] = lr_at(base_lr, step, config.warmup_steps, budget.progress)
        images = to_tensor(render_batch(rng, config.vae_batch)[0])  # (B, 3, 64, 64)
        with torch.set_grad_enabled(not decoder_only):
            posterior = vae.encode(images).latent_dist
        recon = vae.decode(posterior.sample()).sample
        loss = F.l1_loss(recon, images) + (0 if decoder_only else config.kl_weight * posterior.kl().mean())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        budget.bar.set_postfix(loss=f"{loss.item():.4f}", step=step, refresh=False)
    vae.requires_grad_(False).eval()
    images, scenes = render_batch(np.random.default_rng(config.seed + 1), 256, held_out_combos())
    with torch.no_grad():
        recon = to_uint8(vae(to_tensor(images)).sample)  # (256, 64, 64, 3)
    adherence = score(recon, [scene.combo for scene in scenes])
    print(f"{name}: {step} steps; held-out reconstructions read back: {adherence}", flush=True)
    save_grid(np.concatenate([images[:16], recon[:16]]), out / f"{name}_reconstructions.png")


@torch.no_grad()
def encode_pool(vae: AutoencoderKL, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 64, 64, 3) uint8 -> latent means and stds, each (N, 4, 8, 8)."""
    means, stds = [], []
    for start in range(0, len(images), 256):
        dist = vae.encode(to_tensor(images[start : start + 256])).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def train_unet(pipe: StableDiffusionPipeline, config: TrainConfig, out: Path, rng: np.random.Generator) -> None:
    """Stage 2: UNet + text encoder through the diffusion loss; the pipeline ends up holding their EMA."""
    images, scenes = render_batch(rng, config.pool_size)
    means, stds = encode_pool(pipe.vae, images)
    scaling = float(1.0 / means.std())
    pipe.vae.register_to_config(scaling_factor=scaling)
    print(f"latent pool {tuple(means.shape)}, scaling_factor {scaling:.4f}", flush=True)

    def tokens(texts):
        return pipe.tokenizer(texts, padding="max_length", max_length=config.max_length, truncation=True,
                              return_tensors="pt").input_ids

    caption_ids = tokens([caption(*scene.combo) for scene in scenes])  # (N, L)
    empty_ids = tokens([""])  # (1, L)
    unet, text_encoder, scheduler = pipe.unet, pipe.text_encoder, pipe.scheduler
    models = torch.nn.ModuleList([unet, text_encoder])
    ema = copy.deepcopy(models).requires_grad_(False)
    optimizer = torch.optim.AdamW(models.parameters(), lr=config.unet_lr, weight_decay=0.01)
    budget, step, next_sample = Budget(config.unet_minutes, "unet"), 0, config.sample_every_minutes
    models.train()
    while budget.tick():
        for group in optimizer.param_groups:
            group["lr"] = lr_at(config.unet_lr, step, config.warmup_steps, budget.progress)
        index = torch.from_numpy(rng.integers(len(means), size=config.unet_batch))
        latents = (means[index] + stds[index] * torch.randn_like(means[index])) * scaling  # (B, 4, 8, 8)
        drop = torch.from_numpy(rng.random(config.unet_batch) < config.caption_dropout)[:, None]
        ids = torch.where(drop, empty_ids, caption_ids[index])  # (B, L)
        noise = torch.randn_like(latents)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (config.unet_batch,))
        prediction = unet(scheduler.add_noise(latents, noise, t), t, text_encoder(ids)[0]).sample
        loss = F.mse_loss(prediction, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(models.parameters(), 1.0)
        optimizer.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(list(ema.parameters()), list(models.parameters()), 1 - decay)
        step += 1
        budget.bar.set_postfix(loss=f"{loss.item():.4f}", step=step, refresh=False)
        minutes = budget.progress * config.unet_minutes
        if minutes >= next_sample or budget.progress >= 1:
            next_sample += config.sample_every_minutes
            check(pipe, ema, config, out / f"samples_{minutes:04.1f}min.png", f"step {step}")
    models.load_state_dict(ema.state_dict())
    models.eval()


def check(pipe: StableDiffusionPipeline, ema: torch.nn.ModuleList, config: TrainConfig, path: Path, label: str):
    """Generate every held-out combination once with the EMA weights, score it and save the grid."""
    live = pipe.unet, pipe.text_encoder
    pipe.unet, pipe.text_encoder = ema[0].eval(), ema[1].eval()
    pipe.set_progress_bar_config(disable=True)
    combos = held_out_combos()
    images = generate(pipe, combos, seeds=(0,), steps=config.sample_steps, cfg=5.0)
    pipe.unet, pipe.text_encoder = live
    print(f"{label}: held-out adherence {score(images, combos)}", flush=True)
    save_grid(images, path)


def save(pipe: StableDiffusionPipeline, target: Path) -> None:
    """Save ``pipe`` in fp16 with its paircustom.json (the pipeline itself is left in fp32)."""
    pipe.to(torch.float16).save_pretrained(target)
    pipe.to(torch.float32)
    (target / "paircustom.json").write_text(json.dumps(
        {"family": "sd", "name": "shapes", "train_defaults": TRAIN_DEFAULTS}, indent=2) + "\n")
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"saved {target} ({size / 1e6:.1f} MB)", flush=True)


def refine(config: TrainConfig, out: Path, pipeline: Path) -> None:
    """Stage 3 alone on a saved pipeline; the result goes to out/pipeline."""
    from . import load_shapes_pipeline

    torch.set_num_threads(config.threads)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    pipe = load_shapes_pipeline(model_dir=pipeline)
    train_vae(pipe.vae, config, out, np.random.default_rng(config.seed + 2), decoder_only=True)
    save(pipe, out / "pipeline")


def train(config: TrainConfig, out: Path, vae_from: Path | None = None) -> StableDiffusionPipeline:
    """Run the three stages (stage 1 is skipped with ``vae_from``) and save the fp16 pipeline to out/pipeline."""
    torch.set_num_threads(config.threads)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2))
    rng = np.random.default_rng(config.seed)
    words = [*BASE_WORDS, *WORLD_WORDS, *STYLE_WORDS]
    tokenizer = write_clip_tokenizer(out / "tokenizer_files", words, max_length=config.max_length)
    vae, text_encoder, unet, scheduler = build_models(config, len(tokenizer))
    if vae_from:
        vae = AutoencoderKL.from_pretrained(vae_from, dtype=torch.float32).requires_grad_(False).eval()
    else:
        train_vae(vae, config, out, rng)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    train_unet(pipe, config, out, rng)
    if config.decoder_minutes > 0:
        train_vae(vae, config, out, rng, decoder_only=True)
    save(pipe, out / "pipeline")
    return pipe


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="folder for samples, logs and the pipeline")
    parser.add_argument("--vae-from", type=Path, default=None, help="reuse this trained vae folder, skip stage 1")
    parser.add_argument("--refine", type=Path, default=None, help="only run stage 3 on this saved pipeline")
    defaults = TrainConfig()
    for field in fields(TrainConfig):
        value = getattr(defaults, field.name)
        if isinstance(value, (int, float)):
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    config = TrainConfig(**{f.name: getattr(args, f.name, getattr(defaults, f.name)) for f in fields(TrainConfig)})
    if args.refine:
        refine(config, args.out, args.refine)
    else:
        train(config, args.out, args.vae_from)


if __name__ == "__main__":
    main()
