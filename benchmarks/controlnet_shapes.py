"""A line-sketch ControlNet for the embedded shapes model, and style guidance under it (issue 13's picture).

    python -m benchmarks.controlnet_shapes [--steps 800] [--pool 4096] [--out benchmarks/results] [--work DIR]

No ControlNet exists for the shapes model, so this script makes one and measures what it does:

1. train a ControlNet (``ControlNetModel.from_unet``, the UNet frozen) whose condition is the line sketch of a
   rendered scene (``paircustom.shapes.styles.line_sketch``), on 4096 rendered training scenes with their
   captions, with the base model's own v-prediction loss (10% empty captions);
2. train (or reuse from ``--work``, shared with ``paircustom.bench.quality``) the grayscale style of the trio pair
   with the model's default pair training;
3. draw 8 scenes (every other one a held-out combination) from their captions, same seed each: without the
   ControlNet, with it (condition: the scene's line sketch), and with it plus the style (scale 3);
4. score how well each follows the sketch: IoU of the foreground (``scores.foreground``) with the scene's, and
   the share of samples the analyzer reads as exactly the scene.

Writes ``controlnet-shapes.md`` and ``controlnet-shapes.png`` (per scene: sketch, no ControlNet, ControlNet,
ControlNet + style) under ``--out``.  About 11 minutes of training on one CPU thread.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from paircustom.bench.methods import METHODS
from paircustom.bench.quality import QualityConfig, train_style
from paircustom.bench.scores import foreground, iou
from paircustom.config.generate import GENERATE
from paircustom.files.images import atomic_write, from_uint8, grid
from paircustom.models.forward import prediction_target, training_scheduler
from paircustom.sampling.pipeline import StyleGuidedPipeline
from paircustom.shapes.analyzer import analyze
from paircustom.shapes.styles import line_sketch
from paircustom.shapes.world import random_scene, render, render_batch

SCENES, BATCH = 8, 32


def sketches(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 scenes -> (N, 3, H, W) control images in [0, 1], as diffusers' ControlNet pipelines
    pass them."""
    return torch.from_numpy(np.stack([line_sketch(x) for x in images])).permute(0, 3, 1, 2).float() / 255


