"""The pair-training objective (paper Eqs. 6-8), one fused forward pass per sample of noise.

Symbols, as in the paper:

    x0_c, x0_s    latents of the content / style image         latents[0], latents[1]
    eps, t        ONE noise sample and ONE timestep, shared     noise, timesteps
    x_t           noisy latents  sqrt(a_t) x0 + sqrt(1-a_t) eps noisy
    c_c, c_s      content / style prompt embeddings            pair.cond rows 0 / 1
    L_content  = || eps - eps[θ0 + Δc](x_t(x0_c), c_c, t) ||²
    L_style    = || eps - eps[θ0 + sg(Δc) + Δs](x_t(x0_s), c_s, t) ||²

(with "eps" replaced by the velocity v when the scheduler predicts v, as SD 2.x does).

x_t and the target always come from the DDPM forward process of the model's own noise
schedule (``training_scheduler``), never from the pipeline's sampling scheduler: SDXL's
EulerDiscreteScheduler noises in sigma space (x0 + sigma·eps) and, once it has sampled,
reuses its step index for every timestep.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from .adapters import set_route
from .errors import UserError
from .families import Conditioning


@dataclass
class EncodedPair:
    """What training needs of the pair, computed once: the VAE and text encoders are not used again."""

    latent_mean: torch.Tensor      # (2, C, h, w) content, style; already times the VAE scaling factor
    latent_std: torch.Tensor       # (2, C, h, w)
    cond: Conditioning             # 2 rows: c_content, c_style


def training_scheduler(pipe_or_scheduler) -> DDPMScheduler:
    """The DDPM forward process of the model's own schedule, built once for training.

    Made from the sampling scheduler's config (betas, number of steps, prediction type),
    as diffusers' training scripts do; the sampling scheduler itself is neither read
    nor changed afterwards, so generating (previews, notebooks) cannot disturb training.
    """
    scheduler = getattr(pipe_or_scheduler, "scheduler", pipe_or_scheduler)
    return DDPMScheduler.from_config(scheduler.config)


def prediction_target(scheduler, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the denoiser is trained to output: eps, or v = sqrt(a_t) eps - sqrt(1 - a_t) x0."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, timesteps)
    raise UserError(f"the scheduler predicts '{kind}', which pair training does not support; use an epsilon or "
                    "v_prediction model.")


# Which image a row denoises, under which prompt (0 content, 1 style), and through which adapters (adapters.Route).
ROW_KINDS = {
    "content": (0, 0, "content"),            # L_content: content image, content prompt, θ0 + Δc
    "style": (1, 1, "content+style"),        # L_style: style image, style prompt, θ0 + sg(Δc) + Δs
    "style-only": (1, 1, "style"),           # DreamBooth-LoRA baseline: style image, style prompt, θ0 + Δs
    "slider+": (1, 0, "style"),              # Concept Sliders visual slider: style image at +Δs ...
    "slider-": (0, 0, "-style"),             # ... content image at -Δs, both under the content prompt
}


def pair_losses(unet, layers, scheduler: DDPMScheduler, pair: EncodedPair, kinds: tuple[str, ...],
                generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The loss of each row kind in ``kinds`` for one draw of eps and t, all in one batched UNet call.

    ``scheduler`` is the training scheduler (``training_scheduler(pipe)``), not the pipeline's own.

    Pair training runs ("content",) during the style warm-up and ("content", "style") after it.
    """
    if not isinstance(scheduler, DDPMScheduler):
        raise TypeError(f"pair_losses needs the training scheduler (training_scheduler(pipe)), got "
                        f"{type(scheduler).__name__}, a sampling scheduler")
    images = [ROW_KINDS[kind][0] for kind in kinds]
    prompts = [ROW_KINDS[kind][1] for kind in kinds]
    mean, std = pair.latent_mean[images], pair.latent_std[images]
    rows, device = len(kinds), mean.device
    # 1. x0 ~ N(mean, std) from each image's latent distribution; one eps and one t shared by all rows.
    draw = lambda *shape: torch.randn(*shape, generator=generator).to(device, mean.dtype)  # noqa: E731
    x0 = mean + std * draw(*mean.shape)                                          # (rows, C, h, w)
    noise = draw(1, *mean.shape[1:]).expand_as(x0)                               # (rows, C, h, w), same eps
    timestep = torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=generator)
    timesteps = timestep.to(device).expand(rows)                                 # (rows,), same t
    # 2. forward diffusion (DDPM): x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps
    noisy = scheduler.add_noise(x0, noise, timesteps)
    # 3. one UNet call, each row through its own adapters
    set_route(layers, [ROW_KINDS[kind][2] for kind in kinds], device)            # stays set for backward
    prediction = unet(noisy, timesteps, **pair.cond.select(prompts).unet_kwargs()).sample  # (rows, C, h, w)
    # 4. per-image mean squared error
    target = prediction_target(scheduler, x0, noise, timesteps)
    losses = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))   # (rows,)
    return dict(zip(kinds, losses))
