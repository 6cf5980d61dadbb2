"""Stylising an existing image with style guidance: SDEdit and DDIM inversion.

Both start from the image's latent z0 = E(x) (the image resized and centre-cropped as in training) and keep
the last ``strength`` share of the N denoising timesteps, tau_0 > ... > tau_{n-1} with n = round(N·strength):

``sdedit`` (Meng et al., 2022): noise z0 to tau_0 by the scheduler's forward process,

    x_tau0 = sqrt(a_tau0) z0 + sqrt(1 - a_tau0) eps          (Euler: z0 + sigma_tau0 · eps)

and denoise with the pipeline's own scheduler and style guidance (Eqs. 10-11).

``inversion`` (deterministic DDIM inversion, Song et al. 2021 Eq. 12 run backwards; Mokady et al. 2023):
starting from x = z0 at a = a_final, for tau = tau_{n-1}, ..., tau_0 with the base model under the content
prompt c (no CFG, no style),

    eps      = e0(x, tau, c)
    x0_pred  = (x - sqrt(1 - a_cur) eps) / sqrt(a_cur)           a_cur: the level x is at
    x_next   = sqrt(a_tau) x0_pred + sqrt(1 - a_tau) eps      (x_{t+1} = sqrt(a_{t+1}) x0_pred + sqrt(1-a_{t+1}) eps)

then denoise from x_tau0 with DDIM (eta 0) on the same timesteps and style guidance.  DDIM's step is the
exact inverse of this map except that inversion evaluates e0 at the less noisy x (the usual approximation),
so with guidance_scale 1 and no style the image comes back up to an error that shrinks with the step size.
``inversion_refine`` = k > 0 removes that approximation by fixed-point iteration (Pan et al. 2023, "AIDI";
Garibi et al. 2024, "ReNoise"): e0 is evaluated again at the x_next just found, k times per step, so that
x_next solves the DDIM step exactly; each iteration costs one more UNet call per step.
A DDIM scheduler is built from the pipeline's scheduler config for this method: only DDIM's deterministic
step undoes the inversion.  Style guidance starts after ``style_start_fraction`` of the n denoising steps.

The inversion ran under c without CFG, but the denoising's CFG with negative prompt n (default empty) adds
lambda_cfg (e0(c) - e0(n)), so the unstyled trajectory leaves the inverted one.  ``negative_prompt_inversion``
(Miyake et al. 2023, "Negative-prompt inversion") denoises with n = c, which cancels that term:

    eps = e0(c) + lambda_cfg (e0(c) - e0(c)) + sum_i lambda_i (e_i(c + suffix_i) - e0(c))
        = e0(c) + sum_i lambda_i (e_i(c + suffix_i) - e0(c))

so without a style each step is the DDIM step that the inversion undid, and the style terms alone move the image.
"""

from __future__ import annotations

import copy

import torch
from diffusers.utils.torch_utils import randn_tensor

from ..config.checks import MAX_SIDE, check_number, check_sampling
from ..config.generate import GENERATE
from ..config.validate import arg, check_words
from ..errors import UserError
from ..files.images import picture as read_picture
from ..files.images import prepare
from ..models.family import Size
from ..models.latents import encode

METHODS = ("sdedit", "inversion")


def check_stylize(
    strength, method: str, refine: int = 0, negative_prompt_inversion: bool = False, negative_prompt: str | None = None
) -> None:
    """The settings only stylising has; refused in one sentence."""
    check_number(arg("strength"), strength, 0, 1, hint=" (0 keeps the image, 1 redraws it from pure noise)")
    check_number(arg("inversion_refine"), refine, 0, 100, integer=True)
    if not isinstance(method, str) or method not in METHODS:
        raise UserError(f"{arg('method')} must be sdedit or inversion (got {method!r}).")
    if negative_prompt_inversion and method != "inversion":
        raise UserError(
            "negative-prompt inversion needs the inversion method; add --method inversion or drop "
            "--negative-prompt-inversion."
        )
    if negative_prompt_inversion and negative_prompt is not None:
        raise UserError("negative-prompt inversion uses the prompt as the negative prompt; drop --negative-prompt.")


