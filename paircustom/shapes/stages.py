"""The three training stages of the shapes-world base model (``train`` runs them and saves the pipeline): the
VAE (stage 1), the UNet with the text encoder (stage 2) and the VAE decoder alone (stage 3), each resumable from
its ``Checkpoint``; see ``train``'s docstring for what each stage learns."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, StableDiffusionPipeline
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..training.checkpoint import join_optimizer_state, split_optimizer_state
from ..files.images import atomic_write, from_uint8
from ..models.forward import prediction_target, training_scheduler
from .base_config import BaseTrainConfig
from .data import encode_pool, step_rng, training_pool, vae_images
from .evaluate import eval_layouts, format_ceilings, generate, save_grid, score, vae_ceilings
from .world import SIZE


def lr_at(base: float, step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    return base * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0)))


def train_vae(vae: AutoencoderKL, config: BaseTrainConfig, out: Path, device: str = "cpu",
              decoder_only: bool = False) -> str:
    """Stage 1 (or 3 with ``decoder_only``): L1 reconstruction + a tiny KL term + the colour-latent term;
    returns a one-line summary. The decoder's output conv stays as ``networks.orthogonal_output`` set it.

    With ``decoder_only`` the encoder is frozen, so the latent space the UNet learned stays put.
    """
    stage, name, steps, base_lr = (3, "decoder", config.decoder_steps, config.decoder_lr) if decoder_only else (
        1, "vae", config.vae_steps, config.vae_lr)
    params = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()] if decoder_only else list(vae.parameters())
    params = [param for param in params if param is not vae.decoder.conv_out.weight]  # see networks.orthogonal_output
    vae.requires_grad_(False)
    for param in params:
        param.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=base_lr, weight_decay=0.0)
    checkpoint = Checkpoint(out / f"{name}_checkpoint.safetensors", {"model": vae}, optimizer)
    vae.train()
    for step in (bar := tqdm(range(checkpoint.load(), steps), desc=name, mininterval=20)):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(base_lr, step, config.warmup_steps, steps)
        rng = step_rng(config, stage, step)
        images = from_uint8(vae_images(rng, config.vae_batch, config)).to(device)  # (B, 3, 64, 64)
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        with torch.set_grad_enabled(not decoder_only):
            posterior = vae.encode(images).latent_dist
        latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator).to(device)
        recon = vae.decode(latents).sample
        loss = F.l1_loss(recon, images)
        if not decoder_only:  # a tiny KL, and colour in the latent: channels 0-2 ~ the mean colour per latent pixel
            loss = loss + config.kl_weight * posterior.kl().mean() + config.colour_latent_weight * F.l1_loss(
                posterior.mean[:, :3], F.avg_pool2d(images, SIZE // posterior.mean.shape[-1]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if (step + 1) % config.checkpoint_every == 0:
            checkpoint.save(step + 1)
    vae.requires_grad_(False).eval()
    return f"{steps} steps; round-trip error (0-255) and style ceilings: {format_ceilings(vae_ceilings(vae))}"


class Checkpoint:
    """Modules and optimizer state of one stage as safetensors, the step, param groups and optimizer scalars as
    JSON (no pickle; the optimizer state is stored as the pair trainer's checkpoints store it)."""

    def __init__(self, path: Path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer):
        self.path, self.modules, self.optimizer = path, modules, optimizer

    @torch.no_grad()
    def save(self, step: int) -> None:
        tensors = {f"{prefix}.{k}": v.detach().cpu().contiguous()
                   for prefix, module in self.modules.items() for k, v in module.state_dict().items()}
        state = self.optimizer.state_dict()
        optimizer_tensors, scalars = split_optimizer_state(state["state"])
        atomic_write(self.path, lambda temp: save_file({**tensors, **optimizer_tensors}, temp))
        self.path.with_suffix(".json").write_text(json.dumps(
            {"step": step, "param_groups": state["param_groups"], "optimizer_scalars": scalars}))

    def load(self) -> int:
        """Restore the saved state if there is one; return the step to continue from (0 if none)."""
        if not self.path.is_file():
            return 0
        tensors, meta = load_file(str(self.path)), json.loads(self.path.with_suffix(".json").read_text())
        for prefix, module in self.modules.items():
            module.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
        self.optimizer.load_state_dict({"state": join_optimizer_state(tensors, meta["optimizer_scalars"]),
                                        "param_groups": meta["param_groups"]})
        print(f"resumed {self.path.name} at step {meta['step']}", flush=True)
        return int(meta["step"])


def train_unet(pipe: StableDiffusionPipeline, config: BaseTrainConfig, out: Path, device: str = "cpu",
               continued: bool = False) -> None:
    """Stage 2: UNet + text encoder through the diffusion loss; the pipeline ends up holding their EMA."""
    images, captions = training_pool(config)
    means, stds = encode_pool(pipe.vae, images, device)
    # A continued UNet keeps the latent scale it learned; a new one gets unit-variance latents.
    scaling = pipe.vae.config.scaling_factor if continued else float(1.0 / means.std())
    pipe.vae.register_to_config(scaling_factor=scaling)
    print(f"latent pool {tuple(means.shape)}, scaling_factor {scaling:.4f}", flush=True)

    def tokens(texts):
        return pipe.tokenizer(texts, padding="max_length", max_length=config.max_length, truncation=True,
                              return_tensors="pt").input_ids

    caption_ids, empty_ids = tokens(captions).to(device), tokens([""]).to(device)  # (N, L), (1, L)
    unet, text_encoder, scheduler = pipe.unet, pipe.text_encoder, training_scheduler(pipe)  # DDPM forward process
    models = torch.nn.ModuleList([unet, text_encoder])
    ema = copy.deepcopy(models).requires_grad_(False)
    optimizer = torch.optim.AdamW(models.parameters(), lr=config.unet_lr, weight_decay=0.01)
    checkpoint = Checkpoint(out / "unet_checkpoint.safetensors", {"model": models, "ema": ema}, optimizer)
    models.train()
    for step in (bar := tqdm(range(checkpoint.load(), config.unet_steps), desc="unet", mininterval=20)):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(config.unet_lr, step, config.warmup_steps, config.unet_steps)
        rng = step_rng(config, 2, step)
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        index = torch.from_numpy(rng.integers(len(means), size=config.unet_batch)).to(device)
        draw = lambda: torch.randn(means[index].shape, generator=generator).to(device)  # noqa: E731
        latents = (means[index] + stds[index] * draw()) * scaling  # (B, C, h, w)
        drop = torch.from_numpy(rng.random(config.unet_batch) < config.caption_dropout)[:, None].to(device)
        ids = torch.where(drop, empty_ids, caption_ids[index])  # (B, L)
        noise = draw()
        t = torch.randint(0, scheduler.config.num_train_timesteps, (config.unet_batch,), generator=generator).to(device)
        prediction = unet(scheduler.add_noise(latents, noise, t), t, text_encoder(ids)[0]).sample
        loss = F.mse_loss(prediction, prediction_target(scheduler, latents, noise, t))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(models.parameters(), 1.0)
        optimizer.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(list(ema.parameters()), list(models.parameters()), 1 - decay)
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        done = step + 1
        if done % config.checkpoint_every == 0:
            checkpoint.save(done)
        if done % config.sample_every == 0 or done == config.unet_steps:
            check(pipe, ema, config, out / f"samples_{done:05d}.png", f"step {done}")
    models.load_state_dict(ema.state_dict())
    models.eval()


def check(pipe: StableDiffusionPipeline, ema: torch.nn.ModuleList, config: BaseTrainConfig, path: Path, label: str):
    """Generate 24 held-out layouts once with the EMA weights, score them and save the grid."""
    live = pipe.unet, pipe.text_encoder
    pipe.unet, pipe.text_encoder = ema[0].eval(), ema[1].eval()
    pipe.set_progress_bar_config(disable=True)
    layouts = eval_layouts(24, held_out=True)
    images = generate(pipe, [layout.caption for layout in layouts], steps=config.sample_steps)  # CFG: GENERATE
    pipe.unet, pipe.text_encoder = live
    print(f"{label}: held-out adherence {score(images, layouts)}", flush=True)
    save_grid(images, path)


