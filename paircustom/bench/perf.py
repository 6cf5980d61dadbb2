"""Training, sampling and memory benchmark of paircustom against the research code's algorithm.

    python -m paircustom.bench.perf [--quick] [--repeats 3] [--steps 50] [--big-steps 10] [--out benchmarks/results/perf.md]
                                    [--sdxl-shape [--construct-only]] [--flux-shape] [--threads N] [--models small mid sdxl]
                                    [--parts training sampling memory]

What is measured (medians over ``repeats`` timed runs after ``warmup`` untimed ones, both
algorithms / all variants interleaved in the same process, ``torch.set_num_threads`` fixed):

1. training step: ``PairTrainer.train_step`` (one fused UNet pass on [content, style] rows, cached
   latents and prompt embeddings, one AdamW step) vs ``reference.SequentialTrainer`` (VAE encode,
   content pass + step, style pass + step), same model, images, seed and draws; then the mean
   evaluation loss over fixed draws after N steps of each, which must agree within a tolerance.
2. sampling: ``StyleGuidedPipeline`` denoising loop (latents out, VAE decode excluded) for plain CFG,
   1 and 3 styles, batched and one UNet call per term, as a ratio to plain CFG next to the floor set
   by denoiser evaluations, (s·2 + (1-s)·(2+N)) / 2 for style_start_fraction s; then the cheaper settings of
   issue 14 (``style_interval``, ``style_end``, ``style_tolerance``) with the UNet rows they actually
   computed (counted by a hook on the UNet forward) and how far their latents land from full style
   guidance, relative to how far the style moves them from plain CFG.
3. peak training memory with and without gradient checkpointing (``memory``; a process each).
4. the SDXL-shaped UNet: all of the above on a GPU with ``--sdxl-shape``; on a CPU it is only built on
   the meta device and its parameters counted.
5. ``--flux-shape``: the training step (1.) on a Flux transformer of the real widths with 1 double- and 1
   single-stream block (``models.FLUX_TRANSFORMER``), flow matching; runs on a CPU in minutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..config.generate import GENERATE
from ..sampling.pipeline import StyleGuidedPipeline
from . import CHEAP_GUIDANCE
from .memory import run_probe
from .models import SPECS, ModelSpec, build_pipeline, make_trainer, parameter_count, shapes_available, write_random_styles
from .perf_report import NOTES, Row, machine_info, table, verdict
from .reference import AdapterState, SequentialTrainer, per_term

PROMPT = "a photo of a sbu dog"
STYLE_START = GENERATE.style_start_fraction     # fraction of sampling steps with plain CFG (the paper's setting)
TRAIN_SPEEDUP_TARGET = 1.8             # ours vs sequential steps/s, mid-size model
FLOOR_SLACK = 1.10                     # style guidance within 10% of its evaluation floor
CACHED_TARGET = 1.15                   # 1 style with reused style deltas vs plain CFG (issue 14)
# The cheaper settings of issue 14: variant -> (number of styles, StyleGuidedPipeline options).
CACHED = {**{f"1 style, {label}": (1, options) for label, options in CHEAP_GUIDANCE.values()},
          "3 styles, style_interval 4": (3, dict(style_interval=4, style_reuse="hold"))}
CHECKPOINT_MEMORY_TARGET = 0.60        # checkpointing / no checkpointing, training memory above the model


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run."""

    models: tuple[str, ...] = ("small", "mid", "sdxl")   # "small": shapes if present, else tiny; "sdxl": GPU only
    repeats: int = 3                  # timed runs per measurement
    warmup: int = 1                   # untimed runs before them
    steps: int = GENERATE.num_inference_steps   # sampling steps, small models
    big_steps: int = 10               # sampling steps, mid-size / SDXL (compute-bound; same floor at s = 0.2)
    match_steps: int = 20             # training steps before the loss match, small models (big: warmup + repeats)
    eval_draws: int = 4               # fixed (eps, t) draws of the evaluation loss
    loss_tolerance: float = 0.01      # relative; mean evaluation losses of ours vs sequential after N steps
    memory_steps: int = 2             # training steps inside each memory probe
    threads: int = os.cpu_count() or 1
    construct_only: bool = False      # SDXL: build on the meta device, count parameters, run nothing
    parts: tuple[str, ...] = ("training", "sampling", "memory")   # which measurements run
    clock: str = "wall"               # "wall", or "cpu": process CPU time (a shared CPU, 1 thread; not for GPUs)
    device: str = "cuda" if torch.cuda.is_available() else "cpu"


