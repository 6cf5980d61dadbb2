"""Is style guidance a smoother strength knob than LoRA scale, and do blended styles land between? (issue 32)

    python -m paircustom.bench.smoothness [--steps 20] [--prompts 4] [--seeds 0 1] [--threads 1] [--work DIR]
                                          [--out benchmarks/results] [--pictures docs]

On the embedded shapes model, each example style is trained from its bundled pair as ``paircustom demo`` does
(the model's own defaults; files reused from ``--work``).  For held-out captions (layouts never shown to the base
model) x ``seeds``, one image per strength, same initial noise for every strength and method:

1-D, per style and method ("style guidance": λ = 0 .. 2·style_scale in ``strengths`` even steps, Eq. 10; "LoRA
scale": base + s·ΔW with the style prompt, s = 0 .. s*), where s* is calibrated to the same visible change: the
smallest scale of ``lora_scan`` whose image moves from s = 0 at least as far as style guidance's end moves from
λ = 0 (RMS pixel distance, mean over samples; the largest scanned scale if none does, which the table says).  Per
sample, with d the RMS pixel distance (0-255) and x_0 .. x_{k-1} the images along the sweep:

    largest step   max_i d(x_i, x_{i+1}) / Σ_i d(x_i, x_{i+1}): the largest jump as a share of the path
                   (1/(k-1) is perfectly even; 1 is all change in one step)
    stray          max_i d(x_i, segment x_0 x_{k-1}) / d(x_0, x_{k-1}): how far the path leaves the straight line
                   between its ends (0 is a straight path)
    structure      share of the strengths > 0 whose shapes the analyzer reads as at strength 0 (samples whose
                   strength-0 image reads; styles whose output the analyzer can read, as in ``quality``)

All three are means over samples.  2-D: a blend grid of two styles at (λ_a, λ_b) in {0, λ/2, λ}², from the base
image x = (0, 0) and the single styles A = (λ, 0), B = (0, λ); each cell's mean absolute pixel error (0-255) to
the single styles' ground truths f_a(x) and f_b(x), to the compositions f_b(f_a(x)) and f_a(f_b(x)), to the pixel
mix (f_a(x) + f_b(x)) / 2 and to A and B, and where it lies against the segment A -> B: t (its projection, 0 at A,
1 at B) and its distance from the segment as a share of d(A, B).  The base, A and B rows come first: how far the
single styles themselves are from their ground truths, against which the blended cells are read.  Writes
``smoothness.md`` and ``smoothness.json`` under ``--out``; with ``--pictures``, the docs' strength sweep (style
guidance above LoRA scale) and blend grid.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..config.generate import GENERATE
from ..sampling.pipeline import StyleGuidedPipeline
from ..sampling.sweep import initial_noise
from ..shapes.evaluate import eval_layouts
from ..shapes.examples import EXAMPLES, example_config
from ..shapes.styles import STYLES
from ..training.trainer import train_pair
from .scores import analyzer_reads
from .smoothness_metrics import blend_metrics, path_metrics, rms


@dataclass(frozen=True)
class SmoothnessConfig:
    examples: tuple[str, ...] = ("trio_posterized", "trio")  # the bundled pairs: posterized, inverted
    strengths: int = 6  # k: images per sweep, ends included
    max_style_scale: float = 2 * GENERATE.style_scale
    lora_scan: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # candidate ends of the LoRA sweep
    blend: tuple[str, str] = ("trio", "trio_posterized")  # the 2-D grid's styles: inverted x posterized
    blend_scale: float = GENERATE.style_scale  # λ of the blend grid's far corner
    prompts: int = 4  # held-out captions
    seeds: tuple[int, ...] = (0, 1)
    steps: int = 20  # DDIM steps
    readable_threshold: float = 0.7  # as ``quality``: analyzer accuracy on f(rendered) to score structure
    threads: int = 1
    work: str | None = None  # trained style files, reused when present
    out: str = "benchmarks/results"
    pictures: str | None = None  # folder for the docs pictures (None: none)


def train_styles(config: SmoothnessConfig, work: Path) -> dict[str, Path]:
    """{style name: file} of every example the run needs, trained as ``paircustom demo`` does (or reused)."""
    files = {}
    for key in dict.fromkeys(config.examples + config.blend):
        pair = EXAMPLES[key]
        output = work / f"{key}-{pair.style}.safetensors"
        if not output.is_file():
            start = time.perf_counter()
            train_pair(example_config(key, output, progress=False))
            print(f"trained {pair.style} in {time.perf_counter() - start:.0f} s")
        files[pair.style] = output
    return files


class Sweeps:
    """The pipeline with the styles loaded, the samples and their shared noise."""

    def __init__(self, config: SmoothnessConfig, files: dict[str, Path]):
        self.config = config
        self.pipe = StyleGuidedPipeline.from_pretrained("shapes")
        self.pipe.pipe.set_progress_bar_config(disable=True)
        for name, path in files.items():
            self.pipe.load_style(path, name=name)
        self.prompts = [layout.caption for layout in eval_layouts(config.prompts, True)]
        self.samples = [p for p in self.prompts for _ in config.seeds]
        self.noise = torch.cat([initial_noise(self.pipe, s, None, None) for _ in self.prompts for s in config.seeds])
        self.common = dict(num_inference_steps=config.steps)

    def guidance(self, styles: dict[str, list[float]]) -> np.ndarray:
        """A sweep's images as (rows, columns, N, H, W, 3) float."""
        result = self.pipe.sweep(self.prompts, styles, list(self.config.seeds), **self.common)
        return np.asarray(
            [[[np.asarray(image, np.float32) for image in cell] for cell in row] for row in result.images]
        )

    def lora(self, style: str, scale: float) -> np.ndarray:
        images = self.pipe.lora_scale(self.samples, style, scale, latents=self.noise.clone(), **self.common).images
        return np.asarray([np.asarray(image, np.float32) for image in images])  # (N, H, W, 3)


