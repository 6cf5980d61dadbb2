"""Seconds per training step of ``paircustom train`` against the research code's own SDXL script, in one run.

    git clone https://github.com/PairCustomization/PairCustomization /tmp/research
    python -m benchmarks.research_script --research-repo /tmp/research [--python PYTHON] [--steps 12] [--repeats 2]

The research script needs torchvision (``--python``: an interpreter that has it; ours runs under the same one, so
both use one torch). Nothing is downloaded: the model is an SDXL-shaped pipeline built here with random weights and
saved to a temporary folder, which both programs load as a diffusers folder:

- UNet: SDXL's layout and widths (320, 640, 1280 channels, no attention at the top level, linear projections,
  text-time embedding, 2048-wide cross attention) with one transformer layer per attention block (SDXL: 1, 2 and
  10), about 640 M parameters. The research script needs SDXL's widths: its bases are made for 640, 1280 and 2048;
- SD's VAE configuration at 256 px (32 x 32 latents), tiny 768- and 1280-wide text encoders.

Both train one (content, style) pair at 256 px, rank 64, one draw per step (no gradient accumulation), fp32, with
the style loss from step 0, for ``--steps`` optimizer steps. A step's time is the gap between consecutive updates
of the program's own progress bar (tqdm, patched by the child process to record ``time.perf_counter()``); the
first ``--skip`` gaps are dropped, the rest give a median. The programs alternate (ours, script, ours, ...), each
pinned to one thread. The research code is run, not copied: ``--research-repo`` is a checkout of it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = "training_scripts/train_pair_customization_lora_sdxl.py"
# stabilityai/stable-diffusion-xl-base-1.0's UNet configuration, one transformer layer per block (not 1, 2, 10).
SDXL_SHALLOW_UNET = dict(
    sample_size=32,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 1, 1),
    attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
RESOLUTION, RANK, LEARNING_RATE = 256, 64, 1e-5
SUBJECT, STYLE = "dog", "digital art"


def build_model(folder: Path) -> int:
    """Save the SDXL-shaped pipeline to ``folder``; return the UNet's parameter count."""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline, UNet2DConditionModel

    from paircustom.bench.models import SD_VAE
    from paircustom.tiny.unet import sd_scheduler, tiny_text_encoder, write_clip_tokenizer

    tokenizer = write_clip_tokenizer(folder / "tokenizer")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SDXL_SHALLOW_UNET)
    pipe = StableDiffusionXLPipeline(
        vae=AutoencoderKL(**SD_VAE, sample_size=RESOLUTION, scaling_factor=0.13025),
        text_encoder=tiny_text_encoder(len(tokenizer), 768),
        tokenizer=tokenizer,
        text_encoder_2=tiny_text_encoder(len(tokenizer), 1280, projection=1280, seed=1),
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=sd_scheduler(),
    )
    pipe.save_pretrained(folder / "model")
    return sum(p.numel() for p in unet.parameters())


def write_pair(folder: Path) -> tuple[Path, Path]:
    """The pair, each image alone in its folder (the research script reads every file of a folder)."""
    from paircustom.bench.models import write_pair as bench_pair

    content, style = bench_pair(folder / "pair", RESOLUTION)
    for name, path in (("content", content), ("style", style)):
        (folder / name).mkdir()
        os.replace(path, folder / name / "image.png")
    return folder / "content", folder / "style"


def as_argv(flags: dict) -> list[str]:
    """``{"--name": value}`` -> ``["--name", "value", ...]`` (a value of True: the flag alone)."""
    argv = []
    for name, value in flags.items():
        argv += [name] if value is True else [name, str(value)]
    return argv


def ours_argv(model: Path, pair: tuple[Path, Path], out: Path, steps: int) -> list[str]:
    flags = {
        "--model": model,
        "--subject": SUBJECT,
        "--style": STYLE,
        "--output": out / "style.safetensors",
        "--rank": RANK,
        "--lr": LEARNING_RATE,
        "--steps": steps,
        "--style-start-step": 0,
        "--accumulation": 1,
        "--resolution": RESOLUTION,
        "--seed": 0,
        "--threads": 1,
        "--overwrite": True,
    }
    return ["train", str(pair[0] / "image.png"), str(pair[1] / "image.png"), *as_argv(flags)]


def script_argv(model: Path, pair: tuple[Path, Path], out: Path, steps: int) -> list[str]:
    """The flags of the research repository's ``train_pair_customization_lora_sdxl.sh``, except size, steps,
    accumulation, precision and the style start (and no checkpoint before the end, no validation images)."""
    flags = {
        "--pretrained_model_name_or_path": model,
        "--instance_content_data_dir": pair[0],
        "--instance_styled_data_dir": pair[1],
        "--output_dir": out,
        "--mixed_precision": "no",
        "--instance_prompt_subject": f"A photo of a sbu {SUBJECT}",
        "--instance_prompt_style": f"in {STYLE} style",
        "--resolution": RESOLUTION,
        "--train_batch_size": 1,
        "--gradient_accumulation_steps": 1,
        "--learning_rate": LEARNING_RATE,
        "--content_rank": RANK,
        "--style_rank": RANK,
        "--report_to": "tensorboard",
        "--lr_scheduler": "constant",
        "--lr_warmup_steps": 0,
        "--max_train_steps": steps,
        "--checkpointing_steps": 10 * steps,
        "--style_weight_start_training_step": 0,
        "--seed": 0,
        "--fix_down_weight_orthogonal": True,
    }
    return as_argv(flags)


