"""Training time on the shapes model with 1 and 2 torch threads, quiet and busy (a second process keeping one
core loaded), to choose the thread policy of ``paircustom.cli.threads``.

    python -m benchmarks.threads_under_load [--steps 30] [--repeats 2] [--out benchmarks/results/threads_under_load.md]

Each run is a fresh process that trains ``--steps`` steps of the shapes model (its own defaults otherwise) and
reports the time of ``train_pair`` alone (imports and model loading excluded).  "busy" starts a burner process
(a pure-Python loop, one core) before the run and stops it after.  The runs of all settings are interleaved,
``--repeats`` times, and the median of each is reported with the ratios the policy rests on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys, time
import numpy as np
import torch
from PIL import Image
from paircustom.training.trainer import TrainConfig, train_pair
threads, steps, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
rng = np.random.default_rng(0)
pixels = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
Image.fromarray(pixels).save(f"{folder}/c.png")
Image.fromarray(255 - pixels).save(f"{folder}/s.png")
config = TrainConfig(f"{folder}/c.png", f"{folder}/s.png", subject="square", style="inverted", model="shapes",
                     output=f"{folder}/out-{threads}-{time.time_ns()}.safetensors", max_steps=steps,
                     style_start_step=steps // 3, progress=False)
start = time.perf_counter()
train_pair(config)
print(time.perf_counter() - start)
"""
BURNER = "import itertools\nfor i in itertools.count():\n    pass\n"


def one_run(threads: int, busy: bool, steps: int, folder: str) -> float:
    burner = subprocess.Popen([sys.executable, "-c", BURNER]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)  # let the burner take its core
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(threads), str(steps), folder],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "TRANSFORMERS_VERBOSITY": "error"},
        )
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/threads_under_load.md"))
    args = parser.parse_args()
    settings = [(threads, busy) for busy in (False, True) for threads in (1, 2)]
    times: dict[tuple[int, bool], list[float]] = {s: [] for s in settings}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for threads, busy in settings:
                seconds = one_run(threads, busy, args.steps, folder)
                times[(threads, busy)].append(seconds)
                print(
                    f"repeat {repeat}: {threads} thread(s), {'busy' if busy else 'quiet'}: {seconds:.1f} s", flush=True
                )
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(report(args, times, load_before))  # after every run: partial results
    print(report(args, times, load_before))


def report(args, times: dict, load_before) -> str:
    """The markdown table of the runs so far (settings without a run yet show as "-")."""
    median = {s: statistics.median(t) if t else None for s, t in times.items()}
    show = lambda x: "-" if x is None else f"{x:.1f}"  # noqa: E731
    ratio = lambda a, b: "-" if a is None or b is None else f"{a / b:.2f}"  # noqa: E731
    lines = [
        "# Threads under load: shapes-model training, 1 vs 2 torch threads, quiet vs busy",
        "",
        f"`python -m benchmarks.threads_under_load --steps {args.steps} --repeats {args.repeats}`; "
        f"{os.cpu_count()} CPU cores; load average before the runs {load_before[0]:.1f} (other work on the machine "
        "counts as 'quiet' here: only the burner is ours). Seconds of `train_pair` for "
        f"{args.steps} steps, median of the runs done:",
        "",
        "| threads | quiet (s) | busy: a second process loading one core (s) | busy / quiet |",
        "|---|---|---|---|",
    ]
    for threads in (1, 2):
        quiet, busy = median[(threads, False)], median[(threads, True)]
        lines.append(f"| {threads} | {show(quiet)} | {show(busy)} | {ratio(busy, quiet)} |")
    lines += [
        "",
        f"2 threads / 1 thread: quiet {ratio(median[(2, False)], median[(1, False)])}, "
        f"busy {ratio(median[(2, True)], median[(1, True)])}.",
        "",
        "All runs: "
        + "; ".join(
            f"{t} thread(s) {'busy' if b else 'quiet'}: " + (", ".join(f"{x:.1f}" for x in v) or "not run")
            for (t, b), v in times.items()
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
