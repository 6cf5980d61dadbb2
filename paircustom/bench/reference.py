"""The research code's training step, re-implemented as the benchmark's baseline; and its sampling, one UNet call
per term (``per_term``).

Per optimisation step the reference algorithm

    1. VAE-encodes both images again                       (2, 3, H, W) -> (2, C, h, w)
    2. content pass: denoiser(content row, θ0 + Δc)  -> L_content, backward, AdamW step on the B_c's
    3. style pass:   denoiser(style row, θ0 + sg(Δc) + Δs) -> L_style, backward, AdamW step on the B_s's

i.e. three encoder/UNet calls, two backward passes and two optimizer steps where
``PairTrainer.train_step`` makes one batched UNet call, one backward and one step
on cached latents and prompt embeddings.  It runs on the trainer's own model,
adapter layers, prompt embeddings, training objective (DDPM, or flow matching for SD3 / Flux) and seed, and
draws x0, eps and t
in the same order as ``objective.pair_losses`` (shared eps and t), so its
content adapter follows the same trajectory and only the style pass differs: it
sees Δc after this step's content update instead of before it.
"""

from __future__ import annotations

import copy
import types

import torch
import torch.nn.functional as F

from ..adapters.layers import set_route
from ..errors import UserError
from ..files.images import load_pair
from ..models.forward import forward_process
from ..sampling.control import residuals_kwargs
from ..training.objective import RowKind


class AdapterState:
    """One algorithm's own copy of every trainable B, swapped into the shared layers before its steps.

    Both algorithms then train the same model from the same (zero) start, interleaved step by step.
    """

    def __init__(self, params: list[torch.nn.Parameter]):
        self.params = params
        self.values = [p.detach().clone() for p in params]

    def activate(self) -> None:
        for param, value in zip(self.params, self.values):
            param.data = value          # optimizer steps now update ``value`` in place


class SequentialTrainer:
    """The reference (sequential) pair-training step on a ``PairTrainer``'s model; see the module docstring."""

    def __init__(self, trainer):
        config = self.config = trainer.config
        self.trainer, self.device = trainer, trainer.device
        content, style = load_pair(config.content_image, config.style_image, config.resolution)
        vae = trainer.pipe.vae
        self.pixels = torch.stack([content.pixels, style.pixels]).to(self.device, vae.dtype)   # (2, 3, H, W)
        self.optimizers = [torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
                           for params in (trainer.content_params, trainer.style_params)]
        self.generator = torch.Generator().manual_seed(config.seed)

    def train_step(self) -> tuple[float, float]:
        """One reference step; returns (content loss, style loss)."""
        trainer = self.trainer
        denoiser, scheduler, vae, cond = trainer.denoiser, trainer.noise_scheduler, trainer.pipe.vae, trainer.pair.cond
        # 1. encode both images (the research code does this every step)
        vae.to(self.device)
        with torch.no_grad():
            latents = vae.encode(self.pixels).latent_dist
            mean, std = trainer.family.vae_latents(vae, latents.mean, latents.std)   # (2, C, h, w)
        # draws in pair_losses' order: x0 for both rows, one eps, one t (sigma)
        draw = lambda *shape: torch.randn(*shape, generator=self.generator).to(self.device, mean.dtype)  # noqa: E731
        x0 = mean + std * draw(*mean.shape)                                     # (2, C, h, w)
        noise = draw(1, *mean.shape[1:]).expand_as(x0)                          # (2, C, h, w), one eps
        noisy, t, target = forward_process(scheduler, x0, noise, self.generator, [0, 0])
        losses = []
        # 2. content pass, 3. style pass: one row each, each with its own backward and optimizer step
        for kind, optimizer in zip((RowKind.CONTENT, RowKind.STYLE_OVER_FROZEN_CONTENT), self.optimizers):
            row, prompt, route = kind.image, kind.prompt, kind.route
            with trainer.accelerator.autocast():
                set_route(trainer.layers, [route], self.device)                 # kept through backward (checkpointing)
                prediction = trainer.family.predict(denoiser, noisy[row:row + 1], t[row:row + 1],
                                                    cond.select([prompt]))     # (1, C, h, w)
                loss = F.mse_loss(prediction.float(), target[row:row + 1].float())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            set_route(trainer.layers, None, self.device)
            losses.append(loss.item())
        return losses[0], losses[1]


def per_term(guided):
    """A copy of the ``StyleGuidedPipeline`` ``guided`` (sharing its pipeline and loaded styles) whose denoising
    steps make one UNet call per term, as the research code samples: unconditional and conditional rows together,
    then each style's rows alone.  The result equals the batched call's up to float summation order; ``perf``
    times the two against each other and the tests compare them.  SD and SDXL only."""
    if guided.family.flow:
        raise UserError("one UNet call per term is the SD / SDXL reference; use an SD or SDXL pipeline.")
    twin = copy.copy(guided)
    twin._predict = types.MethodType(_predict_per_term, twin)
    return twin


def _predict_per_term(guided, model_input, t, cond, names, control=None):
    """``loop.predict`` with one UNet call per term: rows (k·B, C, h, w) in blocks of B, one adapter name each."""
    rows = len(model_input) // len(names)
    per_row = [name for name in names for _ in range(rows)]
    residuals = control.residuals(model_input, t, cond) if control is not None else None  # once, all rows
    out = []
    for start, stop in [(0, 2)] + [(k, k + 1) for k in range(2, len(names))]:
        part = list(range(start * rows, stop * rows))
        selected = None if residuals is None else ([d[part] for d in residuals[0]], residuals[1][part])
        kwargs = {**cond.select(part).unet_kwargs(), **residuals_kwargs(selected)}
        with guided.routing(per_row[start * rows:stop * rows]):
            out.append(guided.pipe.unet(model_input[part], t, **kwargs, return_dict=False)[0])
    return torch.cat(out)
