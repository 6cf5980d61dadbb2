"""Calibration of the quality benchmark's leakage metric (``paircustom.bench.leakage``), old and new side by side.

    python -m experiments.leakage_calibration [--model shapes] [--held-out 4] [--seeds 2] [--out FILE]

A metric of leakage must score ~0 on samples that never saw the training pair and ~1 on copies of it.  Rows, all
scored against the trio pair of each style (its content and style image):

    x_base          the base model's own samples (no style)
    f(x_base)       the exact answer
    oracle λ        samples drawn with the style's oracle (``paircustom.bench.oracle``) at style scale λ: a style
                    term that never saw the pair, so every "leak" it gets is a false alarm
    copy (style)    the pair's style image in place of every sample
    copy (content)  the pair's content image in place of every sample

For the new metric and for the one it replaced (foreground intersection over union against the style image only).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from paircustom.bench.leakage import leakage
from paircustom.bench.oracle import OracleGuidedPipeline, load_oracle
from paircustom.bench.quality import QualityConfig, evaluation_set, generate
from paircustom.bench.scores import foreground, iou
from paircustom.bench.sections import bench_style, pair_images

CASES = (
    ("new-words", "inverted"),
    ("new-words", "hue_rotated"),
    ("new-words", "pixelated"),
    ("families", "tinted"),
    ("families", "outlined"),
)


def iou_leakage(samples: np.ndarray, target: np.ndarray, style_image: np.ndarray) -> float:
    """The replaced metric: share of samples whose foreground overlaps the style image's more than f(x_base)'s."""
    mask = foreground(samples)
    return float((iou(mask, foreground(style_image[None])) > iou(mask, foreground(target))).mean())


def rows(config: QualityConfig, guided, sample, work: Path, log) -> list[str]:
    """One markdown row per (style, sample kind)."""
    lines = []
    for section, name in CASES:
        config = replace(config, section=section)
        style = bench_style(section, name)
        target = np.stack([style.apply(image) for image in sample.base])
        pair = pair_images(config, name, 1)  # (content, style)
        oracle = load_oracle(guided, style, config.model, work)
        kinds = {"x_base": sample.base, "f(x_base)": target}
        kinds |= {f"oracle ({style.oracle}) λ {s:g}": generate(guided, sample, config, oracle, s) for s in (3.0, 5.0)}
        kinds |= {
            "copy (style)": np.broadcast_to(pair[1], target.shape),
            "copy (content)": np.broadcast_to(pair[0], target.shape),
        }
        for kind, samples in kinds.items():
            lines.append(
                f"| {section} | {name} | {kind} | {leakage(samples, sample.base, target, pair):.2f} | "
                f"{iou_leakage(samples, target, pair[1]):.2f} |"
            )
            log(lines[-1])
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="shapes")
    parser.add_argument("--held-out", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = QualityConfig(model=args.model, held_out=args.held_out, training=0, seeds=tuple(range(args.seeds)))
    guided = OracleGuidedPipeline.from_pretrained(config.model)
    guided.pipe.set_progress_bar_config(disable=True)
    sample = evaluation_set(config, guided.pipe)
    sample.base = generate(guided, sample, config)
    header = [
        "| section | style | samples | leakage (layout fit, new) | leakage (foreground IoU, replaced) |",
        "|---|---|---|---|---|",
    ]
    print("\n".join(header), flush=True)
    with tempfile.TemporaryDirectory() as work:
        lines = rows(config, guided, sample, Path(work), lambda line: print(line, flush=True))
    if args.out:
        args.out.write_text(
            f"# Leakage calibration\n\n`python -m experiments.leakage_calibration --model "
            f"{args.model} --held-out {args.held_out} --seeds {args.seeds}` "
            f"({len(sample.prompts)} held-out samples per row)\n\n" + "\n".join(header + lines) + "\n"
        )


if __name__ == "__main__":
    main()
