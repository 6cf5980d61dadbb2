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
import json
import time
from dataclasses import asdict, fields
from pathlib import Path

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline
from transformers import CLIPTokenizer

from ..tiny.unet import BASE_WORDS, write_clip_tokenizer
from .base_config import TRAIN_DEFAULTS, BaseTrainConfig
from .families import FAMILY_WORDS
from .networks import build_models
from .one_dtype import load_in_one_dtype
from .stages import train_unet, train_vae
from .styles import STYLE_WORDS
from .world import WORLD_WORDS


def save(pipe: StableDiffusionPipeline, target: Path) -> None:
    """Save ``pipe`` in fp16 with its paircustom.json (the pipeline itself is left in fp32); every component
    loads in fp32 by default (``one_dtype``)."""
    pipe.to(torch.float16).save_pretrained(target)
    pipe.to(torch.float32)
    load_in_one_dtype(target)
    forget_local_paths(target)
    (target / "paircustom.json").write_text(json.dumps(
        {"family": "sd", "name": "shapes", "version": 2, "train_defaults": TRAIN_DEFAULTS}, indent=2) + "\n")
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"saved {target} ({size / 1e6:.1f} MB)", flush=True)


def forget_local_paths(target: Path) -> None:
    """Drop ``_name_or_path`` from the components' config.json: a component loaded from a folder (``--vae-from``)
    would otherwise carry that folder's path on this machine into the shipped model."""
    for config in target.glob("*/config.json"):
        settings = json.loads(config.read_text())
        if settings.pop("_name_or_path", None) is not None:
            config.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


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
