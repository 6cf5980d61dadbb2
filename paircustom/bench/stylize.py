"""Stylising benchmark on the embedded shapes model: how well does ``stylize`` apply a learned style to a photo?

    python -m paircustom.bench.stylize [--quick] [--model shapes] [--out benchmarks/results] [--work DIR]
                                       [--negative-prompt-inversion]

In the shapes world the exact answer is known: stylising a rendered scene x with a style learned from one pair
should give f(x), the style's image function applied to x.  For each style we train (or reuse, from ``--work``,
the same files as ``paircustom.bench.quality``) the Pair Customization style file of the fixed ``trio`` pair,
then stylise rendered scenes that are not the pair's (``scenes``, half of them held-out combinations) with each
method ("sdedit", "inversion") over a strength sweep, prompted with each scene's own caption, and score
(``--negative-prompt-inversion``: inversion only, with the caption as negative prompt too; see
``paircustom.sampling.stylize``):

    fidelity    1 - Σ d(y, f(x)) / Σ d(x, f(x)),  d = mean absolute pixel error, pooled over the scenes
                (1: exactly f(x); 0: x unchanged; < 0: further from f(x) than x itself); next to it the
                "constant" reference, every pixel the mean colour of f(x): what a content-blind output scores
                (high for line sketch, whose f(x) is mostly white)
    structure   share of scenes whose analyzer-read shapes (left to right) on y equal those read on x, for
                styles under which the analyzer reads rendered shapes back (see ``scores.analyzer_reads``),
                "n/a" otherwise

Every stylisation is seeded (sdedit noise), so a rerun gives the same table.  Writes ``<name>.md``,
``<name>.json`` and ``<name>-samples.png`` (per style, for the first ``SHEET_SCENES`` scenes: x, sdedit, inversion
and f(x), at the default strength) under ``out`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config.generate import GENERATE
from ..sampling.pipeline import StyleGuidedPipeline
from ..files.images import atomic_write, grid
from ..shapes.examples import EXAMPLES
from ..shapes.styles import STYLES
from ..shapes.world import render, random_scene
from .methods import METHODS
from .scores import analyzer_reads, constant_image, fidelity_and_structure
from .quality_report import fmt


@dataclass(frozen=True)
class StylizeBenchConfig:
    """Everything that defines a stylising benchmark run (defaults: the full run)."""

    model: str = "shapes"
    styles: tuple[str, ...] = tuple(STYLES)
    methods: tuple[str, ...] = ("sdedit", "inversion")
    strengths: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0)    # GENERATE.strength is the default operating point
    scenes: int = 8                                        # rendered scenes stylised, half of them held-out
    scene_seed: int = 0
    steps: int = 25                                        # denoising steps at strength 1
    style_scale: float = GENERATE.style_scale
    guidance_scale: float = GENERATE.guidance_scale
    threads: int = 1
    out: str = "benchmarks/results"
    name: str = "stylize"
    work: str | None = None                                # style files, shared with the quality benchmark
    negative_prompt_inversion: bool = False                # inversion with n = c (paircustom.sampling.stylize)


SHEET_SCENES = 4  # scenes per style in the sample sheet
SHEET_COLUMNS = ("x", "sdedit", "inversion", "f(x)")
QUICK = dict(styles=("inverted",), strengths=(GENERATE.strength,), scenes=2, steps=10, name="stylize-quick")


def scenes(config: StylizeBenchConfig) -> list:
    """``config.scenes`` rendered scenes (alternately training and held-out combinations), never the pair's."""
    rng, pair = np.random.default_rng([config.scene_seed, 3]), EXAMPLES["trio"].scene
    chosen = []
    while len(chosen) < config.scenes:
        scene = random_scene(rng, held_out=len(chosen) % 2 == 1)
        if scene.layout != pair.layout:
            chosen.append(scene)
    return chosen


def score(styled: np.ndarray, images: np.ndarray, targets: np.ndarray, readable: bool) -> dict:
    """Fidelity and structure of ``styled`` (N, H, W, 3) against ``targets`` = f(images), as the quality
    benchmark scores them."""
    fidelity, structure = fidelity_and_structure(styled, images, targets, readable)
    return dict(fidelity=fidelity, structure=structure)


def edit_scenes(guided: StyleGuidedPipeline, config: StylizeBenchConfig, chosen: list, images: np.ndarray,
                styles: dict, method: str, strength: float) -> np.ndarray:
    """Every scene stylised with these style scales, prompted with its own caption, seeded by its index ->
    (N, 64, 64, 3) uint8."""
    return np.stack([np.asarray(guided.stylize(
        Image.fromarray(image), scene.layout.caption, styles=styles, strength=strength, method=method,
        num_inference_steps=config.steps, guidance_scale=config.guidance_scale, seed=k,
        negative_prompt_inversion=config.negative_prompt_inversion).images[0])
        for k, (image, scene) in enumerate(zip(images, chosen))])


