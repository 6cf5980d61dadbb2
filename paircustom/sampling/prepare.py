"""What a style-guided call prepares before its denoising loop, for every family: the row blocks of the
prompts ([∅], c, c + suffix_i per style) in a ``Guide``, the timesteps and the initial latents.  ``guided`` is the
``StyleGuidedPipeline`` (its pipe, family and loaded styles' suffixes)."""

from __future__ import annotations

import torch
from diffusers.utils.torch_utils import randn_tensor

from ..config.checks import MAX_SCALE, check_number, check_sampling
from ..config.generate import GENERATE
from ..errors import UserError
from ..models.family import Conditioning, Size
from .guide import Guide, row_scales

# What only the UNet families' call takes: the value that means "not used" (SD3 and Flux refuse any other).
UNSUPPORTED = {
    "prompt_2": None,
    "negative_prompt_2": None,
    "guidance_rescale": 0.0,
    "control_image": None,
    "controlnet": None,
    "eta": 0.0,
    "denoising_end": None,
    "callback_on_step_end": None,
}


def check_flow_options(**values) -> None:
    """Refuse, in one sentence, options that SD3 / Flux style guidance does not take (before a model loads)."""
    for name, value in values.items():
        if name not in UNSUPPORTED:
            raise TypeError(f"FlowStyleGuidedPipeline got an unexpected keyword argument {name!r}")
        if value != UNSUPPORTED[name]:
            raise UserError(f"{name.replace('_', ' ')} is not supported for SD3 and Flux pipelines yet; drop it.")


def first(*values):
    """The first of ``values`` that is not None."""
    return next(v for v in values if v is not None)


def checked_call(
    guided,
    styles,
    style_scale,
    guidance_scale,
    style_start_fraction,
    steps,
    height,
    width,
    seed,
    num_images,
    true_cfg_scale,
    schedule: dict,
    unet_only: dict,
    rows: int | None = None,
):
    """Step 1 of ``StyleGuidedPipeline.__call__``: refuse what the family does not take (``unet_only``: the
    options only SD / SDXL take), fill in the family's defaults, check the numbers.  Returns (style scales,
    guidance scale, style start fraction, steps, height, width)."""
    pipe, family = guided.pipe, guided.family
    if family.flow:
        check_flow_options(**unet_only)
    elif true_cfg_scale != GENERATE.true_cfg_scale:
        raise UserError("true_cfg_scale is Flux's; drop it for SD and SDXL (guidance_scale sets their CFG).")
    guidance_scale = first(guidance_scale, family.default_guidance, GENERATE.guidance_scale)
    start = first(style_start_fraction, family.default_style_start_fraction, GENERATE.style_start_fraction)
    steps = first(steps, family.default_steps, GENERATE.num_inference_steps)
    scales = guided._scales(styles, style_scale, rows)  # ``rows`` prompts: a scale may be one per prompt
    rescale, end = unet_only["guidance_rescale"], unet_only["denoising_end"]
    check_number("guidance_rescale", rescale, -MAX_SCALE, MAX_SCALE)  # numbers; their ranges below
    check_number("denoising_end", end, -MAX_SCALE, MAX_SCALE)
    if not (0.0 <= rescale <= 1.0) or not (end is None or 0.0 < end <= 1.0):
        raise UserError(f"guidance_rescale must lie in [0, 1] (got {rescale}) and denoising_end in (0, 1] (got {end}).")
    factor = pipe.vae_scale_factor * family.patch
    train_steps = 1000 if family.flow else pipe.scheduler.config.get("num_train_timesteps", 1000)
    check_sampling(
        guidance_scale, scales, start, steps, height, width, seed, num_images, factor, train_steps, **schedule
    )
    if family.flow:
        check_sampling(true_cfg_scale, {}, start, steps, None, None, None, 1, factor)
    side = pipe.default_sample_size if family.flow else pipe.unet.config.sample_size
    return (
        scales,
        guidance_scale,
        start,
        steps,
        height or side * pipe.vae_scale_factor,
        width or (side * pipe.vae_scale_factor),
    )


def latent_shape(guided, batch: int, height: int, width: int) -> tuple[int, ...]:
    """(B, C, h, w) of the latents the loop runs on (SD3 / Flux: unpacked)."""
    if guided.family.flow:
        return tuple(guided.family.latent_shape(guided.pipe, batch, height, width))
    factor = guided.pipe.vae_scale_factor
    return batch, guided.pipe.unet.config.in_channels, height // factor, width // factor


