"""The denoising loop of style guidance (paper Eqs. 10-11) for every family, one denoiser call of all row blocks,
and decoding the result; ``guided`` is the ``StyleGuidedPipeline`` (these are its ``denoise``, ``_predict`` and
``_decode``)."""

from __future__ import annotations

import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

from ..errors import UserError
from ..models.family import Conditioning
from ..models.latents import to_images
from .control import residuals_kwargs
from .guide import Guide, StyleSchedule, style_guidance


def denoise(
    guided, scheduler, latents, timesteps, guide: Guide, extra: dict | None = None, callback_on_step_end=None
) -> torch.Tensor:
    """Run ``scheduler`` over ``timesteps`` from ``latents`` with style guidance (Eqs. 10-11), for every
    family; each step is one batched denoiser call (and one ControlNet call) on the CFG row blocks and, when
    ``StyleSchedule`` says so, the style blocks; style terms from ``guide.first_styled`` up to
    ``guide.stop_styled``."""
    pipe, blocks = guided.pipe, guide.plain + len(guide.scales)
    stop = len(timesteps) if guide.stop_styled is None else guide.stop_styled
    schedule = StyleSchedule(
        guide.first_styled,
        stop if guide.scales else 0,
        guide.style_interval,
        guide.style_tolerance,
        guide.style_reuse,
    )
    scale_input = getattr(scheduler, "scale_model_input", lambda x, t: x)  # flow matching: none
    with guided._adapters_enabled():  # peft adapters are switched on only for the loop
        for i, t in enumerate(pipe.progress_bar(timesteps)):
            # a. the rows of this step: CFG always, the style rows when the schedule recomputes them
            active = blocks if schedule.fresh(i) else guide.plain
            model_input = scale_input(latents, t).repeat(active, 1, 1, 1)  # (k·B, C, h, w)
            # b. one batched denoiser call of those rows
            cond, names = guide.cond_of[active], guide.names[:active]
            e = guided._predict(model_input, t, cond, names, guide.control).chunk(active)
            e_uncond, e_cond = (e[0], e[1]) if guide.plain == 2 else (e[0], e[0])
            # c. style deltas e_i(c_i) − e0(c): this step's, cached ones, or none outside the style steps
            deltas = schedule.update(i, e_cond, list(e[guide.plain :]))
            # d. Eqs. 10-11
            step_eps = style_guidance(e_uncond, e_cond, deltas, guide.guidance_scale, guide.scales[: len(deltas)])
            if guide.guidance_rescale > 0:
                step_eps = rescale_noise_cfg(step_eps, e_cond, guide.guidance_rescale)
            # e. scheduler step
            latents = scheduler.step(step_eps, t, latents, **(extra or {}), return_dict=False)[0]
            if callback_on_step_end is not None:
                latents = (callback_on_step_end(pipe, i, t, {"latents": latents}) or {}).get("latents", latents)
    return latents


def predict(guided, model_input, t, cond: Conditioning, names: list[str | None], control=None):
    """Denoiser predictions for all row blocks (one adapter name per block), in one call.

    With a ControlNet its residuals are computed once, in one call on all rows, and handed to the UNet.
    """
    rows = len(model_input) // len(names)
    per_row = [name for name in names for _ in range(rows)]
    if guided.family.flow:
        with guided.routing(per_row):
            return guided.family.predict(guided.denoiser, model_input, t.expand(len(model_input)), cond)
    residuals = control.residuals(model_input, t, cond) if control is not None else None
    kwargs = {**cond.unet_kwargs(), **residuals_kwargs(residuals)}
    with guided.routing(per_row):
        return guided.pipe.unet(model_input, t, **kwargs, return_dict=False)[0]


def decode(guided, latents, output_type: str, generator):
    """latents (B, C, h, w) -> the family's output class.  UNets: ``to_images`` undoes the latent
    normalisation first, x = D(z · σ / s + m) (VAE scaling factor s, per-channel latent mean m and std σ; see
    ``latents``); SD3 / Flux: the family's shift and scale, in the pipeline's latent layout."""
    family, pipe = guided.family, guided.pipe
    if not family.flow:
        return family.output(to_images(pipe, latents, output_type, generator))
    if not torch.isfinite(latents).all():
        raise UserError("sampling produced non-finite values (NaN or infinity); lower the guidance or style scale.")
    if output_type == "latent":
        return family.output(family.pipeline_latents(latents))
    images = pipe.vae.decode(family.decode_latents(pipe.vae, latents.to(pipe.vae.dtype)), return_dict=False)[0]
    return family.output(pipe.image_processor.postprocess(images, output_type=output_type))
