"""GPU check of the Flux path: real-width Flux pair training in bf16 (steps/s, peak memory), then one styled image.

    python -m benchmarks.gpu_flux_check                              # FLUX.1-dev's transformer config, random weights
    python -m benchmarks.gpu_flux_check --gradient-checkpointing     # the same with the transformer checkpointed
    python -m benchmarks.gpu_flux_check --model black-forest-labs/FLUX.1-dev   # real weights (downloads; gated)
    python -m benchmarks.gpu_flux_check --tiny --device cpu          # the same code path on a CPU, tiny Flux (seconds)

Without ``--model`` nothing is downloaded: the transformer is FLUX.1-dev's configuration (3072 wide, 24 heads x
128, 19 double- and 38 single-stream blocks, ~11.9 B parameters; ``--blocks D S`` for fewer) with random
weights, initialised on the device; the VAE is Flux's VAE configuration (16 latent channels, 8x); the text
encoders are small ones of Flux's widths (CLIP 768 pooled, T5 4096 wide, 512 T5 tokens as FLUX.1-dev), whose
embeddings are computed once and which then leave the device (as the real 4.7 B T5 would).

Steps (each timed, peak memory after each): build on the device in ``--dtype`` (bf16); ``PairTrainer`` setup
(encodes the pair); ``--warmup`` untimed and ``--steps`` timed training steps -> steps/s (losses must stay
finite); a 4-step preview; save the style file (bf16), load it into ``FlowStyleGuidedPipeline`` and draw one
image with ``--sample-steps`` steps.  Writes ``<out>.json`` and ``<out>.md`` (default
``benchmarks/results/gpu-flux-check[-tiny]``).  Meant to finish in under 5 minutes on one H100; it has not been
run on a GPU yet.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import torch

from benchmarks.gpu_sdxl_check import Meter, add_run_options, check_main, run_header, time_training

# black-forest-labs/FLUX.1-dev vae/config.json (random weights here).
FLUX_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=16,
    layers_per_block=2,
    norm_num_groups=32,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    scaling_factor=0.3611,
    shift_factor=0.1159,
    use_quant_conv=False,
    use_post_quant_conv=False,
    sample_size=1024,
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny Flux built in code (CPU smoke run of the same path)")
    p.add_argument("--model", help="hub id or folder of a real FluxPipeline (default: Flux-shaped, random weights)")
    p.add_argument(
        "--blocks",
        type=int,
        nargs=2,
        metavar=("DOUBLE", "SINGLE"),
        default=(19, 38),
        help="transformer blocks of the Flux-shaped model (default: FLUX.1-dev's 19 38)",
    )
    add_run_options(p, rank=16, sample_steps=8)
    p.add_argument("--use-8bit-adam", action="store_true", help="bitsandbytes AdamW8bit")
    p.add_argument("--out", help="results path without extension (default: benchmarks/results/gpu-flux-check[-tiny])")
    return p.parse_args(argv)


def build_pipeline(args, dtype):
    """The pipeline on ``args.device`` in ``dtype``: tiny, Flux-shaped from config, or --model."""
    from paircustom.models.registry import load_pipeline
    from paircustom.tiny.flow import build_tiny_flow_pipeline

    if args.model:
        return load_pipeline(args.model, dtype)  # the trainer places each part on the device
    tiny = build_tiny_flow_pipeline("flux")
    if args.tiny:
        pipe = tiny
    else:
        from diffusers import AutoencoderKL, FluxPipeline, FluxTransformer2DModel

        from paircustom.bench.models import FLUX_TRANSFORMER
        from paircustom.tiny.flow import tiny_t5, tiny_t5_tokenizer
        from paircustom.tiny.unet import tiny_text_encoder

        double, single = args.blocks
        with torch.device(args.device):  # ~12 B parameters: initialise them where they will run
            transformer = FluxTransformer2DModel(
                **{**FLUX_TRANSFORMER, "num_layers": double, "num_single_layers": single}
            ).to(dtype)
            vae = AutoencoderKL(**FLUX_VAE).to(dtype)
        t5_tokenizer = tiny_t5_tokenizer(max_length=512)
        pipe = FluxPipeline(
            scheduler=tiny.scheduler,
            vae=vae,
            transformer=transformer,
            text_encoder=tiny_text_encoder(len(tiny.tokenizer), 768),
            tokenizer=tiny.tokenizer,
            text_encoder_2=tiny_t5(len(t5_tokenizer), 4096, seed=2, ff=64),
            tokenizer_2=t5_tokenizer,
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(dtype=dtype)


def run(args) -> dict:
    from paircustom.bench.models import write_pair
    from paircustom.distributed import check_device
    from paircustom.models.registry import DTYPES
    from paircustom.sampling.pipeline import FlowStyleGuidedPipeline
    from paircustom.training.trainer import PairTrainer, TrainConfig

    check_device(args.device)
    resolution = args.resolution or (32 if args.tiny else 512)
    rank = args.rank or (4 if args.tiny else 16)
    cuda = args.device.startswith("cuda")
    folder = Path(tempfile.mkdtemp(prefix="paircustom-gpu-flux-"))
    meter = Meter(args.device)

    pipe = meter.run("build", lambda: build_pipeline(args, DTYPES[args.dtype]))
    parameters = sum(p.numel() for p in pipe.transformer.parameters())
    content, style = write_pair(folder, resolution)
    config = TrainConfig(
        content,
        style,
        subject="dog",
        style="digital art",
        model=args.model or "shapes",
        output=str(folder / "style.safetensors"),
        rank=rank,
        learning_rate=1e-4,
        max_steps=args.warmup + args.steps + 1,
        style_start_step=0,
        gradient_accumulation=1,
        resolution=resolution,
        device=args.device,
        dtype=args.dtype,
        mixed_precision=args.dtype if cuda and args.dtype != "fp32" else "no",
        gradient_checkpointing=args.gradient_checkpointing,
        use_8bit_adam=args.use_8bit_adam,
        save_dtype="bf16",
        progress=False,
    )
    trainer = meter.run("trainer setup (pair encoded, encoders off the device)", lambda: PairTrainer(config, pipe))
    history = time_training(meter, trainer, args, "training preview (4 steps)")
    finite = all(math.isfinite(x) for step in history for x in step if x is not None)
    path, config = trainer.save(), trainer.config
    trainer.close()

    pipe.to(args.device)
    guided = FlowStyleGuidedPipeline(pipe)
    guided.load_style(path, name="style")
    image = meter.run(
        "generation",
        lambda: guided(
            config.content_prompt,
            styles=["style"],
            height=resolution,
            width=resolution,
            num_inference_steps=args.sample_steps,
            seed=0,
        ).images[0],
    )
    image.save(folder / "generated.png")
    timed = meter.stages["training (timed)"]["seconds"]
    return {
        **run_header(cuda),
        "model": args.model
        or (
            "tiny Flux (in code)"
            if args.tiny
            else f"Flux-shaped {args.blocks[0]}+{args.blocks[1]} blocks from config (random weights)"
        ),
        "denoiser": "transformer",
        "denoiser_parameters": parameters,
        "dtype": args.dtype,
        "mixed_precision": config.mixed_precision,
        "resolution": resolution,
        "rank": rank,
        "gradient_checkpointing": args.gradient_checkpointing,
        "use_8bit_adam": args.use_8bit_adam,
        "training_steps_per_s": round(args.steps / timed, 3),
        "losses_finite": finite,
        "first_losses": history[0],
        "last_losses": history[-1],
        "save_dtype": "bf16",
        "style_file_mb": round(path.stat().st_size / 2**20, 1),
        "sample_steps": args.sample_steps,
        "stages": meter.stages,
        "peak_memory_kind": "GPU allocator peak" if cuda else "process max RSS",
    }


def main(argv=None) -> int:
    return check_main(parse_args(argv), run, "Flux")


if __name__ == "__main__":
    raise SystemExit(main())