QUICK = BenchConfig(models=("tiny",), repeats=2, steps=5, match_steps=4, eval_draws=2, memory_steps=1)


def _timed(function, device: str, clock: str = "wall") -> float:
    """Seconds of one call: wall clock (synchronising the GPU around it) or, with ``clock="cpu"``, this
    process's CPU time, which other processes on a shared CPU inflate far less (meaningful with 1 thread)."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    now = time.process_time if clock == "cpu" else time.perf_counter
    sync()
    start = now()
    function()
    sync()
    return now() - start


def bench_training(spec: ModelSpec, pipe, config: BenchConfig, folder: Path, big: bool) -> list[Row]:
    """Step time of ours vs the sequential reference (interleaved), then the loss match after N steps."""
    trainer = make_trainer(spec, pipe, folder)
    reference = SequentialTrainer(trainer)
    initial = trainer.evaluate(config.eval_draws)             # (content, style) with all B's zero
    params = trainer.content_params + trainer.style_params
    states = {"ours": AdapterState(params), "seq": AdapterState(params)}
    steps = {"ours": trainer.train_step, "seq": reference.train_step}
    n = config.warmup + config.repeats if big else max(config.match_steps, config.warmup + config.repeats)
    times = {"ours": [], "seq": []}
    for _ in range(n):
        for name in ("ours", "seq"):
            states[name].activate()
            times[name].append(_timed(steps[name], config.device, config.clock))
    evaluations = {}                                          # the same fixed draws, each algorithm's adapters
    for name in ("ours", "seq"):
        states[name].activate()
        evaluations[name] = trainer.evaluate(config.eval_draws)
    trainer.close()

    ours, seq = (statistics.median(times[k][config.warmup:]) for k in ("ours", "seq"))
    speedup = seq / ours
    rows = [Row("training step", spec.label, "ours: fused pass, cached latents", f"{ours:.3f} s", "1.00x"),
            Row("training step", spec.label, "sequential reference (research algorithm)", f"{seq:.3f} s",
                f"{speedup:.2f}x ours faster", f">= {TRAIN_SPEEDUP_TARGET}x" if big else "",
                verdict(speedup >= TRAIN_SPEEDUP_TARGET) if big else "")]
    for i, loss in enumerate(("content", "style")):
        a, b = evaluations["ours"][i], evaluations["seq"][i]
        difference = abs(a - b) / abs(b)
        rows.append(Row(f"loss match after {n} steps", spec.label,
                        f"eval {loss} loss: start {initial[i]:.5f} -> ours {a:.5f} / seq {b:.5f}",
                        f"{difference:.3%} apart", "", f"<= {config.loss_tolerance:.0%}",
                        verdict(difference <= config.loss_tolerance)))
    return rows


def _floor(styles: int, steps: int) -> float:
    """Denoiser evaluations of style guidance relative to plain CFG, with the pipeline's own rounding."""
    plain = round(STYLE_START * steps)
    return (2 * steps + styles * (steps - plain)) / (2 * steps)