def train_controlnet(pipe, steps: int, lr: float, pool: int, seed: int = 0):
    """ControlNet from the pipeline's UNet (which stays frozen), trained on sketches of rendered scenes."""
    from diffusers import ControlNetModel

    unet = pipe.unet.requires_grad_(False)
    # Two stride-2 blocks: 64x64 control images -> the 16x16 latent grid of this VAE (SD's default has three).
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32, 96))
    images, scenes = render_batch(np.random.default_rng([seed, 1]), pool)
    with torch.no_grad():
        latents = (
            torch.cat([pipe.vae.encode(from_uint8(images[i : i + 256])).latent_dist.mean for i in range(0, pool, 256)])
            * pipe.vae.config.scaling_factor
        )  # (N, C, h, w)
        ids = pipe.tokenizer(
            [s.layout.caption for s in scenes] + [""],
            padding="max_length",
            truncation=True,
            max_length=pipe.tokenizer.model_max_length,
            return_tensors="pt",
        ).input_ids
        text = torch.cat([pipe.text_encoder(ids[i : i + 512])[0] for i in range(0, len(ids), 512)])  # (N + 1, L, D)
    control, empty, text = sketches(images), text[-1:], text[:-1]
    scheduler = training_scheduler(pipe)
    optimizer = torch.optim.AdamW(controlnet.parameters(), lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        index = torch.randint(0, pool, (BATCH,), generator=generator)
        x0, cond = latents[index], text[index].clone()
        cond[torch.rand(BATCH, generator=generator) < 0.1] = empty  # caption dropout, for CFG
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (BATCH,), generator=generator)
        x_t = scheduler.add_noise(x0, noise, t)
        down, mid = controlnet(x_t, t, cond, controlnet_cond=control[index], return_dict=False)
        prediction = unet(x_t, t, cond, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
        loss = F.mse_loss(prediction, prediction_target(scheduler, x0, noise, t))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(controlnet.parameters(), 1.0)
        optimizer.step()
        if step % 100 == 0:
            print(f"controlnet step {step}: loss {loss.item():.4f}", flush=True)
    return controlnet.eval()


def follows(samples: np.ndarray, images: np.ndarray, scenes) -> tuple[float, float]:
    """(foreground IoU with the scenes, share read back exactly as the scene by the analyzer)."""
    overlap = float(iou(foreground(samples), foreground(images)).mean())
    return overlap, float(np.mean([analyze(y) == s.layout for y, s in zip(samples, scenes)]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=800, help="ControlNet training steps (batch 32)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--pool", type=int, default=4096, help="rendered training scenes of the ControlNet")
    parser.add_argument("--pair-steps", type=int, default=None, help="style training steps (default: the model's)")
    parser.add_argument("--sampling-steps", type=int, default=25, help="DDIM steps per sample")
    parser.add_argument("--out", default="benchmarks/results", type=Path)
    parser.add_argument(
        "--work",
        default=None,
        type=Path,
        help="folder for the ControlNet and the style file (reused when present; default: a temporary folder)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as temp:
        run(args, args.work or Path(temp))


def run(args, work: Path) -> None:
    started = time.time()
    guided = StyleGuidedPipeline.from_pretrained("shapes")
    folder = work / "controlnet"
    if not (folder / "config.json").is_file():
        train_controlnet(guided.pipe, args.steps, args.lr, args.pool).save_pretrained(folder)
    trained = time.time() - started
    controlled = StyleGuidedPipeline.from_pretrained("shapes", controlnet=folder)
    quality = QualityConfig(work=str(work), max_steps=args.pair_steps)
    style = controlled.load_style(train_style(quality, "grayscale", METHODS["pair-sg"], work))
    for pipe in (guided, controlled):
        pipe.pipe.set_progress_bar_config(disable=True)

    rng = np.random.default_rng(21)
    scenes = [random_scene(rng, held_out=k % 2 == 1) for k in range(SCENES)]
    images = np.stack([render(s) for s in scenes])  # (8, 64, 64, 3)
    controls = [Image.fromarray(line_sketch(x)) for x in images]

    def draw(pipe, styles: dict, controlled: bool) -> np.ndarray:  # one seeded sample per scene, from its caption
        return np.stack(
            [
                np.asarray(
                    pipe(
                        scene.layout.caption,
                        styles=styles,
                        seed=k,
                        num_inference_steps=args.sampling_steps,
                        **({"control_image": controls[k]} if controlled else {}),
                    ).images[0]
                )
                for k, scene in enumerate(scenes)
            ]
        )

    rows = {
        "no ControlNet": draw(guided, {}, False),
        "ControlNet": draw(controlled, {}, True),
        f"ControlNet + grayscale style (scale {GENERATE.style_scale:g})": draw(
            controlled, {style: GENERATE.style_scale}, True
        ),
    }
    lines = ["| samples | foreground IoU with the sketched scene | analyzer reads the scene exactly |", "|---|---|---|"]
    for label, samples in rows.items():
        overlap, exact = follows(samples, images, scenes)
        lines.append(f"| {label} | {overlap:.2f} | {exact:.2f} |")
    pictures = [[controls[k], *(Image.fromarray(samples[k]) for samples in rows.values())] for k in range(SCENES)]
    sheet = grid([sum(pictures[:4], []), sum(pictures[4:], [])])
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "controlnet-shapes.png", lambda temp: sheet.save(temp, format="PNG"))
    text = (
        f"# A line-sketch ControlNet on the shapes model\n\nCommand: `python -m benchmarks.controlnet_shapes "
        f"--steps {args.steps} --pool {args.pool}` ({(time.time() - started) / 60:.1f} min, of which "
        f"{trained / 60:.1f} training the ControlNet). {SCENES} scenes (half held out), {args.sampling_steps} "
        f"DDIM steps, CFG {GENERATE.guidance_scale:g}, one seed each.\n\n"
        + "\n".join(lines)
        + "\n\nPer scene: the control sketch, no ControlNet, ControlNet, ControlNet + style:"
        "\n\n![samples](controlnet-shapes.png)\n"
    )
    atomic_write(args.out / "controlnet-shapes.md", lambda temp: Path(temp).write_text(text))
    print(text)


if __name__ == "__main__":
    main()