def run(config: StylizeBenchConfig, log=print) -> dict:
    """Train (or reuse) each style, stylise every scene per method and strength, score; write .md and .json."""
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    started, records, sheet, constant = time.time(), [], [], {}
    chosen = scenes(config)
    images = np.stack([render(scene) for scene in chosen])           # (N, 64, 64, 3) uint8
    try:
        with tempfile.TemporaryDirectory() as temp:
            work = Path(config.work or temp)
            work.mkdir(parents=True, exist_ok=True)
            guided = StyleGuidedPipeline.from_pretrained(config.model)
            guided.pipe.set_progress_bar_config(disable=True)
            from .quality import QualityConfig, train_style  # deferred: keeps the import floors at or under 10

            quality = QualityConfig(model=config.model, work=str(work))
            edit = partial(edit_scenes, guided, config, chosen, images)   # (styles, method, strength) -> images
            unstyled = {}       # (method, strength) -> the same edit without a style: one per setting, for all styles
            for style in config.styles:
                name = guided.load_style(train_style(quality, style, METHODS["pair-sg"], work), name=style)
                targets = np.stack([STYLES[style].apply(image) for image in images])
                readable = analyzer_reads(style) >= quality.readable_threshold
                constant[style] = fidelity_and_structure(constant_image(targets), images, targets, False)[0]
                shown = {"x": images, "f(x)": targets}
                for method in config.methods:
                    for strength in config.strengths:
                        if (method, strength) not in unstyled:
                            unstyled[method, strength] = edit({}, method, strength)
                        without = score(unstyled[method, strength], images, targets, readable)["fidelity"]
                        styled = edit({name: config.style_scale}, method, strength)
                        if strength == GENERATE.strength:
                            shown[method] = styled
                        record = dict(style=style, method=method, strength=strength, n=len(images),
                                      **score(styled, images, targets, readable), fidelity_without_style=without)
                        records.append(record)
                        log(f"[{style}] {method:<9} strength {strength:<4g} fidelity {record['fidelity']:+.3f} "
                            f"(without the style {without:+.3f})  structure {fmt(record['structure'])}"
                            f"  ({time.time() - started:.0f}s)")
                sheet.append([Image.fromarray(shown[column][k]) for k in range(min(SHEET_SCENES, len(images)))
                              for column in SHEET_COLUMNS if column in shown])
    finally:
        torch.set_num_threads(threads)
    results = dict(config=asdict(config), minutes=(time.time() - started) / 60, records=records, constant=constant)
    write(results, Path(config.out), sheet)
    return results


def table(results: dict) -> str:
    """One row per style and method: the constant reference's fidelity, then fidelity / structure per strength."""
    config = results["config"]
    strengths = config["strengths"]
    cell = {(r["style"], r["method"], r["strength"]): r for r in results["records"]}
    lines = ["| style | method | constant | " + " | ".join(f"strength {s:g}" for s in strengths) + " |",
             "|---|---|---|" + "---|" * len(strengths)]
    for style in config["styles"]:
        for method in config["methods"]:
            cells = [cell.get((style, method, s)) for s in strengths]
            lines.append(f"| {style} | {method} | {results['constant'][style]:+.2f} | " + " | ".join(
                "" if c is None else
                f"{c['fidelity']:+.2f} ({c['fidelity_without_style']:+.2f}) / {fmt(c['structure'])}" for c in cells)
                + " |")
    return "\n".join(lines)


def write(results: dict, out: Path, sheet: list[list[Image.Image]]) -> list[Path]:
    """<name>.md, <name>.json and <name>-samples.png (``sheet``: one row of images per style)."""
    config = results["config"]
    flags = (" --quick" if config["name"] == "stylize-quick" else "") + \
        (" --negative-prompt-inversion" if config["negative_prompt_inversion"] else "")
    text = (f"# Stylising benchmark ({config['name']})\n\nCommand: `python -m paircustom.bench.stylize{flags}` "
            f"({results['minutes']:.1f} min). Cells: fidelity (the same edit without the style) / structure (see the "
            f"module docstring); constant: every pixel the mean colour of f(x); "
            f"{config['scenes']} rendered scenes, style scale {config['style_scale']:g}, CFG "
            f"{config['guidance_scale']:g}, {config['steps']} steps at strength 1; the default strength is "
            f"{GENERATE.strength:g}.\n\n{table(results)}\n\nSamples at strength {GENERATE.strength:g}, one row per "
            f"style ({', '.join(config['styles'])}), per scene: {', '.join(SHEET_COLUMNS)}:\n\n"
            f"![samples]({config['name']}-samples.png)\n")
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{config['name']}{suffix}" for suffix in (".md", ".json", "-samples.png")]
    atomic_write(paths[0], lambda path: Path(path).write_text(text))
    atomic_write(paths[1], lambda path: Path(path).write_text(json.dumps(results, indent=1)))
    atomic_write(paths[2], lambda path: grid(sheet).save(path, format="PNG"))
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one style, one strength, two scenes (a smoke run)")
    parser.add_argument("--model", default="shapes", help="shapes-world pipeline folder (default: embedded)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the results")
    parser.add_argument("--work", default=None, help="folder for style files (the quality benchmark's are reused)")
    parser.add_argument("--styles", default=None, help="comma-separated subset of " + ",".join(STYLES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--negative-prompt-inversion", action="store_true",
                        help="inversion only, the caption also the negative prompt (written as <name>-npi)")
    args = parser.parse_args(argv)
    config = StylizeBenchConfig(**QUICK) if args.quick else StylizeBenchConfig()
    config = replace(config, model=args.model, out=args.out, work=args.work, threads=args.threads)
    if args.negative_prompt_inversion:
        config = replace(config, methods=("inversion",), negative_prompt_inversion=True, name=f"{config.name}-npi")
    if args.styles:
        config = replace(config, styles=tuple(args.styles.split(",")))
    results = run(config, log=lambda message: print(message, flush=True))
    print(table(results))


if __name__ == "__main__":
    main()
