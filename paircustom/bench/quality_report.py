"""Tables and the trade-off plot of the quality benchmark (``paircustom.bench.quality``).

``write`` produces ``<name>.md`` (main table at the default scales, a per-method summary, the full sweep),
``<name>.png`` (fidelity against leakage and against structure, one line per method over its scale sweep) and
``<name>.json`` (every record).  Text below ``READING_MARK`` in an existing ``<name>.md`` is kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from PIL import Image

from ..files.images import atomic_write, grid
from .methods import METHODS
from .quality_gates import (BASELINES, efficiency, efficiency_table, gate_lines, pareto_verdict,  # noqa: F401
                            word_gain_lines)
from .quality_plot import plot

READING_MARK = "<!-- reading: written by hand below this line; kept when the benchmark is re-run -->"
FLAGS = {"quality-quick": " --quick", "quality-pair-caption": " --pair-caption",
         "quality-pair-caption-quick": " --quick --pair-caption", "quality-families-quick": " --quick"}   # results name -> command-line flags
REFERENCES = ("none", "ideal", "constant", "vae-ceiling")   # x_base, f(x_base), its mean colour, f(x_base) via the VAE


def fmt(value, signed: bool = False) -> str:
    """Two decimals; None (not scored, or a split with no samples) is "n/a"."""
    if value is None:
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _records(results: dict, split: str = "all") -> list[dict]:
    return [r for r in results["records"] if r["split"] == split]


def _at_default(results: dict) -> dict:
    """{(style, method, split): record} at each method's default scale (or its only scale)."""
    config, table = results["config"], {}
    for r in results["records"]:
        if r["method"] in REFERENCES:
            table[(r["style"], r["method"], r["split"])] = r
            continue
        default = config["default_style_scale" if METHODS[r["method"]].apply == "guidance" else "default_lora_scale"]
        scales = {x["scale"] for x in results["records"] if x["method"] == r["method"]}
        if r["scale"] == default or len(scales) == 1:
            table[(r["style"], r["method"], r["split"])] = r
    return table


def main_table(results: dict) -> str:
    """Per style and method at the default scale: fidelity (all / held-out / training), leakage, structure."""
    table = _at_default(results)
    lines = ["| style | method | scale | fidelity | fidelity held-out | efficiency held-out | fidelity training | "
             "leakage | structure |", "|---|---|---|---|---|---|---|---|---|"]
    for style in results["config"]["styles"]:
        for method in (*REFERENCES, *results["config"]["methods"]):
            if (style, method, "all") not in table:
                continue
            a, h, t = (table.get((style, method, s), {}) for s in ("all", "held-out", "training"))
            lines.append(_split_row(style, method, "-" if method in REFERENCES else f"{a['scale']:g}", a, h, t,
                                    efficiency(results, h) if h else None))
    return "\n".join(lines)


def _split_row(style: str, method: str, scale: str, whole: dict, held_out: dict, training: dict,
               held_out_efficiency: float | None) -> str:
    """A table row: fidelity over all samples and the held-out captions, the held-out efficiency (against the
    oracle at the same λ), fidelity on the training captions; leakage; structure."""
    return (f"| {style} | {method} | {scale} | {fmt(whole['fidelity'], True)} | "
            f"{fmt(held_out.get('fidelity'), True)} | {fmt(held_out_efficiency)} | "
            f"{fmt(training.get('fidelity'), True)} | {fmt(whole['leakage'])} | {fmt(whole['structure'])} |")


def summary_table(results: dict) -> str:
    """Per method at the default scale, averaged over styles (structure over the readable styles only)."""
    table = _at_default(results)
    lines = ["| method | mean fidelity | min fidelity (style) | mean leakage | mean structure |", "|---|---|---|---|---|"]
    for method in (*REFERENCES, *results["config"]["methods"]):
        rows = [table[k] for k in table if k[1] == method and k[2] == "all"]
        if not rows:
            continue
        worst = min(rows, key=lambda r: r["fidelity"])
        structure = [r["structure"] for r in rows if r["structure"] is not None]
        lines.append(f"| {method} | {np.mean([r['fidelity'] for r in rows]):+.2f} | {worst['fidelity']:+.2f} "
                     f"({worst['style']}) | {np.mean([r['leakage'] for r in rows]):.2f} | "
                     f"{fmt(float(np.mean(structure)) if structure else None)} |")
    return "\n".join(lines)


SHORTCUT_FIDELITY = 0.02     # issue 14: a cheaper style guidance loses at most this fidelity against full guidance


