"""Does a style LoRA learned from one pair generalise as a denoiser? (issue 9's diagnosis on the shapes model)

    python -m experiments.style_denoising_probe [--styles inverted,grayscale] [--scenes 64] [--train KEY=VALUE,...]
                                               [--model shapes] [--threads 2] [--out FILE]

Trains each style on ``paircustom.bench.quality``'s pair (the trio scene and f(trio); the model's default
settings unless ``--train`` overrides them), then measures the v- (or eps-) prediction loss of the DDPM
objective on held-out rendered scenes x, with the same noise and timesteps for every row of the table:

    base on x        the base model on the plain scene, plain caption (how well it knows the world)
    base on f(x)     the base model on the styled scene, caption + the style suffix
    style on f(x)    base + Δs (the style LoRA at scale 1) on the same
    style on pair    base + Δs on the training style image f(trio), same prompt form (in-sample)
    base on pair     the base model on the same

and, once, how much the base model is disturbed by pair training's content prompt: its loss on the trio content
image under the trio caption, the caption with the token V* inserted ("a photo of a sbu ..."), and the caption
with a style suffix appended.

If Δs captured the style, "style on f(x)" would drop from "base on f(x)" towards "base on x", as "style on pair"
does for the training image.  Sampling (style guidance) can only use what the denoiser has learned, so this
separates "the LoRA did not generalise" from "guidance did not use it".
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from paircustom.bench.methods import METHODS
from paircustom.bench.quality import QualityConfig, parse_overrides, train_style
from paircustom.files.images import from_uint8
from paircustom.models.forward import prediction_target, training_scheduler
from paircustom.sampling.pipeline import StyleGuidedPipeline
from paircustom.shapes.examples import EXAMPLES
from paircustom.shapes.styles import STYLES, styled_caption
from paircustom.shapes.world import random_scene, render


@torch.no_grad()
def denoising_loss(
    guided: StyleGuidedPipeline,
    images: np.ndarray,
    prompts: list[str],
    style: str | None,
    draws: int = 4,
    seed: int = 5,
) -> float:
    """Mean training loss of ``images`` (N, 64, 64, 3) under ``prompts``, through ``style``'s LoRA or none."""
    pipe, family, unet = guided.pipe, guided.family, guided.denoiser
    latent_dist = pipe.vae.encode(from_uint8(images)).latent_dist
    x0, _ = family.vae_latents(pipe.vae, latent_dist.mean, latent_dist.std)  # (N, C, h, w)
    cond, _ = family.encode(pipe, prompts, x0.device)
    scheduler, generator, total = training_scheduler(pipe), torch.Generator().manual_seed(seed), 0.0
    if style is not None:
        unet.enable_lora()
        unet.set_adapters([style], [1.0])
    try:
        for _ in range(draws):  # the same (eps, t) draws for every call with the same seed
            noise = torch.randn(x0.shape, generator=generator)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),), generator=generator)
            prediction = family.predict(unet, scheduler.add_noise(x0, noise, t), t, cond)
            target = prediction_target(scheduler, x0, noise, t)
            total += torch.nn.functional.mse_loss(prediction.float(), target.float()).item() / draws
    finally:
        unet.disable_lora()
    return total


def token_losses(guided: StyleGuidedPipeline, draws: int = 64) -> dict[str, float]:
    """The base model's loss on the trio content image under its caption, the caption with pair training's token
    inserted where the content prompt puts it, and the caption with a style suffix."""
    trio = EXAMPLES["trio"]
    prompts = {
        "caption": trio.caption,
        "with V* inserted": trio.caption.replace("a photo of a ", "a photo of a sbu ", 1),
        "with a style suffix": styled_caption(trio.caption, STYLES["inverted"]),
    }
    content = render(trio.scene)[None]
    return {label: denoising_loss(guided, content, [prompt], None, draws=draws) for label, prompt in prompts.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styles", default=",".join(STYLES), help="comma-separated benchmark styles")
    parser.add_argument("--scenes", type=int, default=64, help="held-out scenes (seed 11)")
    parser.add_argument(
        "--train", type=parse_overrides, default=(), help="pair-training overrides, e.g. learning_rate=3e-3"
    )
    parser.add_argument("--model", default="shapes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = QualityConfig(model=args.model, train=args.train)
    guided = StyleGuidedPipeline.from_pretrained(args.model)
    rng = np.random.default_rng(11)
    scenes = [random_scene(rng, held_out=True) for _ in range(args.scenes)]
    plain = np.stack([render(scene) for scene in scenes])  # (N, 64, 64, 3)
    captions = [scene.layout.caption for scene in scenes]
    trio = EXAMPLES[config.pair]
    trio_image = render(trio.scene)  # (64, 64, 3)
    lines = [
        "| style | base on x | base on f(x) | style on f(x) | style on pair | base on pair |",
        "|---|---|---|---|---|---|",
    ]
    base_x = denoising_loss(guided, plain, captions, None)
    token_line = (
        "Base loss on the trio content image: "
        + ", ".join(f"{label} {loss:.4f}" for label, loss in token_losses(guided).items())
        + "."
    )
    print(token_line, flush=True)
    with tempfile.TemporaryDirectory() as work:
        for style in args.styles.split(","):
            f = STYLES[style]
            name = guided.load_style(train_style(config, style, METHODS["pair-sg"], Path(work)), name=style)
            styled, prompts = np.stack([f.apply(x) for x in plain]), [styled_caption(c, f) for c in captions]
            pair_image, pair_prompt = f.apply(trio_image)[None], [styled_caption(trio.caption, f)]
            row = [
                base_x,
                denoising_loss(guided, styled, prompts, None),
                denoising_loss(guided, styled, prompts, name),
                denoising_loss(guided, pair_image, pair_prompt, name, draws=64),
                denoising_loss(guided, pair_image, pair_prompt, None, draws=64),
            ]
            lines.append(f"| {style} | " + " | ".join(f"{v:.4f}" for v in row) + " |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n\n" + token_line + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
