"""The results of ``perf``: one ``Row`` per measurement, the Markdown table, the notes on what each column
means and the machine it ran on."""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass

import torch

from ..config.generate import GENERATE


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    measurement: str
    model: str
    variant: str
    median: str
    ratio: str = ""
    target: str = ""
    result: str = ""          # "met", "MISSED" or "" (no target)
    rows: str = ""            # sampling: UNet rows computed per sample (batch rows summed over the calls)
    deviation: str = ""       # cheaper sampling: mean |z - z_full| / mean |z_full - z_CFG| of the final latents


def verdict(ok: bool) -> str:
    """A row's result: its target met or missed."""
    return "met" if ok else "MISSED"


NOTES = """\
- training step: median wall time of one optimizer step (gradient_accumulation 1, style loss on from step 0);
  "x ours faster" = sequential seconds per step / ours = ratio of steps/s. The loss match trains both from the
  same zero adapters with the same seed and draws, then compares the mean evaluation loss over fixed draws.
- sampling: median time (wall, or process CPU with --clock cpu) of the denoising loop (prompt encoding included,
  VAE decode excluded); the floor is
  the number of denoiser row-evaluations relative to plain CFG, (s*2 + (1-s)*(2+N))/2 at style_start_fraction s (the
  default style scale and style_start_fraction of GenerateConfig).
  "UNet rows": batch rows the UNet computed for one sample, counted by a hook on its forward (plain CFG: 2 per
  step). The cheaper settings (issue 14) reuse the style deltas between recompute steps, where only the 2 CFG rows
  run; their "deviation from full" is mean |z - z_full| / mean |z_full - z_CFG| over the final latents of the
  same seed (z_full: full style guidance with as many styles; 0: identical, 1: as far from it as plain CFG is).
  The styles here are random LoRAs, so this measures how closely the shortcut follows full guidance, not quality.
- peak training memory: each configuration in its own process. "whole process" = RSS high-water mark of the
  process (model building included); "above loaded model" = highest RSS during the training steps minus the RSS
  once the model, adapters and encoded pair are loaded (GPU: torch.cuda.max_memory_allocated instead of RSS).
"""


def machine_info(config, load_before: tuple[float, ...]) -> str:
    """Markdown bullet list: date, machine, versions, threads, run settings (``config``, a ``perf.BenchConfig``),
    CPU load around the run."""
    gpu = torch.cuda.get_device_name() if config.device == "cuda" else "none"
    return (f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}\n"
            f"- machine: {platform.processor() or platform.machine()}, os.cpu_count() = {os.cpu_count()}, GPU: {gpu}\n"
            f"- torch {torch.__version__}, torch.set_num_threads({config.threads}), python {platform.python_version()}\n"
            f"- clock: {'process CPU time (time.process_time)' if config.clock == 'cpu' else 'wall time'}\n"
            f"- medians of {config.repeats} timed runs after {config.warmup} warm-up run(s); sampling steps: "
            f"{config.steps} (small models), {config.big_steps} (mid-size / SDXL), style_start_fraction {GENERATE.style_start_fraction}\n"
            f"- 1-minute load average before / after the run: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
            f"(about {config.threads:.0f} when nothing else runs)\n")


def table(rows: list[Row]) -> str:
    header = ("measurement", "model", "variant", "median", "ratio", "UNet rows", "deviation from full",
              "target / floor", "result")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join((r.measurement, r.model, r.variant, r.median, r.ratio, r.rows, r.deviation,
                                 r.target, r.result)) + " |" for r in rows]
    return "\n".join(lines)