def timesteps_of(guided, scheduler, steps: int, shape, denoising_end: float | None = None) -> torch.Tensor:
    """Set ``scheduler``'s timesteps as the family's pipeline does; those at or above ``denoising_end``."""
    device = guided.pipe._execution_device
    if guided.family.flow:
        return guided.family.sampling_timesteps(guided.pipe, scheduler, steps, shape[2:], device)
    scheduler.set_timesteps(steps, device=device)
    timesteps = scheduler.timesteps
    if denoising_end is not None:  # diffusers' rule: keep the steps at or above the cut-off timestep
        train_steps = scheduler.config.num_train_timesteps
        timesteps = timesteps[timesteps >= int(round(train_steps - denoising_end * train_steps))]
    return timesteps


def initial_latents(guided, scheduler, shape, latents, generator, dtype) -> torch.Tensor:
    """Fresh noise, or the given ``latents`` (the wrapped pipeline's layout, e.g. Flux's packed one)."""
    device = guided.pipe._execution_device
    if latents is None:
        latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
    elif guided.family.flow:
        latents = guided.family.from_pipeline_latents(latents.to(device, dtype), shape)
    if tuple(latents.shape) != tuple(shape):
        raise UserError(f"latents must have shape {tuple(shape)} for these settings; got {tuple(latents.shape)}.")
    return latents if guided.family.flow else latents.to(device, dtype) * scheduler.init_noise_sigma  # (B, C, h, w)


def guide_of(
    guided,
    prompts: list[str],
    scales: dict[str, float],
    sizes: list[Size],
    guidance_scale: float,
    negative_prompt=None,
    prompt_2=None,
    negative_prompt_2=None,
    num_images_per_prompt: int = 1,
    base_adapter: str | None = None,
    guidance_rescale: float = GENERATE.guidance_rescale,
    true_cfg_scale: float = GENERATE.true_cfg_scale,
    **steps,
) -> Guide:
    """Encode [∅], c and c + suffix_i (one row block each, ``sizes`` one per prompt) into a ``Guide`` with the
    step settings ``steps`` (its remaining fields)."""
    if guided.family.flow:
        cfg, blocks = flow_rows(
            guided, prompts, scales, guidance_scale, true_cfg_scale, negative_prompt, num_images_per_prompt
        )
    else:
        cfg, blocks = (
            guidance_scale,
            unet_rows(
                guided, prompts, scales, sizes, negative_prompt, prompt_2, negative_prompt_2, num_images_per_prompt
            ),
        )
    plain = len(blocks) - len(scales)  # the CFG blocks: ∅ and c (Flux without true CFG: c)
    cond_of = {active: Conditioning.cat(blocks[:active]) for active in {plain, len(blocks)}}  # (k·B, T, D) each
    return Guide(
        cond_of,
        [base_adapter] * plain + list(scales),
        [row_scales(scale, num_images_per_prompt, blocks[0].hidden) for scale in scales.values()],
        cfg,
        plain=plain,
        guidance_rescale=guidance_rescale,
        **steps,
    )


def unet_rows(guided, prompts, scales, sizes, negative_prompt, prompt_2, negative_prompt_2, num_images):
    pipe, family = guided.pipe, guided.family
    if family.name != "sdxl" and (prompt_2 is not None or negative_prompt_2 is not None):
        raise UserError(
            "prompt_2 and negative_prompt_2 feed SDXL's second text encoder; this pipeline has one "
            "text encoder, so drop them."
        )
    prompts_2 = None if prompt_2 is None else [prompt_2] * len(prompts) if isinstance(prompt_2, str) else list(prompt_2)
    if prompts_2 is not None and len(prompts_2) != len(prompts):
        raise UserError(f"give one prompt_2 per prompt ({len(prompts)}); got {len(prompts_2)}.")
    device = pipe._execution_device
    cond, uncond = family.encode(
        pipe,
        prompts,
        device,
        negative_prompt,
        with_negative=True,
        prompts_2=prompts_2,
        negative_prompt_2=negative_prompt_2,
    )
    texts = guided._style_texts
    blocks = [uncond, cond] + [
        family.encode(pipe, texts(prompts, n), device, prompts_2=texts(prompts_2, n))[0] for n in scales
    ]
    return [family.add_size(pipe, b, sizes).repeat(num_images) for b in blocks]


def flow_rows(guided, prompts, scales, guidance_scale, true_cfg_scale, negative_prompt, num_images):
    """(the ∅ term's scale, the row blocks) of SD3 / Flux: [∅] (true CFG only), c, c + suffix_i per style."""
    pipe, family, device = guided.pipe, guided.family, guided.pipe._execution_device
    prompts = [p for p in prompts for _ in range(num_images)]
    cfg, with_uncond = family.cfg(guidance_scale, true_cfg_scale, negative_prompt)
    cond, uncond = family.encode(pipe, prompts, device, negative_prompt, with_negative=with_uncond)
    blocks = ([uncond] if with_uncond else []) + [cond]
    blocks += [family.encode(pipe, guided._style_texts(prompts, n), device)[0] for n in scales]
    return cfg, [family.with_guidance(pipe, b, guidance_scale) for b in blocks]