def one_style(sweeps: Sweeps, style: str) -> tuple[list[dict], float]:
    """The 1-D rows (style guidance, LoRA scale) of one style and the LoRA sweep's calibrated end s*."""
    config = sweeps.config
    strengths = np.linspace(0, config.max_style_scale, config.strengths).tolist()
    guided = sweeps.guidance({style: strengths})[0]  # (k, N, H, W, 3)
    target = rms(guided[-1], guided[0]).mean()
    start = sweeps.lora(style, 0.0)
    end = next((s for s in config.lora_scan if rms(sweeps.lora(style, s), start).mean() >= target), None)
    scales = np.linspace(0, end or config.lora_scan[-1], config.strengths).tolist()
    lora = np.stack([start] + [sweeps.lora(style, s) for s in scales[1:]])
    readable = analyzer_reads(style) >= config.readable_threshold
    rows = [
        dict(style=style, method="style guidance", range=f"0 .. {strengths[-1]:g}", **path_metrics(guided, readable)),
        dict(
            style=style,
            method="LoRA scale",
            range=f"0 .. {scales[-1]:g}" + ("" if end else " (capped)"),
            **path_metrics(lora, readable),
        ),
    ]
    return rows, scales[-1]


def two_styles(sweeps: Sweeps, a: str, b: str) -> list[dict]:
    """The blend grid of styles a and b at {0, λ/2, λ}² against the ground truths."""
    scale = sweeps.config.blend_scale
    values = [0.0, scale / 2, scale]
    grid = sweeps.guidance({a: values, b: values})  # (3 rows: λ_b, 3 columns: λ_a, N, ...)
    base = grid[0][0].round().astype(np.uint8)
    f_a, f_b = STYLES[a].apply, STYLES[b].apply
    x_a, x_b = np.stack([f_a(x) for x in base]), np.stack([f_b(x) for x in base])
    targets = {
        "f_a(x)": x_a,
        "f_b(x)": x_b,
        "f_b(f_a(x))": np.stack([f_b(x) for x in x_a]),
        "f_a(f_b(x))": np.stack([f_a(x) for x in x_b]),
        "pixel mix": (x_a.astype(np.float32) + x_b) / 2,
    }
    cells = {"base": grid[0][0], "A": grid[0][2], "B": grid[2][0]}
    cells.update({f"({values[c]:g}, {values[r]:g})": grid[r][c] for r in (1, 2) for c in (1, 2)})
    return blend_metrics(cells, targets)


def pictures(sweeps: Sweeps, folder: Path, style: str, lora_end: float) -> None:
    """The docs' pictures: a strength sweep with style guidance above LoRA scale, and a blend grid."""
    config, pipe = sweeps.config, sweeps.pipe
    prompts = sweeps.prompts[:2]
    strengths = np.linspace(0, config.max_style_scale, config.strengths).tolist()
    lora = np.linspace(0, lora_end, config.strengths).tolist()
    pipe.sweep(prompts, {style: strengths}, [0], lora_scales=lora, **sweeps.common).save(
        folder / "sweep-strength.png", overwrite=True
    )
    a, b = (EXAMPLES[key].style for key in config.blend)
    values = np.linspace(0, config.blend_scale, 3).tolist()
    pipe.sweep(prompts, {a: values, b: values}, [0], **sweeps.common).save(folder / "sweep-blend.png", overwrite=True)


