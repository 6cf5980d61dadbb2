"""``paircustom demo``: the whole method on the embedded shapes model, on a laptop CPU.

1. take a shipped example pair (a red circle, a yellow square and a white triangle on blue, and its
   posterized version: every channel pushed to 0 or 255, the benchmark style that transfers best),
2. train a style from it with the model's own fast defaults,
3. generate several prompts (some never seen in the base model's training)
   with and without the style, same seed, and write one comparison grid whose third column is the exact answer:
   the style's own image function applied to the base model's image.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .config.generate import GENERATE
from .sampling.pipeline import StyleGuidedPipeline
from .files.images import atomic_write, grid
from .shapes.world import Layout
from .training.trainer import TrainConfig, train_pair


@dataclass(frozen=True)
class DemoConfig:
    example: str = "trio_posterized"     # a key of paircustom.shapes.examples.EXAMPLES
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
    zoom: int = 2                         # the grid's pixels per model pixel


def run_demo(args, config: DemoConfig = DemoConfig()) -> Path:
    from .shapes.examples import EXAMPLES, example_paths
    from .bench.scores import fidelity_and_structure
    from .shapes.styles import STYLES

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    example = EXAMPLES[config.example]
    content, style = example_paths(config.example)
    # The embedded model is so small that one thread is fastest; more threads stall badly (10x here)
    # whenever another process is busy on the same cores.
    torch.set_num_threads(1)
    start = time.perf_counter()
    print(f"1/3 training the '{example.style}' style from {content.name} and {style.name} ...")
    style_file = train_pair(TrainConfig(
        str(content), str(style), subject=example.subject, style=example.style_prompt, model="shapes",
        output=str(out / f"{config.example}-{example.style}.safetensors"), max_steps=config.train_steps,
        overwrite=True, progress=not args.quiet))
    prompts = [layout.caption for layout in config.layouts]
    print(f"    {time.perf_counter() - start:.0f} s")
    print(f"2/3 generating {len(prompts)} prompts with and without the style ...")
    pipe = StyleGuidedPipeline.from_pretrained("shapes")
    pipe.pipe.set_progress_bar_config(disable=args.quiet)
    name = pipe.load_style(style_file, name=example.style)
    common = dict(num_inference_steps=config.steps, seed=config.seed)
    base = pipe(prompts, styles={}, **common).images                      # all prompts in one batch
    styled = pipe(prompts, styles=[name], **common).images                # at the default style scale
    exact = [Image.fromarray(STYLES[example.style].apply(np.asarray(image))) for image in base]   # f(x_base)
    rows = [list(row) for row in zip(base, styled, exact)]
    arrays = [np.stack([np.asarray(image) for image in images]) for images in (styled, base, exact)]  # (N, H, W, 3)
    held = np.array([layout.held_out for layout in config.layouts])                                   # (N,)
    scores = {split: fidelity_and_structure(*(array[held == want] for array in arrays), readable=False)[0]
              for split, want in (("held-out", True), ("training", False)) if (held == want).any()}
    sheet = grid(rows)
    sheet = sheet.resize((sheet.width * config.zoom, sheet.height * config.zoom), resample=0)
    path = atomic_write(out / "demo-grid.png", lambda temp: sheet.save(temp, format="PNG"))
    print(f"    {time.perf_counter() - start:.0f} s in all")
    print("3/3 rows (left: base model; middle: with the learned style; right: the exact style of the left image):")
    for i, (prompt, layout) in enumerate(zip(prompts, config.layouts)):
        print(f"  {i + 1}. {prompt}{'  (held out of base training)' if layout.held_out else ''}")
    print("fidelity of the middle column to the right one (the quality benchmark's formula: 1 exact, 0 no change): "
          + ", ".join(f"{score:+.2f} on the {split} prompts" for split, score in scores.items()))
    print(f"wrote {path}")
    return path
