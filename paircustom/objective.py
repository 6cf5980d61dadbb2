"""The pair-training objective (paper Eqs. 6-8), one fused forward pass per sample of noise.

Symbols, as in the paper:

    x0_c, x0_s    latents of the content / style image         latents[0], latents[1]
    eps, t        ONE noise sample and ONE timestep, shared     noise, timesteps
    x_t           noisy latents  sqrt(a_t) x0 + sqrt(1-a_t) eps noisy
    c_c, c_s      content / style prompt embeddings            cond rows 0 / 1
    L_content  = || eps - eps[θ0 + Δc](x_t(x0_c), c_c, t) ||²
    L_style    = || eps - eps[θ0 + sg(Δc) + Δs](x_t(x0_s), c_s, t) ||²

(with "eps" replaced by the velocity v when the scheduler predicts v, as SD 2.x does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .adapters import set_route
from .errors import UserError
from .families import Conditioning


@dataclass
class EncodedPair:
    """What training needs of the pair, computed once: the VAE and text encoders are not used again."""

    latent_mean: torch.Tensor      # (2, C, h, w) content, style; already times the VAE scaling factor
    latent_std: torch.Tensor       # (2, C, h, w)
    cond: Conditioning             # 2 rows: c_content, c_style


def prediction_target(scheduler, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the denoiser is trained to output: eps, or v = sqrt(a_t) eps - sqrt(1 - a_t) x0."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, timesteps)
    raise UserError(f"the scheduler predicts '{kind}', which pair training does not support; use an epsilon or "
                    "v_prediction model.")


def pair_losses(unet, layers, scheduler, pair: EncodedPair, with_style: bool, generator: torch.Generator,
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(L_content, L_style or None) for one draw of eps and t, in one batched UNet call.

    Before the style warm-up ends (``with_style`` False) only the content row is run.
    """
    rows = 2 if with_style else 1
    mean, std = pair.latent_mean[:rows], pair.latent_std[:rows]
    device = mean.device
    # 1. x0 ~ N(mean, std) from each image's latent distribution; one eps and one t shared by both images.
    draw = lambda *shape: torch.randn(*shape, generator=generator).to(device, mean.dtype)  # noqa: E731
    x0 = mean + std * draw(*mean.shape)                                          # (rows, C, h, w)
    noise = draw(1, *mean.shape[1:]).expand_as(x0)                               # (rows, C, h, w), same eps
    timestep = torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=generator)
    timesteps = timestep.to(device).expand(rows)                                 # (rows,), same t
    # 2. forward diffusion
    noisy = scheduler.add_noise(x0, noise, timesteps)
    # 3. one UNet call: row 0 through θ0+Δc, row 1 through θ0+sg(Δc)+Δs
    cond = Conditioning(pair.cond.hidden[:rows], {k: v[:rows] for k, v in pair.cond.added.items()})
    set_route(layers, ["content", "content+style"][:rows], device)            # stays set for backward
    prediction = unet(noisy, timesteps, **cond.unet_kwargs()).sample           # (rows, C, h, w)
    # 4. per-image mean squared error
    target = prediction_target(scheduler, x0, noise, timesteps)
    losses = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))   # (rows,)
    return losses[0], (losses[1] if with_style else None)
