"""Step time of 2-process training (CPU, gloo, the embedded shapes model): what leaving unused adapters out of DDP
saves.

    python -m benchmarks.ddp_step_time [--steps 10] [--rounds 2]

Two ways to train under DDP while the style B's are unused (the style warm-up):
  find_unused  every adapter in DDP with find_unused_parameters=True (what paircustom did before): DDP walks the
               autograd graph after every forward to find parameters without a gradient, warm-up or not;
  exclude      (paircustom now) unused adapters are frozen and left out of DDP, which is rebuilt once when the
               style loss starts; find_unused_parameters=False throughout.
Each variant trains --steps warm-up steps and --steps style steps, in --rounds alternating launches; we report the
median step time per phase (the first step of each phase, DDP's bucket rebuild and our re-wrap, left out).
Results go to benchmarks/results/ddp-step-time.{md,json}.
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def worker(args) -> None:
    from paircustom.training.trainer import PairTrainer, TrainConfig

    examples = ROOT / "paircustom" / "shapes" / "examples"
    if args.variant == "find_unused":  # the way before: every adapter stays in DDP, which searches for unused ones
        import accelerate

        search = accelerate.DistributedDataParallelKwargs(find_unused_parameters=True)
        accelerator = accelerate.Accelerator  # paircustom's setup builds its Accelerator without DDP options
        accelerate.Accelerator = lambda **options: accelerator(**options, kwargs_handlers=[search])
        PairTrainer._train_only = lambda self, kinds: None
    with tempfile.TemporaryDirectory() as folder:
        trainer = PairTrainer(
            TrainConfig(
                str(examples / "red_circle_content.png"),
                str(examples / "red_circle_inverted.png"),
                subject="circle",
                style="inverted",
                output=str(Path(folder) / "x.safetensors"),
                max_steps=2 * args.steps,
                style_start_step=args.steps,
                gradient_accumulation=1,
                progress=False,
                device="cpu",
            )
        )
        times = []
        for _ in range(2 * args.steps):
            start = time.perf_counter()
            trainer.train_step()
            times.append(time.perf_counter() - start)
        trainer.close()
    if trainer.accelerator.is_main_process:
        Path(args.out).write_text(json.dumps(times))


def launch(variant: str, steps: int, out: Path) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        __file__,
        "--worker",
        "--variant",
        variant,
        "--steps",
        str(steps),
        "--out",
        str(out),
    ]
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per phase (warm-up, style)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating launches per variant")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=("find_unused", "exclude"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    runs = {"find_unused": [], "exclude": []}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for variant in runs:
                runs[variant].append(launch(variant, args.steps, Path(folder) / f"{variant}-{round_}.json"))
    n = args.steps
    phases = {
        variant: {
            "warm-up": statistics.median(t for times in runs[variant] for t in times[1:n]),
            "style": statistics.median(t for times in runs[variant] for t in times[n + 1 :]),
        }
        for variant in runs
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ddp-step-time.json").write_text(
        json.dumps({"steps_per_phase": n, "rounds": args.rounds, "step_times_s": runs, "medians_s": phases}, indent=1)
    )
    lines = [
        "# DDP step time: unused adapters left out vs find_unused_parameters=True",
        "",
        f"`python -m benchmarks.ddp_step_time --steps {n} --rounds {args.rounds}`: 2 processes (torchrun, gloo) "
        f"on {os.cpu_count()} CPU cores, 1 torch thread each, embedded shapes model (64 px, rank 8, "
        "accumulation 1); medians over the rounds, first step of each phase left out.",
        "",
        "| variant | warm-up step (style B's unused) | step with the style loss |",
        "|---|---|---|",
    ]
    for variant, label in (
        ("find_unused", "all adapters in DDP, find_unused_parameters=True (before)"),
        ("exclude", "unused adapters left out of DDP, rebuilt at style_start_step (now)"),
    ):
        lines.append(
            f"| {label} | {phases[variant]['warm-up'] * 1000:.0f} ms | {phases[variant]['style'] * 1000:.0f} ms |"
        )
    (RESULTS / "ddp-step-time.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