def shortcut_table(results: dict) -> str:
    """Each cheaper style guidance (a method with sampling options) against full style guidance ("pair-sg") at
    the default scale, per style: fidelity at most ``SHORTCUT_FIDELITY`` below full guidance's (a non-inferiority
    margin: higher is fine) and leakage no higher ("" without both)."""
    table, methods = _at_default(results), results["config"]["methods"]
    shortcuts = [m for m in methods if METHODS[m].sample]
    if "pair-sg" not in methods or not shortcuts:
        return ""
    lines = ["| method | style | fidelity (full) | Δ fidelity | leakage (full) | target | result |",
             "|---|---|---|---|---|---|---|"]
    for method in shortcuts:
        verdicts = []
        for style in results["config"]["styles"]:
            full, cheap = table.get((style, "pair-sg", "all")), table.get((style, method, "all"))
            if full is None or cheap is None:
                continue
            change = cheap["fidelity"] - full["fidelity"]
            met = change >= -SHORTCUT_FIDELITY and cheap["leakage"] <= full["leakage"]
            verdicts.append(met)
            lines.append(f"| {method} | {style} | {cheap['fidelity']:+.3f} ({full['fidelity']:+.3f}) | {change:+.3f} | "
                         f"{cheap['leakage']:.2f} ({full['leakage']:.2f}) | Δ >= -{SHORTCUT_FIDELITY}, leakage no "
                         f"higher | {'met' if met else 'MISSED'} |")
        lines.append(f"| {method} | every style | | | | all met | {'met' if all(verdicts) else 'MISSED'} |")
    return "\n".join(lines)


def pareto_table(results: dict, method: str = "pair-sg", split: str = "held-out") -> str:
    """Per style: ``method``'s scale sweep against each baseline's on the ``split`` captions (``pareto_verdict``),
    and the count of styles where it beats every baseline ("" when a method is missing)."""
    methods = results["config"]["methods"]
    if method not in methods or not set(BASELINES) <= set(methods):
        return ""
    points = {}
    for r in _records(results, split):
        points.setdefault((r["style"], r["method"]), []).append((r["fidelity"], r["leakage"]))
    sweep = lambda style, m: " ".join(f"{f:+.2f}/{l:.2f}" for f, l in points[style, m])  # noqa: E731
    header = " | ".join(f"{b} | Pareto vs {b}" for b in BASELINES)
    lines = [f"| style | {method} (fidelity/leakage per scale) | {header} |", "|---|---|" + "---|---|" * len(BASELINES)]
    wins = 0
    for style in results["config"]["styles"]:
        verdicts = [pareto_verdict(points[style, method], points[style, b]) for b in BASELINES]
        wins += all(v == "ours" for v in verdicts)
        lines.append(f"| {style} | {sweep(style, method)} | " + " | ".join(
            f"{sweep(style, b)} | {'better' if v == 'ours' else 'worse' if v == 'theirs' else 'neither'}"
            for b, v in zip(BASELINES, verdicts)) + " |")
    lines.append(f"| better than both | {wins} of {len(results['config']['styles'])} styles | "
                 + " | ".join("" for _ in range(2 * len(BASELINES) - 1)) + " |")
    return "\n".join(lines)


