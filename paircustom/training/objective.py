"""The pair-training objective (paper Eqs. 6-8), one fused forward pass per sample of noise.

Symbols, as in the paper:

    x0_c, x0_s    latents of the content / style image         latents[0], latents[1]
    eps, t        ONE noise sample and ONE timestep, shared     noise, timesteps
    x_t           noisy latents  sqrt(a_t) x0 + sqrt(1-a_t) eps noisy
    c_c, c_s      content / style prompt embeddings            pair.cond rows 0 / 1
    L_content  = || eps - eps[θ0 + Δc](x_t(x0_c), c_c, t) ||²
    L_style    = || eps - eps[θ0 + sg(Δc) + Δs](x_t(x0_s), c_s, t) ||²

(with "eps" replaced by the velocity v when the scheduler predicts v, as SD 2.x does).

Flow-matching families (SD3, Flux; ``FlowMatching``): x_t = (1 - s) x0 + s eps and the target
is eps - x0, with one sigma s for all rows as with t.

x_t and the target always come from the DDPM forward process of the model's own noise
schedule (``training_scheduler``), never from the pipeline's sampling scheduler: SDXL's
EulerDiscreteScheduler noises in sigma space (x0 + sigma·eps) and, once it has sampled,
reuses its step index for every timestep.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from ..adapters.layers import Route, set_route
from ..models.forward import FlowMatching, forward_process

if TYPE_CHECKING:  # the families choose their objective here, so this module must not import them
    from ..models.family import Conditioning, Family


@dataclass
class EncodedPair:
    """What training needs of the pair, computed once: the VAE and text encoders are not used again."""

    latent_mean: torch.Tensor  # (2K, C, h, w) content, style of pair 0, then of pair 1, ...; normalised as
    #   the family's denoiser takes them (``family.vae_latents``)
    latent_std: torch.Tensor  # (2K, C, h, w)
    cond: Conditioning  # 2K rows: c_content, c_style of each pair (SDXL: with that image's size)

    @property
    def pairs(self) -> int:
        return len(self.latent_mean) // 2

    @staticmethod
    @torch.no_grad()
    def encode(pipe, family, pixels: list[torch.Tensor], prompts: list[str], sizes: list, device) -> EncodedPair:
        """``pixels`` (3, H, W) each: content, style of pair 0, then of pair 1, ...; ``prompts``: one per image, in
        the same order; ``sizes``: each image's ``family.Size`` (SDXL's micro-conditioning)."""
        batch = torch.stack(pixels).to(device, pipe.vae.dtype)  # (2K, 3, H, W)
        latent_dist = pipe.vae.encode(batch).latent_dist
        mean, std = family.vae_latents(pipe.vae, latent_dist.mean, latent_dist.std)
        cond, _ = family.encode(pipe, prompts, device)  # (2K, T, D)
        cond = family.add_size(pipe, cond, sizes)
        return EncodedPair(mean, std, cond)


class RowKind(Enum):
    """What a training row computes: the loss of denoising ``image`` (0 content, 1 style) under ``prompt``
    (0 content, 1 style) through the adapters of ``route``; ``column`` is its side of the trainer's
    (content loss, style loss) history."""

    #                           label         image prompt route                        column
    CONTENT = ("content", 0, 0, Route.CONTENT, 0)  # L_content, θ0 + Δc
    STYLE_OVER_FROZEN_CONTENT = ("style", 1, 1, Route.FROZEN_CONTENT_AND_STYLE, 1)  # L_style, θ0 + sg(Δc) + Δs
    STYLE_ALONE = ("style-only", 1, 1, Route.STYLE_ALONE, 1)  # DreamBooth-LoRA baseline, θ0 + Δs
    SLIDER_PLUS = ("slider+", 1, 0, Route.STYLE_ALONE, 1)  # Concept Sliders: the style image at +Δs ...
    SLIDER_MINUS = ("slider-", 0, 0, Route.MINUS_STYLE, 0)  # ... the content image at -Δs, both content prompt

    def __init__(self, label: str, image: int, prompt: int, route: Route, column: int):
        self.label, self.image, self.prompt, self.route, self.column = label, image, prompt, route, column


def pair_losses(
    unet, layers, scheduler, pair: EncodedPair, kinds: tuple[RowKind, ...], generator: torch.Generator, family: Family
) -> dict[str, torch.Tensor]:
    """The loss of each row kind in ``kinds`` for one draw of eps and t, all in one batched denoiser call.

    ``scheduler`` is the training objective (``family.training_objective(pipe)``: a DDPMScheduler for the
    UNet families, ``FlowMatching`` for SD3 / Flux), not the pipeline's own; ``family`` makes the
    denoiser call.

    Pair training runs (CONTENT,) during the style warm-up and (CONTENT, STYLE_OVER_FROZEN_CONTENT) after it.

    Several pairs are batched: every pair gets the rows of ``kinds`` (pair-major), its own draw of eps and t
    shared by its rows, and its own content adapter; each returned loss is the mean over the pairs.  Draw
    order: x0 for all rows, then eps (pairs, C, h, w), then t (pairs,); with one pair the draws, rows and
    losses are those of single-pair training.
    """
    if not isinstance(scheduler, (DDPMScheduler, FlowMatching)):
        raise TypeError(
            f"pair_losses needs the training scheduler (training_scheduler(pipe)), got "
            f"{type(scheduler).__name__}, a sampling scheduler"
        )
    pairs = pair.pairs
    pair_of = [k for k in range(pairs) for _ in kinds]  # the pair of each row
    images = [2 * k + kind.image for k in range(pairs) for kind in kinds]
    prompts = [2 * k + kind.prompt for k in range(pairs) for kind in kinds]
    mean, std = pair.latent_mean[images], pair.latent_std[images]
    device = mean.device
    # 1. x0 ~ N(mean, std) from each image's latent distribution; one eps and one t per pair, shared by its rows.
    draw = lambda *shape: torch.randn(*shape, generator=generator).to(device, mean.dtype)  # noqa: E731
    x0 = mean + std * draw(*mean.shape)  # (rows, C, h, w)
    noise = draw(pairs, *mean.shape[1:])[pair_of]  # (rows, C, h, w), eps of its pair
    # 2. forward process, one t (sigma) per pair: DDPM, or flow matching x_t = (1 - s) x0 + s eps
    noisy, timesteps, target = forward_process(scheduler, x0, noise, generator, pair_of)
    # 3. one denoiser call, each row through its own adapters
    set_route(layers, [kind.route for _ in range(pairs) for kind in kinds], device, pair_of)  # kept for backward
    prediction = family.predict(unet, noisy, timesteps, pair.cond.select(prompts))  # (rows, C, h, w)
    # 4. per-image mean squared error
    losses = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))  # (rows,)
    return dict(zip(kinds, losses.view(pairs, len(kinds)).mean(0)))