def timesteps_for(scheduler, steps: int, strength: float, device=None) -> tuple[torch.Tensor, int]:
    """The last round(steps·strength) timesteps of ``scheduler`` (set to ``steps``) and their first index."""
    scheduler.set_timesteps(steps, device=device)
    kept = min(round(steps * strength), steps)
    start = (steps - kept) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):  # Euler & co. index sigmas from here, not from the start
        scheduler.set_begin_index(start)
    return scheduler.timesteps[start:], start


def ddim_scheduler(pipe):
    """DDIM on the pipeline's noise schedule and prediction type, deterministic and unclipped."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False, thresholding=False)


def _to_eps(output: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """The noise prediction of a model output for x at cumulative alpha ``alpha`` (eps or v models)."""
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":  # v = sqrt(a) eps - sqrt(1-a) x0  =>  eps = sqrt(a) v + sqrt(1-a) x
        return alpha.sqrt() * output + (1 - alpha).sqrt() * x
    raise UserError(f"DDIM inversion needs an epsilon or v_prediction model; this one predicts {prediction_type!r}.")


@torch.no_grad()
def ddim_invert(
    guided, latents: torch.Tensor, timesteps: torch.Tensor, scheduler, guide, refine: int = 0
) -> torch.Tensor:
    """z0 -> x_{timesteps[0]} by deterministic DDIM inversion under the content prompt (module docstring).

    One UNet call per step on the conditional rows of ``guide`` (base weights, the guide's ControlNet image).
    """
    alphas = scheduler.alphas_cumprod.to(latents.device, torch.float64)
    jump = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    rows = len(latents)
    cond = guide.cond_of[2].select(list(range(rows, 2 * rows)))  # block 1: e0(x, t, c)
    kind = scheduler.config.prediction_type
    x = latents.to(torch.float64)
    with guided._adapters_enabled():
        for t in reversed(timesteps):
            previous = int(t) - jump
            a_cur = alphas[previous] if previous >= 0 else scheduler.final_alpha_cumprod.to(alphas)
            a_next = alphas[int(t)]
            at = x  # where e0 is evaluated: x, then x_next
            for _ in range(1 + refine):
                output = guided._predict(at.to(latents.dtype), t, cond, [guide.names[1]], guide.control)
                eps = _to_eps(output.to(torch.float64), at, a_next, kind)
                x0 = (x - (1 - a_cur).sqrt() * eps) / a_cur.sqrt()
                at = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
            x = at
    return x.to(latents.dtype)


def recorded_prompt(guided, scales: dict[str, float]) -> str:
    """The content prompt recorded in the first of these styles' files (all loaded styles without ``scales``)."""
    prompt = next(
        (guided.content_prompts.get(name) for name in (scales or guided.suffixes) if guided.content_prompts.get(name)),
        None,
    )
    if prompt is None:
        raise UserError(
            "no style file here records a content prompt (files from other tools do not); give the "
            "prompt that describes the image."
        )
    return prompt


@torch.no_grad()
def stylize(
    guided,
    image,
    prompt: str | None = None,
    styles=None,
    strength: float = GENERATE.strength,
    method: str = GENERATE.method,
    style_scale: float = GENERATE.style_scale,
    guidance_scale: float = GENERATE.guidance_scale,
    style_start_fraction: float = GENERATE.style_start_fraction,
    num_inference_steps: int = GENERATE.num_inference_steps,
    negative_prompt: str | None = None,
    prompt_2: str | None = None,
    negative_prompt_2: str | None = None,
    resolution: int | None = GENERATE.resolution,
    seed: int | None = None,
    generator=None,
    output_type: str = "pil",
    eta: float = 0.0,
    control_image=None,
    controlnet_conditioning_scale: float = GENERATE.controlnet_conditioning_scale,
    inversion_refine: int = GENERATE.inversion_refine,
    negative_prompt_inversion: bool = GENERATE.negative_prompt_inversion,
):
    """Stylise ``image`` (PIL image or path) with style guidance; returns the pipeline's output class (``.images``).

    ``prompt`` describes the image (default: the content prompt of the first style's file); ``strength`` in
    [0, 1] is the share of the denoising steps redone (0 returns the image through the VAE); ``method`` is
    "sdedit" or "inversion" (see the module docstring), ``inversion_refine`` its fixed-point iterations per
    step (0: classic DDIM inversion), ``negative_prompt_inversion`` whether the prompt is also the negative
    prompt (module docstring); ``resolution`` (default: the model's size) is the
    side of the square the image is resized and centre-cropped to, as in training.  The other arguments mean
    what they mean in ``StyleGuidedPipeline.__call__``.  (Over 60 lines for that argument list and this
    documentation of it; the body is under 60.)
    """
    pipe = guided.pipe
    check_stylize(strength, method, inversion_refine, negative_prompt_inversion, negative_prompt)
    check_words("prompt", prompt, optional=True)
    check_number(arg("resolution"), resolution, 8, MAX_SIDE, integer=True, hint=" pixels")
    scales = guided._scales(styles, style_scale)
    factor = pipe.vae_scale_factor
    check_sampling(
        guidance_scale,
        scales,
        style_start_fraction,
        num_inference_steps,
        resolution,
        resolution,
        seed,
        1,
        factor,
        pipe.scheduler.config.get("num_train_timesteps", 1000),
    )
    prompt = prompt if prompt is not None else recorded_prompt(guided, scales)
    resolution = resolution or pipe.unet.config.sample_size * factor
    if generator is None and seed is not None:
        generator = torch.Generator("cpu").manual_seed(seed)
    # 1. the image as in training: shorter side to ``resolution``, centre square; its latent z0
    picture = read_picture(image, "image")
    prepared = prepare(picture, resolution)
    size = Size(prepared.original_size, prepared.crop_top_left, (resolution, resolution))
    if negative_prompt_inversion:  # n = c: the CFG term cancels (module docstring)
        negative_prompt, negative_prompt_2 = prompt, prompt_2
    # 2. the kept timesteps; the rows, with style terms after style_start_fraction of those steps
    scheduler = copy.deepcopy(pipe.scheduler) if method == "sdedit" else ddim_scheduler(pipe)
    timesteps, _ = timesteps_for(scheduler, num_inference_steps, strength, pipe._execution_device)
    control = guided._control(control_image, resolution, resolution, controlnet_conditioning_scale)
    guide = guided._guide(
        [prompt],
        scales,
        [size],
        guidance_scale,
        negative_prompt,
        prompt_2,
        negative_prompt_2,
        first_styled=round(style_start_fraction * len(timesteps)),
        control=control,
    )
    dtype = guide.cond_of[2].hidden.dtype
    z0 = encode(pipe, prepared.pixels[None]).to(pipe._execution_device, dtype)  # (1, C, h, w)
    # 3. from z0 to x_tau0: forward noise (sdedit) or DDIM inversion
    if len(timesteps) == 0:
        latents = z0
    elif method == "sdedit":
        noise = randn_tensor(z0.shape, generator=generator, device=z0.device, dtype=dtype)
        latents = scheduler.add_noise(z0, noise, timesteps[:1])
    else:
        latents = ddim_invert(guided, z0, timesteps, scheduler, guide, inversion_refine)
    # 4. style-guided denoising over the kept steps
    latents = guided.denoise(scheduler, latents, timesteps, guide, pipe.prepare_extra_step_kwargs(generator, eta))
    return guided._decode(latents, output_type, generator)