def bench_sampling(spec: ModelSpec, pipe, config: BenchConfig, folder: Path, steps: int) -> list[Row]:
    """Denoising-loop time of plain CFG and style guidance (1 and 3 styles, batched or one call per term), and of
    the cheaper settings in ``CACHED``: UNet rows computed and deviation from full style guidance."""
    guided = StyleGuidedPipeline(pipe)
    names = [guided.load_style(path) for path in write_random_styles(pipe, folder, spec.rank, 3)]
    variants = {"plain CFG": ([], True, {}), "1 style": (names[:1], True, {}), "3 styles": (names, True, {}),
                "1 style, one call per term": (names[:1], False, {}), "3 styles, one call per term": (names, False, {}),
                **{variant: (names[:count], True, options) for variant, (count, options) in CACHED.items()}}

    pipelines = {True: guided, False: per_term(guided)}         # batched: one UNet call per step, or per term

    def sample(styles, batched, options, n):
        return pipelines[batched](PROMPT, styles=styles, style_start_fraction=STYLE_START, num_inference_steps=n,
                                  height=spec.resolution, width=spec.resolution, seed=0, output_type="latent",
                                  **options).images

    for styles, batched, options in variants.values():          # warm-up: every code path once, untimed
        for _ in range(config.warmup):
            sample(styles, batched, options, 2)
    rows_of, latents = {}, {}                                    # UNet rows per sample; its latents (same seed)
    for variant, (styles, batched, options) in variants.items():
        counted = []
        hook = pipe.unet.register_forward_pre_hook(lambda module, args: counted.append(len(args[0])))
        try:
            latents[variant] = sample(styles, batched, options, steps)
        finally:
            hook.remove()
        rows_of[variant] = sum(counted)
    times = {variant: [] for variant in variants}
    for _ in range(config.repeats):
        for variant, (styles, batched, options) in variants.items():
            times[variant].append(_timed(lambda: sample(styles, batched, options, steps), config.device,
                                         config.clock))
    median = {variant: statistics.median(values) for variant, values in times.items()}
    rows = []
    for variant, (styles, batched, options) in variants.items():
        ratio = median[variant] / median["plain CFG"]
        floor = _floor(len(styles), steps)
        row = Row(f"sampling, {steps} steps", spec.label, variant, f"{median[variant]:.3f} s", f"{ratio:.2f}x CFG",
                  rows=f"{rows_of[variant]} ({rows_of[variant] / rows_of['plain CFG']:.2f}x CFG)")
        if options:
            full = latents[variant.split(",")[0]]
            moved = (full - latents["plain CFG"]).abs().mean()
            row = replace(row, deviation=f"{((latents[variant] - full).abs().mean() / moved).item():.3f}")
            if len(styles) == 1:
                row = replace(row, target=f"<= {CACHED_TARGET:.2f}x", result=verdict(ratio <= CACHED_TARGET))
        elif styles and batched:
            row = replace(row, target=f"floor {floor:.2f}x, <= {FLOOR_SLACK * floor:.2f}x",
                          result=verdict(ratio <= FLOOR_SLACK * floor))
        elif styles:
            batched_time = median[variant.split(",")[0]]
            row = replace(row, target=f"batched ({batched_time:.3f} s) no slower",
                          result=verdict(batched_time <= median[variant]))
        rows.append(row)
    return rows


def bench_memory(spec: ModelSpec, config: BenchConfig, big: bool) -> list[Row]:
    """Peak training memory without and with gradient checkpointing (one child process each)."""
    gib = 2 ** 30
    probes = [run_probe(spec.name, checkpointing, config.memory_steps, config.threads) for checkpointing in (False, True)]
    above = [p["peak"] - p["baseline"] for p in probes]
    rows = []
    for checkpointing, probe, extra in zip((False, True), probes, above):
        ratio = extra / above[0] if above[0] > 0 else float("nan")
        row = Row("peak training memory", spec.label, "gradient checkpointing" if checkpointing else "no checkpointing",
                  f"whole process {probe['whole'] / gib:.2f} GiB; above loaded model {extra / gib:.3f} GiB "
                  f"(model loaded {probe['baseline'] / gib:.2f} GiB)", f"{ratio:.2f}x of no ckpt (above model)")
        if checkpointing and big:
            row = replace(row, target=f"<= {CHECKPOINT_MEMORY_TARGET:.2f}x", result=verdict(ratio <= CHECKPOINT_MEMORY_TARGET))
        rows.append(row)
    return rows