def sweep_table(results: dict) -> str:
    """Every (style, method, scale)."""
    by_key = {(r["style"], r["method"], r["scale"], r["split"]): r for r in results["records"]}
    lines = ["| style | method | scale | fidelity | held-out | efficiency held-out | training | leakage | structure |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in _records(results):
        if r["method"] in REFERENCES:
            continue
        h, t = (by_key.get((r["style"], r["method"], r["scale"], s), {}) for s in ("held-out", "training"))
        lines.append(_split_row(r["style"], r["method"], f"{r['scale']:g}", r, h, t, efficiency(results, h) if h else None))
    return "\n".join(lines)


def _shortcut_section(results: dict) -> str:
    table = shortcut_table(results)
    return "" if not table else f"""## Cheaper style guidance against full style guidance (issue 14)

{table}

"""


def _gates_section(results: dict) -> str:
    lines, words = gate_lines(results), word_gain_lines(results)
    text = "" if not lines else "## Gates of issue 28 (family section)\n\n" + "\n".join(lines) + "\n\n"
    return text + ("" if not words else "## The learned style word against the plain method\n\n" + "\n".join(words)
                   + "\n\n")


def _efficiency_section(results: dict) -> str:
    table = efficiency_table(results)
    return "" if not table else f"""## Against the oracle (efficiency = fidelity / oracle fidelity at the same λ)

{table}

"""


def _pareto_section(results: dict) -> str:
    table = pareto_table(results)
    title = "Pair Customization against the baselines, held-out captions (Pareto over the scale sweeps)"
    return "" if not table else f"""## {title}

{table}

"""


def _overrides(config: dict) -> str:
    """The sweep's TrainConfig overrides, as written on the command line."""
    items = [f"{k}={'+'.join(v) if isinstance(v, (list, tuple)) else v}" for k, v in config.get("train", ())]
    return f" with `--train {','.join(items)}`" if items else ""


def markdown(results: dict, reading: str) -> str:
    config = results["config"]
    readable = {r["style"]: r["analyzer_reads"] for r in _records(results)}
    prompts = "; ".join(f"{p} ({split})" for split, p in results["prompts"])
    methods = "\n".join(["- `none`: x_base itself (reference: no style)", "- `ideal`: f(x_base) (reference: the "
                         "ground truth; its structure is the ceiling the analyzer allows)",
                         "- `constant`: every pixel the mean colour of f(x_base) (reference: a content-blind "
                         "output; a method must beat it to show more than a global colour shift)",
                         "- `vae-ceiling`: f(x_base) encoded and decoded by the model's VAE (reference: the best "
                         "any denoiser can reach through this VAE)",
                         *(f"- `{m}`: {METHODS[m].label}" for m in config["methods"])])
    section = config.get("section", "new-words")
    title = "style families the base model knows" if section == "families" else "new style words"
    return f"""# Style quality on the embedded shapes model: {title}

Generated by `python -m paircustom.bench.quality --section {section}{FLAGS.get(config['name'], '')}` \
({results['minutes']:.1f} min on the CPU). What is measured and why: the module docstring of \
`paircustom/bench/quality.py`. One training pair per style: the `{config['pair']}` scene of `paircustom.shapes.examples` and f(it); training steps \
{config['max_steps'] or "from the model's paircustom.json"}{_overrides(config)}; {config['steps']} DDIM steps, CFG \
{config['guidance_scale']:g}, style start {config['style_start_fraction']:g}; {len(config['seeds'])} seeds per caption.

{methods}

Fidelity = 1 - d(x_styled, f(x_base)) / d(x_base, f(x_base)) with d the mean absolute pixel error pooled over the \
samples (1 perfect, 0 = no style, < 0 worse than none). Efficiency = fidelity / the oracle's fidelity at the same \
style scale on the same captions (style-guidance methods). Leakage = share of samples whose layout a training image \
(content or style image of a training pair) explains better than x_base or f(x_base) do, by a margin \
(`paircustom/bench/leakage.py`). Structure = share of samples whose analyzer-read shapes (left to right) match x_base's; scored only where \
the analyzer reads the style's rendered scenes back ({', '.join(f'{s} {100 * v:.0f}%' for s, v in readable.items())}\
; threshold {100 * config['readable_threshold']:.0f}%).

Captions: {prompts}.

## At the default scales (style guidance {config['default_style_scale']:g}, LoRA scale {config['default_lora_scale']:g})

{main_table(results)}

## Per method, mean over styles

{summary_table(results)}

{_gates_section(results)}{_efficiency_section(results)}{_pareto_section(results)}{_shortcut_section(results)}Samples (first seed of each caption; per style the rows are `none`, `ideal`, then each method at its default \
scale in the order above; the first column of the `none` and `ideal` rows is the training style image):

![samples]({config['name']}-samples.png)

## Sweep

![fidelity against leakage and structure]({config['name']}.png)

{sweep_table(results)}

{READING_MARK}
{reading}"""


def write(results: dict, out: Path, name: str, gallery: list[list[Image.Image]] | None) -> list[Path]:
    """Write <name>.md (keeping a hand-written reading), <name>.png, <name>-samples.png (unless ``gallery`` is
    None: a report rewritten from its JSON keeps the sheet it has) and <name>.json."""
    out.mkdir(parents=True, exist_ok=True)
    md, png, raw = out / f"{name}.md", out / f"{name}.png", out / f"{name}.json"
    samples = out / f"{name}-samples.png"
    if gallery is not None:
        atomic_write(samples, lambda temp: grid(gallery).save(temp, format="PNG"))
    reading = "\n(no reading yet)\n"
    if md.is_file() and READING_MARK in md.read_text():
        reading = md.read_text().split(READING_MARK, 1)[1].lstrip("\n")
    atomic_write(raw, lambda temp: Path(temp).write_text(json.dumps(results, indent=1) + "\n"))
    plot(results, png)
    atomic_write(md, lambda temp: Path(temp).write_text(markdown(results, reading)))
    return [md, png, samples, raw]
