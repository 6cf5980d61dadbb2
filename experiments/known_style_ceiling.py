"""How far does text-conditioned styling get on the shapes model when the style is one it already knows?

    python -m experiments.known_style_ceiling [--model shapes] [--quick] [--threads 1] [--out FILE]

The quality benchmark (``paircustom.bench.quality``) scores a pair-trained style against the exact answer
f(x_base). This script asks what the same score gives for styles that need no learning: the base model's known
styles (named in base training, ``paircustom.shapes.styles.KNOWN_STYLES``). An "oracle" style file, every B = 0
and the known style's words as its suffix, turns style guidance's term into

    e_style(c + " in <known> style") - e0(c) = e0(c + " in <known> style") - e0(c),

which is what a pair-trained style LoRA would add had it learned the style exactly as the base model knows it.
Generation rows: prompting with the style words (the base model under the style prompt, no style term) and style
guidance with the oracle at the quality benchmark's style scales; the same captions, seeds, steps, CFG, style
start and scores (pooled fidelity, structure) as that benchmark. A known style that scores well under 0.6 here
says the benchmark's bar asks for more than drawing the style: drawing it on x_base's own layout.

Stylising rows: the stylising benchmark's setting (``paircustom.bench.stylize``: its rendered scenes x, scored
against f(x)), each oracle at the default style scale and strength, with both methods and with negative-prompt
inversion: the same ceiling for stylising an existing image.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from paircustom.bench.quality import QualityConfig, evaluation_set, generate
from paircustom.bench.scores import analyzer_reads, fidelity_and_structure
from paircustom.bench.stylize import QUICK as STYLIZE_QUICK
from paircustom.bench.stylize import StylizeBenchConfig, edit_scenes, scenes
from paircustom.config.generate import GENERATE
from paircustom.sampling.pipeline import StyleGuidedPipeline
from paircustom.shapes.examples import EXAMPLES
from paircustom.shapes.styles import KNOWN_STYLES, Style, styled_caption
from paircustom.shapes.world import render
from paircustom.training.trainer import PairTrainer, TrainConfig

QUICK = dict(held_out=1, training=1, seeds=(0,), steps=4, style_scales=(3.0,))


def oracle_style_file(model: str, style: Style, folder: Path) -> Path:
    """A style file with every B = 0 whose suffix names ``style``: style guidance with it adds the base model's
    own e0(c + suffix) - e0(c). Written by the trainer before any step, so its layout is a real style file's."""
    example = EXAMPLES["trio"]
    content = render(example.scene)
    paths = folder / f"{style.name}-content.png", folder / f"{style.name}-style.png"
    for path, image in zip(paths, (content, style.apply(content))):
        Image.fromarray(image).save(path)
    trainer = PairTrainer(
        TrainConfig(
            str(paths[0]),
            str(paths[1]),
            subject=example.subject,
            style=style.prompt,
            model=model,
            output=str(folder / f"{style.name}.safetensors"),
            progress=False,
        )
    )
    try:
        return trainer.save()
    finally:
        trainer.close()


def score_rows(
    guided: StyleGuidedPipeline, config: QualityConfig, oracles: dict[str, str], readable: dict[str, bool], log=print
) -> list[dict]:
    """Fidelity (held-out and training captions) and structure of every known style, prompted and guided."""
    sample = evaluation_set(config, guided.pipe)
    sample.base = generate(guided, sample, config)
    held_out = np.array([split == "held-out" for split in sample.splits])
    rows = []
    for style in KNOWN_STYLES.values():
        target = np.stack([style.apply(image) for image in sample.base])  # f(x_base)
        name = oracles[style.name]
        prompted = replace(sample, prompts=[styled_caption(p, style) for p in sample.prompts])
        runs = [("prompt", 0.0, generate(guided, prompted, config))]
        runs += [
            ("style guidance", scale, generate(guided, sample, config, name, scale)) for scale in config.style_scales
        ]
        for how, scale, styled in runs:
            row = dict(style=style.name, how=how, scale=scale)
            for split, chosen in (("held-out", held_out), ("training", ~held_out)):
                row[split], row[f"{split} structure"] = fidelity_and_structure(
                    styled[chosen], sample.base[chosen], target[chosen], readable[style.name]
                )
            rows.append(row)
            log(format_row(row))
    return rows


