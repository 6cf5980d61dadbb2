"""Does the base model draw the shape its caption names? (issue 9: held-out shape adherence, 85% asked)

    python -m experiments.shape_words [--model shapes] [--scenes 24] [--draws 16] [--threads 2] [--out FILE]

Two measurements of the same question, for each of the four shapes:

1. the analyzer's shape cue, the fill ratio of an object's mask in its bounding box (square ~1, circle ~0.79,
   triangle ~0.5, ring hollow; ``analyzer.classify_shape`` calls >= 0.9 a square), on rendered one-object scenes,
   on the same scenes through the VAE, and on the model's own samples of their captions (2 seeds, 50 DDIM steps,
   CFG 5): does the model draw a square differently from a circle at all?
2. the denoising loss of those rendered scenes (the training objective, the same noise and timesteps in every
   cell) under their caption and under the caption with the shape word swapped for each other shape: does the
   UNet's prediction depend on the shape word? A word the UNet ignores costs nothing when swapped.
3. what the UNet is given: the cosine similarity of the text encoder's output at the shape word between the
   captions "a photo of a red <shape> on a blue background" of every two shapes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from experiments.style_denoising_probe import denoising_loss
from paircustom.sampling.pipeline import StyleGuidedPipeline
from paircustom.shapes import analyzer
from paircustom.shapes.evaluate import generate, vae_round_trip
from paircustom.shapes.world import SHAPES, Layout, render_batch


def fill_ratio(image: np.ndarray, colour: int) -> float | None:
    """The fill ratio the analyzer reads for ``colour``'s object in ``image`` (64, 64, 3), or None if absent."""
    mask = analyzer.object_mask(*analyzer.nearest_palette(image), colour)
    return None if mask is None else float(analyzer.bounding_box(mask).mean())


def fill_row(images: np.ndarray, layouts: list[Layout], shape: int) -> str:
    """'median (10th-90th percentile), share >= the square threshold' of ``shape``'s objects in ``images``."""
    fills = np.array(
        [
            f
            for image, layout in zip(images, layouts)
            if layout.objects[0][1] == shape
            if (f := fill_ratio(image, layout.objects[0][0])) is not None
        ]
    )
    if not len(fills):
        return "none read"
    low, mid, high = np.percentile(fills, [10, 50, 90])
    return f"{mid:.2f} ({low:.2f}-{high:.2f}), {np.mean(fills >= analyzer.SQUARE_FILL):.0%}"


def swapped(caption: str, old: int, new: int) -> str:
    return caption.replace(f" {SHAPES[old]} ", f" {SHAPES[new]} ", 1)


@torch.no_grad()
def word_similarity(pipe) -> np.ndarray:
    """(S, S) cosine similarity of the text encoder's last hidden state at the shape word, between shapes."""
    captions = [f"a photo of a red {shape} on a blue background" for shape in SHAPES]
    ids = pipe.tokenizer(
        captions, padding="max_length", max_length=pipe.tokenizer.model_max_length, return_tensors="pt"
    ).input_ids  # (S, L)
    position = len(pipe.tokenizer("a photo of a red").input_ids) - 1  # the shape word, after BOS
    assert (ids[:, position] != ids[0, position]).sum() == len(SHAPES) - 1, "each caption its own shape token"
    states = pipe.text_encoder(ids.to(pipe.text_encoder.device))[0][:, position].float()  # (S, D)
    states = torch.nn.functional.normalize(states, dim=-1)
    return (states @ states.T).cpu().numpy()


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="shapes")
    parser.add_argument("--scenes", type=int, default=24, help="rendered one-object training scenes per shape")
    parser.add_argument("--draws", type=int, default=16, help="(noise, t) draws per loss")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps of the samples")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the report (Markdown) here too")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    guided = StyleGuidedPipeline.from_pretrained(args.model)
    guided.pipe.set_progress_bar_config(disable=True)

    images, scenes = render_batch(np.random.default_rng(11), 64 * args.scenes, objects=1)
    picks = [
        [i for i, scene in enumerate(scenes) if scene.layout.objects[0][1] == s][: args.scenes]
        for s in range(len(SHAPES))
    ]
    order = [i for pick in picks for i in pick]
    images, layouts = images[order], [scenes[i].layout for i in order]  # (N, 64, 64, 3), grouped by shape
    seeds = (0, 1)
    samples = generate(guided.pipe, [layout.caption for layout in layouts], seeds, args.steps)
    sampled_layouts = [layout for layout in layouts for _ in seeds]
    round_trip = vae_round_trip(guided.pipe.vae, images)

    command = " ".join(["python -m experiments.shape_words", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        f"Generated by `{command}` on `{args.model}`: {args.scenes} rendered one-object training scenes per shape.",
        "",
        "Fill ratio of the object's mask in its bounding box: median (10th-90th percentile), share >= "
        f"{analyzer.SQUARE_FILL} (read as square)",
        "",
        "| prompted shape | rendered | rendered through the VAE | "
        f"model's samples of the caption ({len(seeds)} seeds, {args.steps} DDIM steps) |",
        "|---|---|---|---|",
    ]
    for s, shape in enumerate(SHAPES):
        lines.append(
            f"| {shape} | {fill_row(images, layouts, s)} | {fill_row(round_trip, layouts, s)} | "
            f"{fill_row(samples, sampled_layouts, s)} |"
        )
    lines += [
        "",
        "Denoising loss of the rendered scenes under their caption, and with the shape word swapped "
        f"({args.draws} draws of noise and t, the same in every cell)",
        "",
        "| shape | own word | " + " | ".join(f"as {shape}" for shape in SHAPES) + " |",
        "|---" * (len(SHAPES) + 2) + "|",
    ]
    for s in range(len(SHAPES)):
        mine = [k for k, layout in enumerate(layouts) if layout.objects[0][1] == s]
        chunk, captions = images[mine], [layouts[k].caption for k in mine]  # this shape's scenes
        losses = [
            denoising_loss(guided, chunk, [swapped(c, s, other) for c in captions], None, args.draws)
            for other in range(len(SHAPES))
        ]  # other == s: the own caption, unchanged
        cells = ["-" if other == s else f"{loss:.4f}" for other, loss in enumerate(losses)]
        lines.append(f"| {SHAPES[s]} | {losses[s]:.4f} | " + " | ".join(cells) + " |")
    similarity = word_similarity(guided.pipe)
    lines += [
        "",
        "Cosine similarity of the text encoder's output at the shape word (\"a photo of a red <shape> on a "
        'blue background")',
        "",
        "| shape | " + " | ".join(SHAPES) + " |",
        "|---" * (len(SHAPES) + 1) + "|",
    ]
    lines += [f"| {SHAPES[s]} | " + " | ".join(f"{v:.2f}" for v in row) + " |" for s, row in enumerate(similarity)]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text("# Does the base model draw the shape its caption names?\n\n" + report)
    return report


if __name__ == "__main__":
    main()
