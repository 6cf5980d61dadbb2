"""Train the shapes-world Stable Diffusion pipeline from scratch, in stages that save and resume.

    python -m paircustom.shapes.train --out DIR [--device cuda] [--stop-after vae|unet] [--vae-from VAE_DIR]
                                     [--unet-from PIPELINE_DIR]
                                     [--seed 0] [--vae-steps N] [--unet-steps N] [--decoder-steps N] ...

Stage ``vae`` trains an AutoencoderKL (64x64x3 <-> 16x16x8) on everything a real VAE would see: plain scenes,
scenes in the known styles, scenes in the benchmark styles and random textures.  Stage ``unet`` renders a pool
of training scenes (a quarter of them in a known style, captioned ``... in <known> style``), encodes it once,
and trains the UNet and the CLIP text encoder jointly through the v-prediction loss (zero terminal SNR, see
``networks.shapes_scheduler``), dropping the caption 10% of the time for classifier-free guidance.  Stage ``decoder``
sharpens the VAE decoder on the frozen encoder's latents, which leaves the UNet's latent space unchanged.

Each stage writes its result under DIR and is skipped when that result exists; the UNet stage also checkpoints
(safetensors + JSON) every ``checkpoint_every`` steps, and every step draws its data from a generator seeded by
(seed, stage, step), so a run stopped at any point and started again with the same command gives the same
model.  The fp16 pipeline lands in DIR/pipeline.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import asdict, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, StableDiffusionPipeline
from transformers import CLIPTokenizer
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..training.checkpoint import join_optimizer_state, split_optimizer_state
from ..files.images import atomic_write, from_uint8
from ..models.forward import prediction_target, training_scheduler
from ..tiny.unet import BASE_WORDS, write_clip_tokenizer
from .base_config import TRAIN_DEFAULTS, BaseTrainConfig
from .data import encode_pool, step_rng, training_pool, vae_images
from .evaluate import eval_layouts, format_ceilings, generate, save_grid, score, vae_ceilings
from .networks import build_models
from .families import FAMILY_WORDS
from .one_dtype import load_in_one_dtype
from .styles import STYLE_WORDS
from .world import SIZE, WORLD_WORDS


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


def save(pipe: StableDiffusionPipeline, target: Path) -> None:
    """Save ``pipe`` in fp16 with its paircustom.json (the pipeline itself is left in fp32); every component
    loads in fp32 by default (``one_dtype``)."""
    pipe.to(torch.float16).save_pretrained(target)
    pipe.to(torch.float32)
    load_in_one_dtype(target)
    (target / "paircustom.json").write_text(json.dumps(
        {"family": "sd", "name": "shapes", "version": 2, "train_defaults": TRAIN_DEFAULTS}, indent=2) + "\n")
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"saved {target} ({size / 1e6:.1f} MB)", flush=True)


def start_from(pipe: StableDiffusionPipeline, folder: Path) -> None:
    """Load a finished pipeline's UNet and text encoder weights into ``pipe`` (same architecture).  Token
    embeddings are matched by token text, so ``pipe``'s vocabulary may add words: those keep their fresh rows."""
    for name, module in (("unet", pipe.unet), ("text_encoder", pipe.text_encoder)):
        try:
            trained = type(module).from_pretrained(folder, subfolder=name, torch_dtype=torch.float32)
            state = trained.state_dict()
            for key in [k for k in state if k.endswith(TOKEN_EMBEDDING)] if name == "text_encoder" else []:
                state[key] = remap_embedding(state[key], module.state_dict()[key],
                                             CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer"), pipe.tokenizer)
            module.load_state_dict(state)
        except (OSError, RuntimeError) as error:
            raise SystemExit(f"--unet-from {folder}: its {name} does not fit this configuration ({error}); give a "
                             "pipeline folder trained with the same architecture.") from None


TOKEN_EMBEDDING = "token_embedding.weight"  # the key's end (transformers versions differ in its prefix)


def remap_embedding(old: torch.Tensor, fresh: torch.Tensor, old_tokenizer, new_tokenizer) -> torch.Tensor:
    """(V_old, D) rows moved to the new tokenizer's ids by token text -> (V_new, D); tokens the old vocabulary
    lacks keep their ``fresh`` rows."""
    old_ids, rows = old_tokenizer.get_vocab(), fresh.clone()
    for token, new_id in new_tokenizer.get_vocab().items():
        if token in old_ids:
            rows[new_id] = old[old_ids[token]]
    return rows


def check_same_start(out: Path, unet_from: Path | None) -> None:
    """A UNet stage continues with the ``--unet-from`` it started with: record it, refuse another (or none)."""
    record = out / "unet_from.json"
    given = None if unet_from is None else str(Path(unet_from).resolve())
    started = json.loads(record.read_text())["unet_from"] if record.is_file() else given
    if started != given:
        raise SystemExit(f"{out}'s UNet stage started from {started}; continue it with the same --unet-from, or use "
                         "a new --out.")
    record.write_text(json.dumps({"unet_from": given}))


def log(out: Path, stage: str, text: str, seconds: float) -> None:
    line = f"{stage}: {text}; {seconds / 60:.1f} min"
    print(line, flush=True)
    with open(out / "log.txt", "a") as file:
        file.write(line + "\n")


STAGES = ("vae", "unet", "decoder")
# What runs saved before a field existed did.
BEFORE_FIELDS = {"zero_terminal_snr": False, "unet_plain_levels": 0, "filler_share": 0.0, "family_share": 0.0}


def train(config: BaseTrainConfig, out: Path, device: str = "cpu", stop_after: str = "decoder",
          vae_from: Path | None = None, unet_from: Path | None = None) -> StableDiffusionPipeline | None:
    """Run the stages that have no saved result under ``out`` yet, up to ``stop_after``; after the last stage
    save the fp16 pipeline to out/pipeline.  ``vae_from``: a finished VAE stage (its folder) to start from;
    ``unet_from``: a pipeline folder whose UNet and text encoder the UNet stage starts from (continued training)."""
    torch.set_num_threads(config.threads)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.json"
    # A field added after a run was saved takes the value that keeps the earlier behaviour.
    # ``threads`` only sets the speed (and last float bits), so a run may continue with another thread count.
    same = lambda settings: {k: v for k, v in settings.items() if k != "threads"}  # noqa: E731
    if saved.is_file() and same({**asdict(BaseTrainConfig()), **BEFORE_FIELDS, **json.loads(saved.read_text())}) \
            != same(json.loads(json.dumps(asdict(config)))):
        raise SystemExit(f"{out} holds a run with another configuration ({saved}); use a new --out.")
    saved.write_text(json.dumps(asdict(config), indent=2))
    words = [*BASE_WORDS, *WORLD_WORDS, *STYLE_WORDS, *(FAMILY_WORDS if config.family_share else ())]
    tokenizer = write_clip_tokenizer(out / "tokenizer_files", words, max_length=config.max_length)
    vae, text_encoder, unet, scheduler = build_models(config, len(tokenizer))
    if vae_from and not (out / "vae" / "config.json").is_file():
        AutoencoderKL.from_pretrained(vae_from).save_pretrained(out / "vae")
    for stage in STAGES[: STAGES.index(stop_after) + 1]:
        folder, began = out / stage, time.time()
        if stage == "vae" and (folder / "config.json").is_file():
            vae = AutoencoderKL.from_pretrained(folder).requires_grad_(False).eval()
            continue
        if stage != "vae" and (folder / "model_index.json").is_file():
            pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None)
            vae, text_encoder, unet = pipe.vae, pipe.text_encoder, pipe.unet
            continue
        pipe = StableDiffusionPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        ).to(device)
        if stage == "vae":
            log(out, stage, train_vae(vae, config, out, device), time.time() - began)
            vae.save_pretrained(folder)
        elif stage == "unet":
            check_same_start(out, unet_from)
            if unet_from:
                start_from(pipe, unet_from)
            train_unet(pipe, config, out, device, continued=unet_from is not None)
            log(out, stage, f"{config.unet_steps} steps" + (f" from {unet_from}" if unet_from else ""),
                time.time() - began)
            pipe.save_pretrained(folder)
        else:
            log(out, stage, train_vae(vae, config, out, device, decoder_only=True), time.time() - began)
            pipe.save_pretrained(folder)
    if stop_after != STAGES[-1]:
        print(f"stopped after the {stop_after} stage; run again with the same --out to continue", flush=True)
        return None
    pipe.to("cpu")
    save(pipe, out / "pipeline")
    return pipe


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="folder for stages, checkpoints, samples and logs")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu)")
    parser.add_argument("--stop-after", choices=STAGES, default=STAGES[-1], help="last stage to run this time")
    parser.add_argument("--vae-from", type=Path, default=None, help="a finished VAE stage folder to start from")
    parser.add_argument("--unet-from", type=Path, default=None,
                        help="a finished pipeline folder whose UNet and text encoder the UNet stage continues")
    defaults = BaseTrainConfig()
    for field in fields(BaseTrainConfig):
        value, flag = getattr(defaults, field.name), f"--{field.name.replace('_', '-')}"
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        elif isinstance(value, (int, float, str)):
            parser.add_argument(flag, type=type(value), default=value)
        elif isinstance(value, tuple):  # channel widths, e.g. --unet-channels 32,64,128
            parser.add_argument(flag, type=lambda text: tuple(int(v) for v in text.split(",")), default=value,
                                help=f"comma-separated (default {','.join(map(str, value))})")
    args = parser.parse_args(argv)
    config = BaseTrainConfig(**{f.name: getattr(args, f.name, getattr(defaults, f.name))
                                for f in fields(BaseTrainConfig)})
    train(config, args.out, args.device, args.stop_after, args.vae_from, args.unet_from)


if __name__ == "__main__":
    main()
