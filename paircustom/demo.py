"""``paircustom demo``: the whole method on the embedded shapes model, on a laptop CPU.

1. take a shipped example pair: three objects, and the same scene in one member of a style family the base model
   knows by name (``tinted``: a magenta tint; the model draws *some* tint for "in tinted style"),
2. train a style from it with the model's own fast defaults, the family word as its style words,
3. generate several prompts (some never seen in the base model's training) and write one labelled grid, one row per
   prompt, same seed in every column: base model | style from the pair (style guidance) | exact member (the
   member's own image function applied to the base image: the right answer) | family word alone (the prompt with
   " in tinted style", no style file: what the words say without the pair).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .config.generate import GENERATE
from .files.images import atomic_write, grid
from .sampling.pipeline import StyleGuidedPipeline
from .shapes.world import Layout
from .training.trainer import train_pair


@dataclass(frozen=True)
class DemoConfig:
    example: str = "trio_tinted"         # a key of paircustom.shapes.examples.EXAMPLES
    # Scenes of one to three objects; the first three hold a combination never shown to the base model.
    layouts: tuple[Layout, ...] = (
        Layout(7, ((0, 0),)),                    # a red circle on a black background
        Layout(3, ((1, 3), (2, 2))),             # a green ring and a blue triangle on a yellow background
        Layout(6, ((0, 1), (4, 0), (8, 2))),     # a red square and a cyan circle and a gray triangle on white
        Layout(2, ((3, 0), (6, 3))),             # a yellow circle and a white ring on a blue background
        Layout(8, ((5, 2),)),                    # a magenta triangle on a gray background
        Layout(7, ((1, 2), (3, 1), (4, 0))),     # a green triangle and a yellow square and a cyan circle on black
    )
    train_steps: int | None = None        # None: the embedded model's own default
    steps: int = GENERATE.num_inference_steps   # denoising steps; style and CFG scale: GENERATE's
    seed: int = 0
    zoom: int = 3                         # the grid's pixels per model pixel
    font_size: int = 15                   # of the column labels, in pixels


COLUMNS = ("base model", "style from the pair", "exact member", "family word alone")


def run_demo(args, config: DemoConfig = DemoConfig()) -> Path:
    from .shapes.examples import EXAMPLES, example_config, example_paths

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    example = EXAMPLES[config.example]
    content, style = example_paths(config.example)
    # The embedded model is so small that one thread is fastest; more threads stall badly (10x here)
    # whenever another process is busy on the same cores.
    torch.set_num_threads(1)
    start = time.perf_counter()
    print(f"1/3 training the '{example.style}' style from {content.name} and {style.name} ...")
    output = out / f"{config.example}-{example.style}.safetensors"
    style_file = train_pair(example_config(config.example, output, max_steps=config.train_steps, overwrite=True,
                                           progress=not args.quiet))
    prompts = [layout.caption for layout in config.layouts]
    print(f"    {time.perf_counter() - start:.0f} s")
    print(f"2/3 generating {len(prompts)} prompts: base, with the style, and with the style words alone ...")
    pipe = StyleGuidedPipeline.from_pretrained("shapes")
    pipe.pipe.set_progress_bar_config(disable=args.quiet)
    name = pipe.load_style(style_file, name=example.style)
    common = dict(num_inference_steps=config.steps, seed=config.seed)
    base = pipe(prompts, styles={}, **common).images                      # all prompts in one batch
    styled = pipe(prompts, styles=[name], **common).images                # at the default style scale
    words = pipe([f"{p} in {example.style_prompt} style" for p in prompts], styles={}, **common).images
    exact = [Image.fromarray(example.look.apply(np.asarray(image))) for image in base]   # f(x_base)
    columns = [base, styled, exact, words]
    held = np.array([layout.held_out for layout in config.layouts])                                   # (N,)
    scores = {column: _fidelity(images, base, exact, held)
              for column, images in (("style from the pair", styled), ("family word alone", words))}
    zoom = lambda image: image.resize((image.width * config.zoom, image.height * config.zoom), resample=0)  # noqa: E731
    sheet = grid([[zoom(image) for image in row] for row in zip(*columns)], labels=list(COLUMNS),
                 font_size=config.font_size)
    path = atomic_write(out / "demo-grid.png", lambda temp: sheet.save(temp, format="PNG"))
    print(f"    {time.perf_counter() - start:.0f} s in all")
    print(f"3/3 rows (columns: {' | '.join(COLUMNS)}):")
    for i, (prompt, layout) in enumerate(zip(prompts, config.layouts)):
        print(f"  {i + 1}. {prompt}{'  (held out of base training)' if layout.held_out else ''}")
    print("fidelity to the exact member (the quality benchmark's formula: 1 exact, 0 no change):")
    for column, by_split in scores.items():
        print(f"  {column}: " + ", ".join(f"{score:+.2f} on the {split} prompts" for split, score in by_split.items()))
    print(f"wrote {path}")
    return path


def _fidelity(images, base, exact, held) -> dict[str, float]:
    """The benchmark's fidelity of ``images`` to ``exact`` = f(base), per split of the prompts (held out or not)."""
    from .bench.scores import fidelity_and_structure

    arrays = [np.stack([np.asarray(image) for image in column]) for column in (images, base, exact)]  # (N, H, W, 3)
    return {split: fidelity_and_structure(*(array[held == want] for array in arrays), readable=False)[0]
            for split, want in (("held-out", True), ("training", False)) if (held == want).any()}
