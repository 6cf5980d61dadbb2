"""Peak training memory of one configuration, measured in a fresh process so peaks of configurations never mix.

    python -m paircustom.bench.memory MODEL [--checkpointing] [--steps 2] [--threads N]

prints one JSON line: ``whole`` (whole-process peak: RSS high-water mark on the CPU,
``torch.cuda.max_memory_allocated`` on a GPU), ``baseline`` (after the model, its
adapters and the encoded pair are loaded, before the first step) and ``peak`` (the
highest value during the training steps), all in bytes.  ``peak - baseline`` is what
training itself adds on top of the loaded model.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import resource
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import psutil
import torch


class RssSampler:
    """Highest resident set size seen by a background thread polling every ``interval`` seconds."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, psutil.Process().memory_info().rss)


def _release_freed_memory() -> None:
    """Return freed heap pages to the OS, so the baseline RSS counts live memory only."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:   # not glibc: the baseline may then include some freed memory
        pass


def probe(model: str, checkpointing: bool, steps: int) -> dict:
    """Build ``model``, train ``steps`` steps, return the three memory figures (bytes)."""
    from .models import SPECS, build_pipeline, make_trainer

    cuda = torch.cuda.is_available()
    spec = SPECS[model]
    with tempfile.TemporaryDirectory(prefix="paircustom-mem-") as folder:    # the pair is read at construction
        trainer = make_trainer(spec, build_pipeline(model, "cuda" if cuda else "cpu"), Path(folder), checkpointing)
    _release_freed_memory()
    if cuda:
        torch.cuda.synchronize()
        baseline = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(steps):
            trainer.train_step()
        torch.cuda.synchronize()
        peak = whole = torch.cuda.max_memory_allocated()
    else:
        baseline = psutil.Process().memory_info().rss
        with RssSampler() as sampler:
            for _ in range(steps):
                trainer.train_step()
        peak = sampler.peak
        whole = max(peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)   # ru_maxrss is in KiB
    return {"model": model, "checkpointing": checkpointing, "whole": whole, "baseline": baseline, "peak": peak}


def run_probe(model: str, checkpointing: bool, steps: int, threads: int) -> dict:
    """``probe`` in a child process (so that peaks of configurations never mix); returns its result."""
    command = [sys.executable, "-m", "paircustom.bench.memory", model, "--steps", str(steps), "--threads", str(threads)]
    if checkpointing:
        command.append("--checkpointing")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe {command[3:]} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(json.dumps(probe(args.model, args.checkpointing, args.steps)), flush=True)


if __name__ == "__main__":
    main()
