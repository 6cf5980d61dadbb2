"""Ground-truth style benchmark on the embedded shapes model: does Pair Customization learn the style?

    python -m paircustom.bench.quality [--section families|new-words] [--quick] [--model shapes]
                                       [--out benchmarks/results] [--work DIR]

Two sections (``sections``): ``families`` (the default), six style families the base model knows by name, each
pair showing one member and trained with the family word alone; ``new-words``, styles under words the base model
never saw.  In the shapes world a style is a known image function ``f`` (``paircustom.shapes.styles``,
``paircustom.shapes.families``), so for any prompt
and seed the ideal stylized output is ``f(x_base)``, the base model's own image pushed through ``f``.  For each
style we train on ONE pair (content image, f(content image)) of a fixed training-set scene (``trio`` of
``paircustom.shapes.examples``: three objects in four colours) and compare, with the same target layers, optimizer steps and seeds (paper Sec. 5 baselines/ablations):

    pair-sg     Pair Customization as implemented (orthogonal frozen A's, stop-gradient, style warm-up; Sec. 3)
                with style guidance (Eqs. 10-11) at several scales
    pair-lora   the same file, applied by LoRA scaling (base + s·Δs, plain CFG, style prompt)
    no-orth-sg  ablation of Sec. 3.2: ordinary trainable A's for both adapters, with style guidance
    db-lora     DreamBooth-LoRA baseline: one LoRA trained on the style image alone with the style prompt,
                applied by LoRA scaling ...
    db-sg       ... and by style guidance
    pair-sg-*   the pair-sg file with the cheaper style guidance of issue 14 (``CHEAP_GUIDANCE``: style deltas
                held or forecast for several steps, ``style_end``, the adaptive rule), to compare with pair-sg at
                equal scale
    pair-sg-3pairs  pair-sg trained on three pairs of the style (the fixed pair, then ``MORE_SCENES`` of
                ``paircustom.shapes.examples``, each with its own caption as subject): one shared style LoRA
    slider      Concept Sliders visual slider (Gandikota et al.), the paper's other baseline: one LoRA trained at +1
                on the style image and at -1 on the content image (same eps and t, both under the content prompt),
                applied to the plain prompt at a LoRA scale, its strength knob
    prompt-only control: the base model prompted with the style words, no LoRA (for a family: the family word
                alone, which asks for *some* member; for a new word: how far an unseen word alone moves the image)
    oracle      the best any style term can do on this model at each style scale (``oracle``): the base model's
                own words for the exact style through a zero LoRA, the colour-mapped caption, or (marked "image")
                f applied to the current clean estimate; "efficiency" = fidelity / oracle fidelity at the same scale

Metrics per style, method and scale, over held-out captions (combinations never shown to the base model) and
training-set captions (never the pair's own), one image per (caption, seed):

    fidelity    1 - Σ d(x_styled, f(x_base)) / Σ d(x_base, f(x_base)),  d = mean absolute pixel error, pooled
                over the samples of a split (1: exact style with content kept, 0: no change, < 0: worse than none)
    leakage     share of samples whose layout a training image (content or style image of any of the method's
                pairs) explains better than x_base or f(x_base) do, by a margin (``leakage``): the pair's content
                copied into other prompts, the failure the paper's content/style separation targets; an affine
                colour fit makes it blind to how far a sample is styled
    structure   share of samples whose analyzer-read shape equals the shape read on x_base (samples with a
                readable base shape); only for styles under which the analyzer reads rendered shapes back
                (>= 70% on a calibration set of rendered scenes pushed through f), "n/a" otherwise; the
                reference row "ideal" (= f(x_base)) gives the ceiling the analyzer allows on these very samples

x_base: the base model, plain CFG, the same initial latents; x_styled: with the style, same latents.  Sampling
uses DDIM with ``steps`` (default 25, not the paper's 50) to fit a CPU.  The family section also prints the
issue-28 gates as PASS/FAIL lines (``quality_gates``).  Each (style, training variant) is trained
once and reused for every scale and application; every configuration is one batched pipeline call over all
prompts x seeds.  Reference rows per style: "none" (x_base itself: fidelity 0, the leakage
that needs no style at all), "ideal" (f(x_base): fidelity 1, leakage 0, the structure ceiling) and "constant"
(every pixel the mean colour of f(x_base): what a content-blind output scores).  Writes ``<name>.md`` (tables; a hand-written reading below the ``READING_MARK`` line survives
re-runs), ``<name>.png`` (trade-off plot) and ``<name>.json`` under ``out`` and prints the main table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config.generate import GENERATE
from ..shapes.evaluate import vae_round_trip
from ..shapes.examples import MORE_SCENES
from ..shapes.styles import KNOWN_STYLES, STYLES, Style
from . import quality_report
from .methods import METHODS
from .oracle import OracleGuidedPipeline, load_oracle
from .samples import Sample, evaluation_set, generate
from .scores import analyzer_reads, constant_image, metrics
from .sections import (FAMILY_METHODS, FAMILY_QUICK, PRESETS, SECTIONS, bench_style, pair_images,  # noqa: F401
                       section_styles, train_style, training_pairs)


@dataclass(frozen=True)
class QualityConfig:
    """Everything that defines a benchmark run (defaults: the full run, ~30-40 CPU minutes)."""

    model: str = "shapes"                     # the embedded model (or a shapes-world pipeline folder)
    section: str = "new-words"                # "families" or "new-words" (``sections``): what ``styles`` names
    styles: tuple[str, ...] = tuple(STYLES)   # styles of the section (new words: keys of STYLES, easy to hard)
    methods: tuple[str, ...] = tuple(METHODS)
    pair: str = "trio"                        # the scene of the training pair (paircustom.shapes.examples)
    held_out: int = 4                         # held-out captions evaluated
    training: int = 4                         # training-set captions evaluated (the pair's own excluded)
    pair_caption: bool = False                # also the pair's own caption, split "pair" (an in-sample check)
    seeds: tuple[int, ...] = (0, 1, 2, 3)     # initial-latent seeds, the same for every prompt and method
    prompt_seed: int = 0                      # which captions are drawn
    steps: int = 25                           # DDIM sampling steps (paper 50)
    guidance_scale: float = GENERATE.guidance_scale   # CFG for every image, base included
    style_start_fraction: float = GENERATE.style_start_fraction  # fraction of steps before style guidance starts
    style_scales: tuple[float, ...] = (1.0, 2.0, 3.0, 5.0)   # style-guidance sweep around the default
    lora_scales: tuple[float, ...] = (0.5, 1.0, 1.5)        # LoRA-scale sweep (paper baseline 1)
    default_style_scale: float = GENERATE.style_scale   # the operating point of the main table
    default_lora_scale: float = 1.0
    max_steps: int | None = None              # training steps; None = the model's paircustom.json defaults
    style_start_step: int | None = None       # first step with the style loss; None = the model's default
    train: tuple[tuple[str, object], ...] = ()   # other TrainConfig overrides for every method (a tuning sweep)
    readable_threshold: float = 0.7           # analyzer shape accuracy on f(rendered) to score structure
    threads: int = 1                          # torch threads: 1 is far faster than 2 on a shared 2-core machine
    out: str = "benchmarks/results"           # where <name>.md/.png/.json go
    name: str = "quality"                     # file stem of the results
    work: str | None = None                   # style files and pair PNGs; reused if present (None: temp dir)


QUICK = dict(styles=("inverted",), methods=("pair-sg", "db-lora"), held_out=1, training=1, seeds=(0, 1),
             style_scales=(3.0,), lora_scales=(1.0,), max_steps=200, style_start_step=50, name="quality-quick")
QUICKS = {"families": FAMILY_QUICK, "new-words": QUICK}


def evaluate_style(config: QualityConfig, guided: OracleGuidedPipeline, sample: Sample, style: str,
                   work: Path, log) -> tuple[list[dict], list[list[Image.Image]]]:
    """Train every method's file for ``style`` once (the oracle: load it), sweep its scales, score each against
    f(x_base).

    Also returns gallery rows (the training style image, then the first seed of every caption) for the
    references and for each method at its default scale.
    """
    chosen = bench_style(config.section, style)
    target = np.stack([chosen.apply(image) for image in sample.base])
    trained_on = pair_images(config, style, 1 + len(MORE_SCENES))   # content, style of each training pair
    style_image = trained_on[1]                                     # the benchmark's pair
    reads = analyzer_reads(Style(style, chosen.words, chosen.apply))
    readable = reads >= config.readable_threshold
    log(f"[{style}] analyzer reads shapes under this style: {100 * reads:.0f}% -> structure "
        f"{'scored' if readable else 'n/a'}")
    records: list[dict] = []
    gallery = [[Image.fromarray(style_image)] + [Image.fromarray(image) for image in images[::len(config.seeds)]]
               for images in (sample.base, target)]

    def score(key: str, scale: float, styled: np.ndarray, pairs: int = 1) -> dict:
        for split in ("all", "held-out", "training", "pair"):
            rows = np.array([split in ("all", s) for s in sample.splits])
            if not rows.any():
                continue
            records.append(dict(style=style, method=key, scale=scale, split=split, readable=readable,
                                analyzer_reads=reads, oracle=chosen.oracle, **metrics(
                                    styled[rows], sample.base[rows], target[rows], trained_on[:2 * pairs], readable)))
        return next(r for r in reversed(records) if r["split"] == "all")

    ceiling = vae_round_trip(guided.pipe.vae, target)
    for key, references in (("none", sample.base), ("ideal", target), ("constant", constant_image(target)),
                            ("vae-ceiling", ceiling)):
        score(key, 0.0, references)
    loaded: dict[Path, str] = {}
    for key in config.methods:
        method, start = METHODS[key], time.time()
        name = load_method(config, guided, chosen, key, work, loaded)
        trained = time.time() - start
        scales = method.scales or (config.style_scales if method.apply == "guidance" else config.lora_scales)
        for scale in scales:
            styled = generate(guided, sample, config, name, scale, method.apply, method.sample)
            overall = score(key, scale, styled, method.pairs)
            default = config.default_style_scale if method.apply == "guidance" else config.default_lora_scale
            if scale == default or len(scales) == 1:
                gallery.append([Image.new("RGB", style_image.shape[:2], "white")]
                               + [Image.fromarray(image) for image in styled[::len(config.seeds)]])
            structure = "n/a" if overall["structure"] is None else f"{overall['structure']:.2f}"
            log(f"[{style}] {key:<10} scale {scale:<4g} fidelity {overall['fidelity']:+.3f}  leakage "
                f"{overall['leakage']:.2f}  structure {structure}  ({time.time() - start:.0f}s, training {trained:.0f}s)")
    return records, gallery


def load_method(config: QualityConfig, guided: OracleGuidedPipeline, style, key: str, work: Path,
                loaded: dict[Path, str]) -> str:
    """Train (or reuse) method ``key``'s file for ``style`` (a ``sections.BenchStyle``) and load it once (``loaded``:
    file -> name); the oracle's zero-LoRA file is loaded with its prompt rule.  Returns the loaded style's name."""
    method = METHODS[key]
    if method.oracle:
        return load_oracle(guided, style, config.model, work)
    path = train_style(config, style.name, method, work)
    if path not in loaded:
        loaded[path] = guided.load_style(path, name=f"{style.name}-{len(guided.suffixes)}")
    return loaded[path]


def run(config: QualityConfig, log=print) -> dict:
    """Run the benchmark; write <name>.md, .png, .json under ``config.out``; return the results."""
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    started = time.time()
    try:
        with tempfile.TemporaryDirectory() as temp:
            work = Path(config.work or temp)
            work.mkdir(parents=True, exist_ok=True)
            guided = OracleGuidedPipeline.from_pretrained(config.model)
            sample = evaluation_set(config, guided.pipe)
            sample.base = generate(guided, sample, config)
            log(f"base model: {len(sample.prompts)} samples ({time.time() - started:.0f}s)")
            records, gallery = [], []
            for style in config.styles:
                style_records, rows = evaluate_style(config, guided, sample, style, work, log)
                records += style_records
                gallery += rows
    finally:
        torch.set_num_threads(threads)
    results = dict(config=asdict(config), minutes=(time.time() - started) / 60, records=records,
                   prompts=sorted(set(zip(sample.splits, sample.prompts))))
    paths = quality_report.write(results, Path(config.out), config.name, gallery)
    log(quality_report.main_table(results))
    log("wrote " + ", ".join(str(p) for p in paths))
    return results


def parse_overrides(text: str) -> tuple[tuple[str, object], ...]:
    """'rank=16,target_modules=to_q+to_v' -> (("rank", 16), ("target_modules", ("to_q", "to_v")))."""
    overrides = []
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if "+" in value or key == "target_modules":
            parsed: object = tuple(value.split("+"))
        else:
            try:
                parsed = int(value)
            except ValueError:
                try:
                    parsed = float(value)
                except ValueError:
                    parsed = value
        overrides.append((key, parsed))
    return tuple(overrides)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=SECTIONS, default="families", help="style families the base model "
                        "knows by name (default), or today's new-word styles (file stem quality)")
    parser.add_argument("--quick", action="store_true", help="one style, few methods, prompts and steps (a smoke run)")
    parser.add_argument("--model", default="shapes", help="shapes-world pipeline folder (default: embedded)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the results")
    parser.add_argument("--work", default=None, help="folder for style files; existing ones are reused (keyed by "
                        "style, variant and steps only: use one folder per model)")
    parser.add_argument("--pair-caption", action="store_true",
                        help="in-sample check: evaluate only the training pair's own caption (quality-pair-caption.*)")
    parser.add_argument("--styles", default=None, help="comma-separated subset of the section's styles (families: "
                        + ",".join(section_styles("families")) + "; new words: " + ",".join(STYLES) + ")")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", default=None, help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--steps", type=int, default=None, help="pair-training steps (default: the model's)")
    parser.add_argument("--style-start-step", type=int, default=None, help="first step with the style loss")
    parser.add_argument("--train", default="", help="TrainConfig overrides for every method, e.g. "
                        "'rank=16,learning_rate=2e-3,target_modules=to_q+to_k+to_v+to_out.0+ff.net.2'")
    for sweep in ("style_scales", "lora_scales"):
        parser.add_argument("--" + sweep.replace("_", "-"), default=None, help="comma-separated sweep (default "
                            + ",".join(f"{v:g}" for v in getattr(QualityConfig, sweep)) + ")")
    parser.add_argument("--name", default=None, help="file stem of the results (default quality)")
    parser.add_argument("--report-only", action="store_true", help="rewrite <name>.md and <name>.png from the "
                        "<name>.json already under --out (after the report changed), without sampling")
    args = parser.parse_args(argv)
    config = QualityConfig(**{**PRESETS[args.section], **(QUICKS[args.section] if args.quick else {})})
    config = replace(config, model=args.model, out=args.out, work=args.work, threads=args.threads)
    if args.pair_caption:
        config = replace(config, held_out=0, training=0, pair_caption=True, name=config.name.replace("quality",
                                                                                             "quality-pair-caption"))
    if args.styles:
        config = replace(config, styles=tuple(args.styles.split(",")))
    if args.methods:
        config = replace(config, methods=tuple(args.methods.split(",")))
    known = (*section_styles(args.section), *(KNOWN_STYLES if args.section == "new-words" else ()))
    unknown = [s for s in config.styles if s not in known] + [m for m in config.methods if m not in METHODS]
    if unknown:
        parser.exit(2, f"error: {unknown[0]!r} is not a style of the {args.section} section nor a method; pick from "
                       f"--help's lists.\n")
    for sweep in ("style_scales", "lora_scales"):
        if getattr(args, sweep):
            config = replace(config, **{sweep: tuple(float(v) for v in getattr(args, sweep).split(","))})
    if args.steps is not None or args.style_start_step is not None:
        config = replace(config, max_steps=args.steps, style_start_step=args.style_start_step)
    config = replace(config, train=parse_overrides(args.train), name=args.name or config.name)
    if args.report_only:
        source = Path(config.out) / f"{config.name}.json"
        if not source.is_file():
            parser.exit(2, f"error: {source} does not exist; run the benchmark first, or pass the --out and --name "
                           f"it used.\n")
        quality_report.write(json.loads(source.read_text()), Path(config.out), config.name, None)
        print(f"rewrote {source.with_suffix('.md')} and .png from {source}")
        return
    run(config, log=lambda message: print(message, flush=True))


if __name__ == "__main__":
    main()