def run(config: BenchConfig, log=print) -> list[Row]:
    """Every measurement of every model in ``config``; returns the table rows."""
    rows: list[Row] = []
    for model in config.models:
        stand_in = model == "small" and not shapes_available()
        if model == "small":
            model = "tiny" if stand_in else "shapes"
        spec, big = SPECS[model], model in ("mid", "sdxl", "flux")
        if stand_in:
            log("note: the embedded shapes model is absent; the tiny in-code SD model stands in for it")
            spec = replace(spec, label=spec.label + ", shapes model absent")
        if model == "sdxl" and (config.construct_only or config.device != "cuda"):
            count = parameter_count("sdxl")
            rows.append(Row("construction only", spec.label, "built on the meta device, nothing run",
                            f"{count / 1e9:.3f} B parameters", "", "timings need --sdxl-shape on a GPU"))
            continue
        log(f"[{time.strftime('%H:%M:%S')}] {spec.label}: building")
        pipe = build_pipeline(model, config.device)
        with tempfile.TemporaryDirectory(prefix=f"paircustom-bench-{model}-") as folder:
            if "training" in config.parts:
                log(f"[{time.strftime('%H:%M:%S')}] {spec.label}: training")
                rows += bench_training(spec, pipe, config, Path(folder), big)
            if "sampling" in config.parts:
                log(f"[{time.strftime('%H:%M:%S')}] {spec.label}: sampling")
                rows += bench_sampling(spec, pipe, config, Path(folder), config.big_steps if big else config.steps)
        del pipe
        if "memory" in config.parts:
            log(f"[{time.strftime('%H:%M:%S')}] {spec.label}: memory")
            rows += bench_memory(spec, config, big)
    return rows


def parse_args(argv=None) -> tuple[BenchConfig, str | None, str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, few repeats and steps (for the tests)")
    parser.add_argument("--repeats", type=int, help="timed runs per measurement")
    parser.add_argument("--steps", type=int, help="sampling steps (small models)")
    parser.add_argument("--big-steps", type=int, help="sampling steps (mid-size / SDXL)")
    parser.add_argument("--threads", type=int, help="torch threads (default: os.cpu_count())")
    parser.add_argument("--models", nargs="+", choices=("small", "tiny", "shapes", "mid", "sdxl"))
    parser.add_argument("--parts", nargs="+", choices=("training", "sampling", "memory"),
                        help="measurements to run (default: all)")
    parser.add_argument("--clock", choices=("wall", "cpu"), help="wall time (default) or this process's CPU time, "
                        "for a CPU shared with other work (use with --threads 1)")
    parser.add_argument("--sdxl-shape", action="store_true", help="the SDXL-shaped UNet (GPU; on a CPU: construct only)")
    parser.add_argument("--construct-only", action="store_true", help="with --sdxl-shape: only build and count it")
    parser.add_argument("--flux-shape", action="store_true", help="training only, on a transformer of Flux's real "
                        "widths with 1 + 1 blocks (CPU or GPU; with --quick the tiny in-code Flux)")
    parser.add_argument("--out", help="also write the table and machine info to this Markdown file")
    parser.add_argument("--note", default="", help="a line added to the results file")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else BenchConfig()
    overrides = {k: v for k, v in dict(repeats=args.repeats, steps=args.steps, big_steps=args.big_steps,
                                       threads=args.threads, models=args.models and tuple(args.models),
                                       parts=args.parts and tuple(args.parts), clock=args.clock).items()
                 if v is not None}
    if args.sdxl_shape:
        overrides["models"] = ("sdxl",)
    if args.flux_shape:        # the sampling and memory parts are written for UNets
        overrides.update(models=("flux-tiny",) if args.quick else ("flux",), parts=("training",))
    return replace(config, construct_only=args.construct_only, **overrides), args.out, args.note


def main(argv=None) -> list[Row]:
    config, out, note = parse_args(argv)
    torch.set_num_threads(config.threads)
    load_before = os.getloadavg()
    print(f"torch.set_num_threads({config.threads}); device {config.device}", flush=True)
    rows = run(config, log=lambda message: print(message, flush=True))
    text = table(rows)
    print(text, flush=True)
    if out:
        command = "python -m paircustom.bench.perf " + " ".join(sys.argv[1:] if argv is None else argv)
        body = (f"# Performance benchmark\n\nCommand: `{command}`\n\n{machine_info(config, load_before)}"
                + (f"- note: {note}\n" if note else "") + f"\n{text}\n\n{NOTES}")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(body)
    return rows


if __name__ == "__main__":
    main()