def stylize_rows(
    guided: StyleGuidedPipeline, oracles: dict[str, str], readable: dict[str, bool], quick: bool, log=print
) -> list[dict]:
    """Fidelity and structure of stylising the stylising benchmark's scenes with each oracle, both methods."""
    quick_size = dict(scenes=STYLIZE_QUICK["scenes"], steps=STYLIZE_QUICK["steps"])
    config = replace(StylizeBenchConfig(), **(quick_size if quick else {}))
    chosen = scenes(config)
    images = np.stack([render(scene) for scene in chosen])  # (N, 64, 64, 3)
    rows = []
    variants = [(method, False) for method in config.methods] + [("inversion", True)]  # (method, n = c)
    for style in KNOWN_STYLES.values():
        targets = np.stack([style.apply(image) for image in images])
        for method, cancel_cfg in variants:
            styled = edit_scenes(
                guided,
                replace(config, negative_prompt_inversion=cancel_cfg),
                chosen,
                images,
                {oracles[style.name]: config.style_scale},
                method,
                GENERATE.strength,
            )
            fidelity, structure = fidelity_and_structure(styled, images, targets, readable[style.name])
            label = f"{method} (negative-prompt)" if cancel_cfg else method
            rows.append(dict(style=style.name, method=label, fidelity=fidelity, structure=structure))
            log(format_stylize_row(rows[-1]))
    return rows


def format_stylize_row(row: dict) -> str:
    structure = "n/a" if row["structure"] is None else f"{row['structure']:.2f}"
    return f"| {row['style']} | {row['method']} | {row['fidelity']:+.2f} | {structure} |"


def format_row(row: dict) -> str:
    structure = row["held-out structure"]
    return (
        f"| {row['style']} | {row['how']} | {row['scale']:g} | {row['held-out']:+.2f} | {row['training']:+.2f} "
        f"| {'n/a' if structure is None else f'{structure:.2f}'} |"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="shapes", help="a shapes-world model (default: the embedded one)")
    parser.add_argument("--quick", action="store_true", help="1 held-out + 1 training caption, 1 seed, 4 steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = replace(QualityConfig(model=args.model), **(QUICK if args.quick else {}))
    started = time.time()
    guided = StyleGuidedPipeline.from_pretrained(config.model)
    guided.pipe.set_progress_bar_config(disable=True)
    header = [
        "| known style | how | scale | fidelity held-out | fidelity training | structure held-out |",
        "|---|---|---|---|---|---|",
    ]
    stylize_header = [
        f"| known style | stylize method (strength {GENERATE.strength:g}, style scale "
        f"{GENERATE.style_scale:g}) | fidelity | structure |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as folder:
        oracles = {
            style.name: guided.load_style(oracle_style_file(config.model, style, Path(folder)), name=style.name)
            for style in KNOWN_STYLES.values()
        }
    readable = {style.name: analyzer_reads(style) >= config.readable_threshold for style in KNOWN_STYLES.values()}
    print("\n".join(header), flush=True)
    rows = score_rows(guided, config, oracles, readable)
    print("\n" + "\n".join(stylize_header), flush=True)
    styled = stylize_rows(guided, oracles, readable, args.quick)
    if args.out:
        text = (
            f"`python -m experiments.known_style_ceiling{' --quick' if args.quick else ''}` "
            f"({(time.time() - started) / 60:.1f} min). Generation: {len(config.seeds)} seeds per caption, "
            f"{config.steps} DDIM steps, CFG {config.guidance_scale:g}, style start "
            f"{config.style_start_fraction:g}; pooled fidelity against f(x_base) as in the quality benchmark. "
            f"Stylising: the stylising benchmark's rendered scenes, scored against f(x).\n\n"
        )
        tables = (
            "\n".join(header + [format_row(row) for row in rows])
            + "\n\n"
            + "\n".join(stylize_header + [format_stylize_row(row) for row in styled])
        )
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(text + tables + "\n")
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
