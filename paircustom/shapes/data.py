"""What the shapes model's base training sees: the VAE's images and the UNet stage's captioned pool.

Every step draws its data from a generator seeded by (seed, stage, step) (``step_rng``), so a resumed run
repeats it exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import AutoencoderKL
from tqdm import tqdm

from ..files.images import from_uint8
from .base_config import BaseTrainConfig
from .families import FAMILIES
from .styles import KNOWN_STYLES, STYLES, styled_caption
from .world import SIZE, render, render_batch, random_scene

# Words the base model learns to read past ("a photo of a dog red circle ..." draws a red circle): pair training's
# content prompt puts its token V* there, and a model that has only seen the templated captions misreads every
# word after an inserted one (measured on run 5: loss 0.28 with "sbu" inserted vs 0.10 without).  V* ("sbu") and
# the style words are not among them.
FILLER_WORDS = ("dog", "cat", "man", "woman", "portrait", "the", "an", "with")
CAPTION_START = "a photo of a "


def step_rng(config: BaseTrainConfig, stage: int, step: int) -> np.random.Generator:
    """The data of one step depends on (seed, stage, step) alone, so resuming repeats it exactly."""
    return np.random.default_rng([config.seed, stage, step])


def texture(rng: np.random.Generator) -> np.ndarray:
    """A random mosaic: blocks of 2-16 pixels in random colours, half of them in a random palette of 2-6."""
    block = int(rng.choice([2, 4, 8, 16]))
    cells = SIZE // block
    if rng.random() < 0.5:
        colours = rng.integers(0, 256, size=(int(rng.integers(2, 7)), 3))
        grid = colours[rng.integers(len(colours), size=(cells, cells))]
    else:
        grid = rng.integers(0, 256, size=(cells, cells, 3))
    return np.repeat(np.repeat(grid, block, axis=0), block, axis=1).astype(np.uint8)


def vae_images(rng: np.random.Generator, count: int, config: BaseTrainConfig) -> np.ndarray:
    """What the VAE trains on -> (N, 64, 64, 3) uint8: scenes (plain, known and benchmark styles) and textures."""
    looks = [None, *KNOWN_STYLES.values(), *STYLES.values(), *STYLES.values()]  # benchmark styles weighted x2
    families = list(FAMILIES.values()) if config.family_share else []
    images = []
    for _ in range(count):
        if rng.random() < 0.05:
            images.append(texture(rng))
            continue
        scene = random_scene(rng, held_out=bool(rng.random() < 0.15))
        recolour = rng.random() < config.random_colour_share  # any colour, so colour is not learned as 9 classes
        image = render(scene, rng.integers(0, 256, size=(9, 3)).astype(np.uint8) if recolour else None)
        look = looks[rng.integers(len(looks))]
        if families and rng.random() < 0.5:  # half of the images in a random member of a style family
            look = families[rng.integers(len(families))].random_member(rng)
        images.append(image if look is None else look.apply(image))
    return np.stack(images)


@torch.no_grad()
def encode_pool(vae: AutoencoderKL, images: np.ndarray, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 64, 64, 3) uint8 -> latent means and stds, each (N, C, h, w), on ``device``."""
    means, stds = [], []
    for start in tqdm(range(0, len(images), 256), desc="encode pool", mininterval=20):
        dist = vae.encode(from_uint8(images[start : start + 256]).to(device)).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def training_pool(config: BaseTrainConfig) -> tuple[np.ndarray, list[str]]:
    """The UNet stage's images and captions: training scenes, a share of them in a known style, and a share of
    the captions with a filler word (see ``FILLER_WORDS``)."""
    rng = np.random.default_rng([config.seed, 2])
    images, scenes = render_batch(rng, config.pool_size)
    captions = [scene.layout.caption for scene in scenes]
    known = list(KNOWN_STYLES.values())
    styled = rng.random(config.pool_size) < config.known_style_share  # (N,)
    for i in np.nonzero(styled)[0]:
        style = known[rng.integers(len(known))]
        images[i], captions[i] = style.apply(images[i]), styled_caption(captions[i], style)
    if config.filler_share:       # drawn after the known styles, so runs without fillers keep their pool
        for i in np.nonzero(rng.random(config.pool_size) < config.filler_share)[0]:
            filler = FILLER_WORDS[rng.integers(len(FILLER_WORDS))]
            captions[i] = CAPTION_START + filler + " " + captions[i].removeprefix(CAPTION_START)
    if config.family_share:       # its own generator, so runs without families keep their pool
        add_families(np.random.default_rng([config.seed, 2, 1]), images, captions, ~styled, config)
    return images, captions


def family_weights(focus: str) -> np.ndarray | None:
    """Drawing probabilities over ``FAMILIES`` with the comma-separated ``focus`` families 3x as likely; None when
    ``focus`` is empty (uniform, drawn as before)."""
    names = [name.strip() for name in focus.split(",") if name.strip()]
    if not names:
        return None
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown family {unknown[0]!r} in --family-focus; choose from {', '.join(FAMILIES)}")
    weights = np.array([3.0 if name in names else 1.0 for name in FAMILIES])
    return weights / weights.sum()


def add_families(rng: np.random.Generator, images: np.ndarray, captions: list[str], free: np.ndarray,
                 config: BaseTrainConfig) -> None:
    """Draw a ``family_share`` of the ``free`` (N,) pool entries in place as a random member of a random family,
    captioned with the member's words (``member_caption_share`` of them) or with the family word alone."""
    families = list(FAMILIES.values())
    weights = family_weights(config.family_focus)
    for i in np.nonzero(free & (rng.random(len(images)) < config.family_share))[0]:
        pick = rng.integers(len(families)) if weights is None else rng.choice(len(families), p=weights)
        member = families[pick].random_member(rng)
        style = member.style if rng.random() < config.member_caption_share else member.family_style
        images[i], captions[i] = member.apply(images[i]), styled_caption(captions[i], style)
