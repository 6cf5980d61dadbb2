"""The forward processes the denoiser is trained on: x_t and the target from x0 and noise (Eqs. 6-8's x_t).

UNet families: the DDPM forward process of the model's own noise schedule (``training_scheduler``),
x_t = sqrt(a_t) x0 + sqrt(1-a_t) eps with target eps or v (``prediction_target``).  Flow-matching families (SD3,
Flux; ``FlowMatching``): x_t = (1 - s) x0 + s eps with target eps - x0.  ``forward_process`` picks by objective.
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler

from ..errors import UserError


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
    raise UserError(
        f"the scheduler predicts '{kind}', which pair training does not support; use an epsilon or v_prediction model."
    )


class FlowMatching:
    """The rectified-flow forward process of SD3 / Flux training, as diffusers' training scripts draw it.

    u ~ logit-normal(mean, std) ("logit_normal", SD3's choice) or uniform ("none"); the sigma is the
    entry at u·N of the scheduler's own sigma table, so a static ``shift`` in the model's scheduler
    config applies (SD3: 3.0) and a dynamically shifted one (Flux) trains on the unshifted table.
    """

    def __init__(
        self, scheduler_config, weighting: str = "logit_normal", logit_mean: float = 0.0, logit_std: float = 1.0
    ):
        from diffusers import FlowMatchEulerDiscreteScheduler

        table = FlowMatchEulerDiscreteScheduler.from_config(scheduler_config)
        self.sigmas, self.timesteps = table.sigmas.clone(), table.timesteps.clone()  # (N,) each, descending
        self.weighting, self.logit_mean, self.logit_std = weighting, logit_mean, logit_std

    def draw_sigma(self, generator: torch.Generator, count: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(sigma, timestep = the scheduler's t for it) of ``count`` draws, each (count,)."""
        if self.weighting == "logit_normal":
            u = torch.sigmoid(torch.randn(count, generator=generator) * self.logit_std + self.logit_mean)
        else:
            u = torch.rand(count, generator=generator)
        index = (u * len(self.timesteps)).long().clamp(max=len(self.timesteps) - 1)
        return self.sigmas[index], self.timesteps[index]

    def noisy_and_target(self, x0, noise, generator, pair_of: list[int] | None = None):
        """(x_t, timesteps, target) for rows of x0: one sigma drawn per pair, ``pair_of`` the pair of each row
        (default: one pair, one sigma for all rows)."""
        pair_of = pair_of or [0] * len(x0)
        sigma, timestep = self.draw_sigma(generator, max(pair_of) + 1)
        s = sigma[pair_of].to(x0.device, x0.dtype).view(-1, 1, 1, 1)
        return (1 - s) * x0 + s * noise, timestep[pair_of].to(x0.device), noise - x0


def forward_process(scheduler, x0, noise, generator, pair_of: list[int]):
    """(x_t, timesteps, target) of the training objective ``scheduler`` (DDPM or ``FlowMatching``), one t per
    pair (``pair_of``: each row's pair)."""
    if isinstance(scheduler, FlowMatching):
        return scheduler.noisy_and_target(x0, noise, generator, pair_of)
    return _ddpm_noisy_and_target(scheduler, x0, noise, generator, pair_of)


def _ddpm_noisy_and_target(scheduler: DDPMScheduler, x0, noise, generator, pair_of: list[int]):
    """(x_t, timesteps, target) of the DDPM forward process, one t per pair (``pair_of``: each row's pair)."""
    timestep = torch.randint(0, scheduler.config.num_train_timesteps, (max(pair_of) + 1,), generator=generator)
    timesteps = timestep.to(x0.device)[pair_of]  # (rows,), t of its pair
    noisy = scheduler.add_noise(x0, noise, timesteps)  # x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps
    return noisy, timesteps, prediction_target(scheduler, x0, noise, timesteps)