def child(kind: str, record: Path, argv: list[str], repo: str) -> None:
    """Run one program in this process with tqdm's ``update`` timed; write to ``record`` the process's start and
    the times of the longest progress bar (its creation, then each update)."""
    start = time.perf_counter()
    import torch
    import tqdm.auto

    torch.set_num_threads(1)
    bars: list[list[float]] = []

    class TimedBar(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.times = [time.perf_counter()]
            bars.append(self.times)

        def update(self, n=1):
            self.times.append(time.perf_counter())
            return super().update(n)

    tqdm.auto.tqdm = TimedBar
    try:
        if kind == "ours":
            from paircustom.cli.main import main

            main(argv)
        else:
            import runpy

            # its ``modules`` package imports the vendored ReNoise code as the top-level package ``src``
            sys.path[:0] = [repo, str(Path(repo) / "modules" / "ReNoise_Inversion_Modules")]
            sys.argv = [SCRIPT, *argv]
            runpy.run_path(str(Path(repo) / SCRIPT), run_name="__main__")
    finally:
        record.write_text(json.dumps({"start": start, "times": max(bars, key=len) if bars else []}))


def timed_run(kind: str, python: str, argv: list[str], repo: str, folder: Path, skip: int) -> tuple[float, list]:
    """Seconds from the child's start to the end of its first step, and of each optimizer step after the first
    ``skip``, from a child process on one thread."""
    record = folder / f"{kind}-times.json"
    command = [
        python,
        "-m",
        "benchmarks.research_script",
        "--child",
        kind,
        "--record",
        str(record),
        "--research-repo",
        repo,
        "--",
        *argv,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    found = json.loads(record.read_text())
    times = found["times"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    return times[1] - found["start"], gaps[skip:]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--research-repo", required=True, help="a checkout of PairCustomization/PairCustomization")
    parser.add_argument("--python", default=sys.executable, help="interpreter for both programs (needs torchvision)")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run")
    parser.add_argument("--skip", type=int, default=2, help="first steps left out of the median (warm-up)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each program, alternating")
    parser.add_argument("--out", help="also write the table as markdown here")
    parser.add_argument("--child", choices=("ours", "script"), help=argparse.SUPPRESS)
    parser.add_argument("--record", help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, Path(args.record), args.rest, args.research_repo)
    if not (Path(args.research_repo) / SCRIPT).is_file():
        raise SystemExit(f"no {SCRIPT} under {args.research_repo}: give a checkout of the research repository")
    with tempfile.TemporaryDirectory(prefix="research-script-") as scratch:
        result = measure(args, Path(scratch))
    table = report(result, args)
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    return result


def measure(args, folder: Path) -> dict:
    """Build the model, run both programs ``args.repeats`` times alternating; medians of the step times and of
    the start-up times (process start to the end of the first step)."""
    parameters = build_model(folder)
    pair = write_pair(folder)
    steps, startup = {"ours": [], "script": []}, {"ours": [], "script": []}
    for repeat in range(args.repeats):
        for kind, make in (("ours", ours_argv), ("script", script_argv)):
            out = folder / f"{kind}-{repeat}"
            out.mkdir()
            argv = make(folder / "model", pair, out, args.steps)
            first, gaps = timed_run(kind, args.python, argv, args.research_repo, folder, args.skip)
            print(
                f"{kind} run {repeat + 1}: start-up {first:.1f} s, median {statistics.median(gaps):.3f} s/step "
                f"over {len(gaps)} steps",
                flush=True,
            )
            steps[kind] += gaps
            startup[kind].append(first)
    result = {kind: statistics.median(values) for kind, values in steps.items()}
    result["startup"] = {kind: statistics.median(values) for kind, values in startup.items()}
    result["ratio"] = result["script"] / result["ours"]
    result["unet_parameters"] = parameters
    return result


def report(result: dict, args) -> str:
    version = subprocess.run(
        [args.python, "-c", "import torch, diffusers; print(torch.__version__, diffusers.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.split()
    ours, script = result["startup"]["ours"], result["startup"]["script"]
    return "\n".join(
        [
            "# Training speed: `paircustom train` against the research code's SDXL script",
            "",
            f"Command: `python -m benchmarks.research_script --research-repo CHECKOUT --steps {args.steps} "
            f"--skip {args.skip} --repeats {args.repeats}`",
            "",
            f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            f"torch {version[0]}, diffusers {version[1]}; one thread; {os.cpu_count()} CPU cores; "
            f"1-minute load average at the end {os.getloadavg()[0]:.2f}",
            f"- model: SDXL's UNet widths, one transformer layer per block ({result['unet_parameters'] / 1e6:.0f} M "
            "UNet parameters), 256 px, rank 64, one draw per step, style loss from step 0",
            "- s/step: median gap between progress-bar updates, first steps left out; start-up: from the process's "
            "start to the end of its first step (imports, loading, adapters, first step)",
            "",
            "| program | median s/step | ratio | start-up |",
            "|---|---|---|---|",
            f"| `paircustom train` | {result['ours']:.3f} | 1.00x | {ours:.1f} s |",
            f"| research script | {result['script']:.3f} | {result['ratio']:.2f}x ours faster | {script:.1f} s |",
            "",
        ]
    )


if __name__ == "__main__":
    main()