def report(config: SmoothnessConfig, rows: list[dict], blend: list[dict], seconds: float) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"
    k = config.strengths
    lines = [
        "# Smoothness of style guidance vs LoRA scale (issue 32)",
        "",
        f"    python -m paircustom.bench.smoothness --steps {config.steps} --prompts {config.prompts} "
        f"--seeds {' '.join(map(str, config.seeds))} --threads {config.threads}",
        "",
        f"Shapes model, styles trained from the bundled pairs as `paircustom demo` does; {config.prompts} held-out "
        f"captions x {len(config.seeds)} seeds, {config.steps} DDIM steps, {k} strengths per sweep, same noise "
        f"for every strength and method; LoRA range calibrated to style guidance's visible change "
        f"(see `paircustom/bench/smoothness.py`). {seconds / 60:.1f} minutes wall clock, training the styles "
        "included unless `--work` held them.",
        "",
        f"## Strength sweeps (largest step: 1/(k-1) = {1 / (k - 1):.2f} is perfectly even)",
        "",
        "| style | method | range | change (RMS px) | largest step | stray | structure kept |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['style']} | {r['method']} | {r['range']} | {r['change']:.1f} | {r['largest_step']:.2f} | "
        f"{r['stray']:.2f} | {fmt(r['structure'])} |"
        for r in rows
    ]
    a, b = (EXAMPLES[key].style for key in config.blend)
    keys = [key for key in blend[0] if key.startswith("to ")]
    lines += [
        "",
        f"## Blend grid: a = {a}, b = {b}, cells (λ_a, λ_b); A = ({config.blend_scale:g}, 0), "
        f"B = (0, {config.blend_scale:g})",
        "",
        "Mean absolute pixel error (0-255) of each cell to the ground truths (x: the base image of the same seed) "
        "and to A and B; t: its projection on A -> B (0 at A, 1 at B); off: its distance from that segment as a "
        "share of d(A, B). The base, A and B rows are the references.",
        "",
        "| cell | " + " | ".join(keys) + " | t | off |",
        "|---" * (len(keys) + 3) + "|",
    ]
    lines += [
        f"| {r['cell']} | " + " | ".join(f"{r[key]:.1f}" for key in keys) + f" | {r['t']:.2f} | "
        f"{r['off_segment']:.2f} |"
        for r in blend
    ]
    return "\n".join(lines) + "\n"


def run(config: SmoothnessConfig) -> str:
    torch.set_num_threads(config.threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="paircustom-smoothness-") as temp:
        work = Path(config.work or temp)
        work.mkdir(parents=True, exist_ok=True)
        sweeps = Sweeps(config, train_styles(config, work))
        rows, ends = [], {}
        for key in config.examples:
            style = EXAMPLES[key].style
            style_rows, ends[style] = one_style(sweeps, style)
            rows += style_rows
            print(
                *(
                    f"{r['style']:12} {r['method']:15} step {r['largest_step']:.2f} stray {r['stray']:.2f}"
                    for r in style_rows
                ),
                sep="\n",
                flush=True,
            )
        blend = two_styles(sweeps, *(EXAMPLES[key].style for key in config.blend))
        if config.pictures:
            first = EXAMPLES[config.examples[0]].style
            pictures(sweeps, Path(config.pictures), first, ends[first])
    text = report(config, rows, blend, time.perf_counter() - start)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "smoothness.md").write_text(text)
    (out / "smoothness.json").write_text(json.dumps(dict(config=asdict(config), sweeps=rows, blend=blend), indent=2))
    return text


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = SmoothnessConfig()
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--prompts", type=int, default=defaults.prompts)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(defaults.seeds))
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch CPU threads")
    parser.add_argument("--work", default=None, help="folder of the trained style files (reused when present)")
    parser.add_argument("--out", default=defaults.out)
    parser.add_argument("--pictures", default=None, help="also write the docs pictures into this folder")
    args = parser.parse_args(argv)
    print(
        run(
            SmoothnessConfig(
                steps=args.steps,
                prompts=args.prompts,
                seeds=tuple(args.seeds),
                threads=args.threads,
                work=args.work,
                out=args.out,
                pictures=args.pictures,
            )
        ),
        end="",
    )


if __name__ == "__main__":
    main()
