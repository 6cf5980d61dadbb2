"""Does one pair determine the style? (issue 9's "identifiability", measured in the shapes model's latent space)

    python -m experiments.style_identifiability [--model shapes] [--scenes 64] [--fit-scenes 256] [--threads 2]
                                               [--out FILE]

Each benchmark style f is a fixed image function. Here we ask whether, in the model's VAE latent space, f is a
simple map that the benchmark's training pair(s) already pin down. The candidate map is the simplest one: per
latent pixel, an affine map of the latent channels,

    z_f = z + D [z; 1]          z = E(x) (C,) at one latent pixel, D (C, C+1) shared by all pixels

fitted by ridge least squares (the smallest D that explains the data), then applied to the latents of held-out
rendered scenes and decoded. Each column is scored with ``paircustom.bench.quality``'s pooled fidelity
1 - sum|y - f(x)| / sum|x - f(x)| against the exact answer f(x):

    vae ceiling      y = VAE(f(x)), the best any denoiser can do through this VAE (the benchmark's vae-ceiling row)
    map, many        D fitted on ``--fit-scenes`` rendered training scenes: how far a per-pixel latent map reaches
    map, 1 pair      D fitted on the benchmark's one training pair (the trio scene and f of it)
    map, 3 pairs     D fitted on the benchmark's three pairs (trio, then ``MORE_SCENES``)

If "map, 1 pair" is close to the ceiling, one pair identifies the style: what the pair leaves open is not the
limit, and a method that fails on that style fails through what its adapter learns, not through the data.
Pixelation is spatial (8-pixel blocks across 2x2 latent pixels), so a per-pixel map is not expected to reach it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from paircustom.bench.scores import fidelity_and_structure
from paircustom.config.model_names import resolve_model
from paircustom.files.images import to_uint8
from paircustom.shapes.data import encode_pool
from paircustom.shapes.evaluate import vae_round_trip
from paircustom.shapes.examples import EXAMPLES, MORE_SCENES
from paircustom.shapes.styles import STYLES
from paircustom.shapes.world import random_scene, render

RIDGE = 1e-3  # ridge weight on D: the fit's least-norm tie-break where the pair leaves directions open


def encode(vae, images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, C, h, w) encoder means (unscaled: an affine fit does not care)."""
    return encode_pool(vae, images)[0]


@torch.no_grad()
def decode(vae, latents: torch.Tensor) -> np.ndarray:
    """(N, C, h, w) -> (N, H, W, 3) uint8."""
    return np.concatenate([to_uint8(vae.decode(latents[i : i + 64]).sample) for i in range(0, len(latents), 64)])


def pixels(latents: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N·h·w, C + 1): one row per latent pixel, with a constant 1 for the offset."""
    rows = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    return torch.cat([rows, torch.ones(len(rows), 1)], dim=1)


def fit_map(plain: torch.Tensor, styled: torch.Tensor) -> torch.Tensor:
    """D (C + 1, C) of z_f = z + [z; 1] D, by ridge least squares over every latent pixel of the pairs."""
    X = pixels(plain)
    Y = (pixels(styled) - X)[:, :-1]  # z_f - z, the constant column dropped
    return torch.linalg.solve(X.T @ X + RIDGE * torch.eye(X.shape[1]), X.T @ Y)


def apply_map(D: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """z + [z; 1] D at every latent pixel: (N, C, h, w) -> (N, C, h, w)."""
    n, c, h, w = latents.shape
    moved = (pixels(latents) @ D).reshape(n, h, w, c).permute(0, 3, 1, 2)
    return latents + moved


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="shapes", help="model whose VAE is probed (default: the embedded model)")
    parser.add_argument("--scenes", type=int, default=64, help="held-out rendered scenes scored (default 64)")
    parser.add_argument("--fit-scenes", type=int, default=256, help="training scenes for 'map, many' (default 256)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(resolve_model(args.model)[0], subfolder="vae").eval()

    rng = np.random.default_rng(0)
    many = np.stack([render(random_scene(rng, held_out=False)) for _ in range(args.fit_scenes)])  # (F, H, W, 3)
    held_out = np.stack([render(random_scene(rng, held_out=True)) for _ in range(args.scenes)])  # (N, H, W, 3)
    pairs = np.stack([render(scene) for scene in (EXAMPLES["trio"].scene, *MORE_SCENES[:2])])  # (3, H, W, 3)
    z_many, z_held_out, z_pairs = encode(vae, many), encode(vae, held_out), encode(vae, pairs)

    lines = ["| style | vae ceiling | map, many | map, 1 pair | map, 3 pairs |", "|---|---|---|---|---|"]
    for name, style in STYLES.items():
        target = np.stack([style.apply(x) for x in held_out])  # f(x), the exact answer

        def fidelity(images: np.ndarray) -> float:
            return fidelity_and_structure(images, held_out, target, readable=False)[0]

        def by_map(plain: np.ndarray, z_plain: torch.Tensor) -> float:
            D = fit_map(z_plain, encode(vae, np.stack([style.apply(x) for x in plain])))
            return fidelity(decode(vae, apply_map(D, z_held_out)))

        scores = [
            fidelity(vae_round_trip(vae, target)),
            by_map(many, z_many),
            by_map(pairs[:1], z_pairs[:1]),
            by_map(pairs, z_pairs),
        ]
        lines.append(f"| {name} | " + " | ".join(f"{s:+.3f}" for s in scores) + " |")
        print(lines[-1], flush=True)
    if args.out:
        header = (
            f"`python -m experiments.style_identifiability --model {args.model} --scenes {args.scenes} "
            f"--fit-scenes {args.fit_scenes}`: pooled fidelity on {args.scenes} held-out rendered scenes.\n\n"
        )
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(header + "\n".join(lines) + "\n")
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
