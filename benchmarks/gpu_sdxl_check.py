"""GPU check of the SDXL user path: real-width SDXL pair training in bf16, then one styled generation.

    python -m benchmarks.gpu_sdxl_check                        # SDXL's UNet config, random weights, cuda, bf16
    python -m benchmarks.gpu_sdxl_check --model stabilityai/stable-diffusion-xl-base-1.0 \
        --variant fp16 --vae madebyollin/sdxl-vae-fp16-fix     # the real model (downloads; only when asked)
    python -m benchmarks.gpu_sdxl_check --tiny --device cpu    # the same code path on a CPU, tiny SDXL (seconds)

Without ``--model`` nothing is downloaded: the UNet is built from SDXL's published config (2.6 B parameters,
64x64 latents = 512 px), the VAE from SDXL's VAE config (random weights, decoded without the fp16 upcast as
the fp16-fix VAE allows) and small text encoders of SDXL's widths (768 + 1280); the sampling scheduler is
SDXL's EulerDiscreteScheduler config (``tiny.SCHEDULER_CONFIGS["sdxl-euler"]``), the one that exposed issue 8.

Steps (each timed, peak memory after each):
  1. build or load the pipeline on the device in ``--dtype`` (bf16);
  2. pair training (``PairTrainer``, bf16 mixed precision on a GPU): ``--warmup`` untimed steps, ``--steps``
     timed ones -> steps/s; losses must stay finite; one training preview in the middle (Euler sampling
     between training steps, which crashed before the fix);
  3. save the style file (fp16), load it into ``StyleGuidedPipeline`` and generate one image at the training
     size with ``--sample-steps`` Euler steps.
Writes ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/gpu-sdxl-check[-tiny]``).  Designed to
finish in under 5 minutes on one H100.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from paircustom.config.train import PAPER_DEFAULTS

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "benchmarks" / "results"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny SDXL built in code (CPU smoke run of the same path)")
    p.add_argument("--model", help="hub id or folder of a real SDXL pipeline (default: SDXL-shaped, random weights)")
    p.add_argument("--variant", help='weight files of --model, e.g. "fp16"')
    p.add_argument("--vae", help="replacement VAE of --model, e.g. madebyollin/sdxl-vae-fp16-fix")
    add_run_options(p, rank=PAPER_DEFAULTS["rank"], sample_steps=20)
    p.add_argument("--out", help="results path without extension (default: benchmarks/results/gpu-sdxl-check[-tiny])")
    return p.parse_args(argv)


def add_run_options(p: argparse.ArgumentParser, rank: int, sample_steps: int) -> None:
    """The device, precision and run-length options of both GPU checks (this one and gpu_flux_check)."""
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default="bf16", help="base weights (default: bf16)")
    p.add_argument("--resolution", type=int, help="training and sampling size (default: 512, tiny 32)")
    p.add_argument("--rank", type=int, help=f"LoRA rank (default: {rank}, tiny 4)")
    p.add_argument("--warmup", type=int, default=3, help="untimed training steps (default: %(default)s)")
    p.add_argument("--steps", type=int, default=20, help="timed training steps (default: %(default)s)")
    p.add_argument("--sample-steps", type=int, default=sample_steps, help="denoising steps (default: %(default)s)")
    p.add_argument("--gradient-checkpointing", action="store_true")


class Meter:
    """Wall time and peak memory of named stages (GPU: allocator peak; CPU: the process's max RSS so far)."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.stages: dict[str, dict] = {}

    def peak_gib(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated() / 2**30
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux

    def run(self, name: str, function):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        result = function()
        if self.cuda:
            torch.cuda.synchronize()
        self.stages[name] = {"seconds": round(time.perf_counter() - start, 3), "peak_gib": round(self.peak_gib(), 2)}
        return result


def build_pipeline(args, dtype):
    """The pipeline on ``args.device`` in ``dtype``: tiny, SDXL-shaped from config, or --model."""
    from paircustom.models.registry import load_pipeline
    from paircustom.tiny.unet import build_tiny_pipeline, real_scheduler

    if args.model:
        pipe = load_pipeline(args.model, dtype, variant=args.variant, vae=args.vae)
        return pipe.to(args.device)
    if args.tiny:
        pipe = build_tiny_pipeline("sdxl", scheduler="sdxl-euler")
    else:
        from diffusers import AutoencoderKL, StableDiffusionXLPipeline

        from paircustom.bench.models import SD_VAE, build_unet
        from paircustom.tiny.unet import tiny_text_encoder, write_clip_tokenizer

        tokenizer = write_clip_tokenizer(Path(tempfile.mkdtemp(prefix="paircustom-gpu-check-")) / "tokenizer")
        with torch.device(args.device):  # 2.6 B parameters: initialise them where they will run
            unet = build_unet("sdxl", args.device)
            vae = AutoencoderKL(**SD_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=False)
        pipe = StableDiffusionXLPipeline(
            vae=vae,
            text_encoder=tiny_text_encoder(len(tokenizer), 768),
            tokenizer=tokenizer,
            text_encoder_2=tiny_text_encoder(len(tokenizer), 1280, projection=1280, seed=1),
            tokenizer_2=tokenizer,
            unet=unet,
            scheduler=real_scheduler("sdxl-euler"),
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(args.device, dtype)


def run(args) -> dict:
    from paircustom.bench.models import write_pair
    from paircustom.distributed import check_device
    from paircustom.models.registry import DTYPES
    from paircustom.sampling.pipeline import StyleGuidedPipeline
    from paircustom.training.trainer import PairTrainer, TrainConfig

    check_device(args.device)
    resolution = args.resolution or (32 if args.tiny else 512)
    rank = args.rank or (4 if args.tiny else PAPER_DEFAULTS["rank"])
    dtype = DTYPES[args.dtype]
    cuda = args.device.startswith("cuda")
    folder = Path(tempfile.mkdtemp(prefix="paircustom-gpu-check-"))
    meter = Meter(args.device)

    pipe = meter.run("build", lambda: build_pipeline(args, dtype))
    unet_parameters = sum(p.numel() for p in pipe.unet.parameters())
    content, style = write_pair(folder, resolution)
    total = args.warmup + args.steps
    config = TrainConfig(
        content,
        style,
        subject="dog",
        style="digital art",
        model=args.model or "shapes",
        output=str(folder / "style.safetensors"),
        rank=rank,
        learning_rate=1e-4,
        max_steps=total,
        style_start_step=0,
        gradient_accumulation=1,
        resolution=resolution,
        device=args.device,
        mixed_precision=args.dtype if cuda and args.dtype != "fp32" else "no",
        gradient_checkpointing=args.gradient_checkpointing,
        save_dtype="fp16",
        progress=False,
        preview_every=10**9,
    )  # never due; keeps the VAE and text encoders on the device
    trainer = meter.run("trainer setup", lambda: PairTrainer(config, pipe))
    history = time_training(meter, trainer, args, "training preview (Euler)")
    meter.run("training after preview", lambda: history.append(trainer.train_step()))
    finite = all(math.isfinite(x) for step in history for x in step if x is not None)
    path, config = trainer.save(), trainer.config  # the resolved config: prompts filled in
    trainer.close()

    guided = StyleGuidedPipeline(pipe)
    guided.load_style(path, name="style")
    image = meter.run(
        "generation",
        lambda: guided(
            config.content_prompt,
            styles=["style"],
            num_inference_steps=args.sample_steps,
            height=resolution,
            width=resolution,
            seed=0,
        ).images[0],
    )
    image.save(folder / "generated.png")
    timed = meter.stages["training (timed)"]["seconds"]
    return {
        **run_header(cuda),
        "model": args.model or ("tiny SDXL (in code)" if args.tiny else "SDXL-shaped from config (random weights)"),
        "denoiser": "UNet",
        "denoiser_parameters": unet_parameters,
        "dtype": args.dtype,
        "mixed_precision": config.mixed_precision,
        "resolution": resolution,
        "rank": rank,
        "gradient_checkpointing": args.gradient_checkpointing,
        "training_steps_per_s": round(args.steps / timed, 3),
        "losses_finite": finite,
        "first_losses": history[0],
        "last_losses": history[-1],
        "style_file_mb": round(path.stat().st_size / 2**20, 1),
        "sample_steps": args.sample_steps,
        "stages": meter.stages,
        "peak_memory_kind": "GPU allocator peak" if cuda else "process max RSS",
    }


def time_training(meter: Meter, trainer, args, preview: str) -> list:
    """Warm-up steps, timed steps and a 4-step preview, each a stage of ``meter``; -> the loss history."""
    history = []
    meter.run("training warm-up", lambda: [history.append(trainer.train_step()) for _ in range(args.warmup)])
    meter.run("training (timed)", lambda: [history.append(trainer.train_step()) for _ in range(args.steps)])
    meter.run(preview, lambda: trainer.preview(steps=4))
    return history


def run_header(cuda: bool) -> dict:
    """When and on what a check ran."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if cuda else f"CPU ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
    }


def write(results: dict, out: Path, title: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# {title} ({results['date']})",
        "",
        f"{results['device']}, torch {results['torch']}; {results['model']}, {results['denoiser']} "
        f"{results['denoiser_parameters'] / 1e6:,.0f} M parameters, {results['dtype']} weights, mixed precision "
        f"{results['mixed_precision']}, {results['resolution']} px, rank {results['rank']}, gradient "
        f"checkpointing {'on' if results['gradient_checkpointing'] else 'off'}.",
        "",
        f"- training: **{results['training_steps_per_s']} steps/s**; losses finite: {results['losses_finite']} "
        f"(first {results['first_losses']}, last {results['last_losses']})",
        f"- style file ({results.get('save_dtype', 'fp16')}): {results['style_file_mb']} MB",
        "",
        f"| stage | seconds | peak memory, GiB ({results['peak_memory_kind']}) |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {stage['seconds']} | {stage['peak_gib']} |" for name, stage in results["stages"].items()]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def check_main(args, run, family: str) -> int:
    """main() of both GPU checks: a full-size run needs a GPU; run, write the results, print them."""
    name = f"gpu-{family.lower()}-check"
    if not args.tiny and not args.device.startswith("cuda"):
        print(f"{name}: the {family}-shaped run needs a GPU (--device cuda); use --tiny on a CPU.", file=sys.stderr)
        return 2
    results = run(args)
    out = Path(args.out) if args.out else RESULTS / (f"{name}-tiny" if args.tiny else name)
    write(results, out, f"{family} GPU check")
    print(out.with_suffix(".md").read_text())
    return 0 if results["losses_finite"] else 1


def main(argv=None) -> int:
    return check_main(parse_args(argv), run, "SDXL")


if __name__ == "__main__":
    raise SystemExit(main())
