"""Style guidance (paper Eqs. 9-11) as a wrapper around a loaded diffusers pipeline of any family.

    eps = e0(x_t, ∅) + λ_cfg·(e0(x_t, c) − e0(x_t, ∅)) + Σ_i λ_i·(e_i(x_t, c_i) − e0(x_t, c))

    e0        base model (no adapter)                    rows "uncond" and "cond"
    e_i       base model + style LoRA i (content dropped) one row block per style
    c_i       prompt + style i's suffix ("... in digital art style")
    λ_cfg     guidance_scale;  λ_i  that style's scale (0 drops the term)

All predictions of one denoising step come from ONE batched denoiser call in which
each row picks its adapter (peft's mixed-batch ``adapter_names``).  The first
``style_start_fraction`` of the steps run plain CFG, as in the paper; after ``style_end`` plain CFG runs
again.  In between, the style delta e_i(c_i) − e0(c) may be recomputed only every ``style_interval`` steps (or
when ``style_tolerance`` says it is stale) and reused in between, where the call holds the CFG rows only
(``guide.StyleSchedule``).  With a
ControlNet (``control``) its residuals are computed once per step for all rows;
stylising existing images (SDEdit, DDIM inversion) lives in ``stylize``.

SD3 (true CFG) and Flux (distilled: the guidance value is the model's ``guidance`` input of every row, the ∅
term only with ``true_cfg_scale`` > 1 and a negative prompt) take the same loop on their transformer, with
v in place of eps; their latents follow the wrapped pipeline's convention (Flux: packed), so the same ``latents``
give the plain pipeline's result when every style scale is 0.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

from ..adapters.layers import peft_routing
from ..config.checks import MAX_SCALE, check_number, check_sampling
from ..config.generate import GENERATE
from ..distributed import check_device
from ..errors import UserError
from ..models.family import Conditioning, Size
from ..models.latents import to_images
from ..models.registry import family_of, load_pipeline
from .control import Control, load_controlnet, residuals_kwargs, with_controlnet
from .guide import Guide, StyleSchedule, style_guidance
from .prepare import check_flow_options, check_unused, first, guide_of, initial_latents, latent_shape, timesteps_of
from .styles import LoadedStyles


class StyleGuidedPipeline(LoadedStyles):
    """Generate with one or more learned styles by style guidance; wraps (and shares) a diffusers pipeline of any
    family (SD, SDXL, SD3, Flux)."""

    def __init__(self, pipe, routing=None, controlnet=None, routed_styles: dict[str, str] | None = None):
        """Wrap ``pipe`` (SD, SDXL, their ControlNet pipelines, SD3 or Flux); ``controlnet`` (a ControlNetModel)
        turns an SD / SDXL pipeline into its ControlNet pipeline sharing the same components (diffusers'
        ``from_pipe``).

        ``routing(adapter_names)`` gives the context in which denoiser row i uses adapter_names[i] (None: the base
        weights); by default peft's adapters, loaded with ``load_style``.  ``routed_styles`` ({name: prompt
        suffix}) are styles that ``routing`` applies itself, e.g. a training run's own adapter layers (previews).
        """
        if family_of(pipe).flow:
            check_flow_options(controlnet=controlnet)
        elif controlnet is not None:
            pipe = with_controlnet(pipe, controlnet)
        self.pipe = pipe
        self.family = family_of(pipe)
        self.denoiser = self.family.denoiser(pipe)  # the UNet (SD, SDXL) or transformer (SD3, Flux)
        self.suffixes: dict[str, str] = dict(routed_styles or {})  # style name -> prompt suffix
        self.content_prompts: dict[str, str | None] = {}  # style name -> its file's content prompt (stylize)
        self.routing = routing or (lambda names: peft_routing(self.denoiser, names))

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        torch_dtype=torch.float32,
        device: str | None = None,
        variant: str | None = None,
        vae: str | None = None,
        controlnet=None,
        wrap=None,
    ) -> StyleGuidedPipeline:
        """Load a hub id, a local folder or "shapes" (the embedded model) of any family.

        ``variant`` ("fp16") picks weight files; ``vae`` (folder or hub id) replaces the VAE, e.g.
        "madebyollin/sdxl-vae-fp16-fix" for SDXL in fp16; ``controlnet`` (ControlNetModel, folder or hub id)
        adds a ControlNet.  ``device`` is checked before anything loads.  ``wrap(pipe, controlnet=...)`` makes
        the wrapper (default: ``style_guided``, the class of the model's family, or this class if a subclass).
        """
        device = check_device(device) if device else None
        pipe = load_pipeline(model, torch_dtype, variant=variant, vae=vae)
        if isinstance(controlnet, (str, Path)):
            controlnet = load_controlnet(str(controlnet), torch_dtype)
        guided = (wrap or (style_guided if cls is StyleGuidedPipeline else cls))(pipe, controlnet=controlnet)
        if device:
            guided.pipe.to(device)
        return guided

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        styles=None,
        style_scale: float = GENERATE.style_scale,
        guidance_scale: float | None = None,
        style_start_fraction: float | None = None,
        style_end: float | None = GENERATE.style_end,
        style_interval: int = GENERATE.style_interval,
        style_tolerance: float | None = GENERATE.style_tolerance,
        style_reuse: str = GENERATE.style_reuse,
        num_inference_steps: int | None = None,
        negative_prompt: str | None = GENERATE.negative_prompt,
        height: int | None = GENERATE.height,
        width: int | None = GENERATE.width,
        seed: int | None = None,
        generator=None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        num_images_per_prompt: int = GENERATE.num_images_per_prompt,
        eta: float = 0.0,
        batched: bool = True,
        base_adapter: str | None = None,
        prompt_2: str | list[str] | None = GENERATE.prompt_2,
        negative_prompt_2: str | None = GENERATE.negative_prompt_2,
        guidance_rescale: float = GENERATE.guidance_rescale,
        denoising_end: float | None = None,
        callback_on_step_end=None,
        control_image=None,
        controlnet_conditioning_scale: float = GENERATE.controlnet_conditioning_scale,
        true_cfg_scale: float = GENERATE.true_cfg_scale,
    ):
        """Generate; returns the wrapped pipeline's own output type (``.images``).

        ``styles``: {name: scale}, a list of names (each at ``style_scale``), or None for all loaded styles.
        Style terms act from ``style_start_fraction`` up to ``style_end`` (fractions of the steps; None: to the end).
        ``style_interval=k`` recomputes the style deltas e_i(c_i) − e0(c) every k style steps and reuses them
        in between (only the CFG rows are computed there); ``style_tolerance`` also recomputes them early when
        the base prediction has moved by more than that relative L1 change; ``style_reuse="forecast"`` adds a
        straight-line extrapolation of the last two deltas on those steps instead (see ``StyleSchedule``).
        ``batched=False`` makes one UNet call per term instead of one per step (same result, for comparison).
        ``base_adapter``: the adapter behind e0 (None: base weights; ``lora_scale`` sets it).
        Defaults that depend on the family (None): ``guidance_scale`` (SD3's CFG scale 7, Flux's distilled
        guidance value 3.5), ``style_start_fraction`` (Flux: 6/28, as the research code), ``num_inference_steps``
        (SD3, Flux: 28); else ``GENERATE``'s.  Flux only: ``true_cfg_scale`` > 1 with a ``negative_prompt``.
        SD / SDXL only, as in diffusers: ``prompt_2``/``negative_prompt_2`` (SDXL's second text encoder; style
        suffixes are appended to both prompts), ``guidance_rescale`` (applied to the guided prediction),
        ``denoising_end`` (stop at this fraction, e.g. for a refiner), ``eta``,
        ``callback_on_step_end(pipe, i, t, {"latents": ...})``, which may return replacement latents, and with a
        ControlNet (see ``__init__``) ``control_image`` (PIL image, path or tensor) and
        ``controlnet_conditioning_scale``.
        (Over 60 lines for diffusers' argument list and this documentation of it; the body is under 60.)
        """
        pipe, family = self.pipe, self.family
        # 1. check inputs; the family's defaults
        if family.flow:
            check_flow_options(
                prompt_2=prompt_2,
                negative_prompt_2=negative_prompt_2,
                guidance_rescale=guidance_rescale,
                control_image=control_image,
            )
            check_unused(
                eta=(eta, 0.0),
                batched=(batched, True),
                denoising_end=(denoising_end, None),
                callback_on_step_end=(callback_on_step_end, None),
            )
        elif true_cfg_scale != GENERATE.true_cfg_scale:
            raise UserError("true_cfg_scale is Flux's; drop it for SD and SDXL (guidance_scale sets their CFG).")
        guidance_scale = first(guidance_scale, family.default_guidance, GENERATE.guidance_scale)
        style_start_fraction = first(
            style_start_fraction, family.default_style_start_fraction, GENERATE.style_start_fraction
        )
        steps = first(num_inference_steps, family.default_steps, GENERATE.num_inference_steps)
        scales = self._scales(styles, style_scale)
        if not (0.0 <= guidance_rescale <= 1.0) or not (denoising_end is None or 0.0 < denoising_end <= 1.0):
            raise UserError(
                f"guidance_rescale must lie in [0, 1] (got {guidance_rescale}) and denoising_end in "
                f"(0, 1] (got {denoising_end})."
            )
        factor = pipe.vae_scale_factor * family.patch
        train_steps = 1000 if family.flow else pipe.scheduler.config.get("num_train_timesteps", 1000)
        check_sampling(
            guidance_scale,
            scales,
            style_start_fraction,
            steps,
            height,
            width,
            seed,
            num_images_per_prompt,
            factor,
            train_steps,
            style_end=style_end,
            style_interval=style_interval,
            style_tolerance=style_tolerance,
            style_reuse=style_reuse,
        )
        if family.flow:
            check_sampling(true_cfg_scale, {}, style_start_fraction, steps, None, None, None, 1, factor)
        side = pipe.default_sample_size if family.flow else pipe.unet.config.sample_size
        height, width = height or side * pipe.vae_scale_factor, width or side * pipe.vae_scale_factor
        if generator is None and seed is not None:
            generator = torch.Generator("cpu").manual_seed(seed)
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)

        # 2. timesteps, on a private copy of the pipeline's scheduler: its state (Euler's step index, PNDM's
        #    history) stays as the user and a running training left it; 3. the initial latents
        scheduler = copy.deepcopy(pipe.scheduler)
        shape = latent_shape(self, len(prompts) * num_images_per_prompt, height, width)
        timesteps = timesteps_of(self, scheduler, steps, shape, denoising_end)
        # 4. encode prompts: [∅], c, and c + suffix_i for each style; one row block each; the control image
        guide = guide_of(
            self,
            prompts,
            scales,
            [Size((height, width), (0, 0), (height, width))] * len(prompts),
            guidance_scale,
            negative_prompt,
            prompt_2,
            negative_prompt_2,
            num_images_per_prompt,
            base_adapter,
            guidance_rescale,
            true_cfg_scale,
            first_styled=round(style_start_fraction * len(timesteps)),
            stop_styled=None if style_end is None else round(style_end * len(timesteps)),
            style_interval=style_interval,
            style_tolerance=style_tolerance,
            style_reuse=style_reuse,
            batched=batched,
            control=self._control(control_image, height, width, controlnet_conditioning_scale),
        )
        latents = initial_latents(self, scheduler, shape, latents, generator, guide.cond_of[guide.plain].hidden.dtype)

        # 5. denoising loop, 6. decode
        extra = {} if family.flow else pipe.prepare_extra_step_kwargs(generator, eta)
        latents = self.denoise(scheduler, latents, timesteps, guide, extra, callback_on_step_end)
        return self._decode(latents, output_type, generator)

    def stylize(
        self,
        image,
        prompt: str | None = None,
        styles=None,
        strength: float = GENERATE.strength,
        method: str = GENERATE.method,
        **kwargs,
    ):
        """Stylise an existing image (PIL or path) by "sdedit" or "inversion"; see ``paircustom.sampling.stylize``."""
        if self.family.flow:
            raise UserError(
                "stylising an existing image is not supported for SD3 and Flux pipelines yet; use "
                "'paircustom generate'."
            )
        from .stylize import stylize

        return stylize(self, image, prompt, styles, strength, method, **kwargs)

    def _control(self, control_image, height: int, width: int, scale: float):
        """The control image prepared for the pipeline's ControlNet, or None without one."""
        if control_image is None and getattr(self.pipe, "controlnet", None) is None:
            return None
        return Control.of(self.pipe, control_image, height, width, scale)

    def denoise(
        self, scheduler, latents, timesteps, guide: Guide, extra: dict | None = None, callback_on_step_end=None
    ) -> torch.Tensor:
        """Run ``scheduler`` over ``timesteps`` from ``latents`` with style guidance (Eqs. 10-11), for every
        family; each step is one batched denoiser call (and one ControlNet call) on the CFG row blocks and, when
        ``StyleSchedule`` says so, the style blocks; style terms from ``guide.first_styled`` up to
        ``guide.stop_styled``."""
        pipe, blocks = self.pipe, guide.plain + len(guide.scales)
        stop = len(timesteps) if guide.stop_styled is None else guide.stop_styled
        schedule = StyleSchedule(
            guide.first_styled,
            stop if guide.scales else 0,
            guide.style_interval,
            guide.style_tolerance,
            guide.style_reuse,
        )
        scale_input = getattr(scheduler, "scale_model_input", lambda x, t: x)  # flow matching: none
        with self._adapters_enabled():  # peft adapters are switched on only for the loop
            for i, t in enumerate(pipe.progress_bar(timesteps)):
                # a. the rows of this step: CFG always, the style rows when the schedule recomputes them
                active = blocks if schedule.fresh(i) else guide.plain
                model_input = scale_input(latents, t).repeat(active, 1, 1, 1)  # (k·B, C, h, w)
                # b. one batched denoiser call of those rows
                e = self._predict(
                    model_input, t, guide.cond_of[active], guide.names[:active], guide.batched, guide.control
                ).chunk(active)
                e_uncond, e_cond = (e[0], e[1]) if guide.plain == 2 else (e[0], e[0])
                # c. style deltas e_i(c_i) − e0(c): this step's, cached ones, or none outside the style steps
                deltas = schedule.update(i, e_cond, list(e[guide.plain :]))
                # d. Eqs. 10-11
                guided = style_guidance(e_uncond, e_cond, deltas, guide.guidance_scale, guide.scales[: len(deltas)])
                if guide.guidance_rescale > 0:
                    guided = rescale_noise_cfg(guided, e_cond, guide.guidance_rescale)
                # e. scheduler step
                latents = scheduler.step(guided, t, latents, **(extra or {}), return_dict=False)[0]
                if callback_on_step_end is not None:
                    latents = (callback_on_step_end(pipe, i, t, {"latents": latents}) or {}).get("latents", latents)
        return latents

    def _predict(self, model_input, t, cond: Conditioning, names: list[str | None], batched: bool, control=None):
        """Denoiser predictions for all row blocks (one adapter name per block): one call, or one call per term.

        With a ControlNet its residuals are computed once, in one call on all rows, and handed to the UNet.
        """
        rows = len(model_input) // len(names)
        per_row = [name for name in names for _ in range(rows)]
        if self.family.flow:
            with self.routing(per_row):
                return self.family.predict(self.denoiser, model_input, t.expand(len(model_input)), cond)
        residuals = control.residuals(model_input, t, cond) if control is not None else None
        if batched:
            with self.routing(per_row):
                return self.pipe.unet(
                    model_input, t, **cond.unet_kwargs(), **residuals_kwargs(residuals), return_dict=False
                )[0]
        out = []  # the reference algorithm: unconditional + conditional together, then each style alone
        for start, stop in [(0, 2)] + [(k, k + 1) for k in range(2, len(names))]:
            part = list(range(start * rows, stop * rows))
            with self.routing(per_row[start * rows : stop * rows]):
                out.append(
                    self.pipe.unet(
                        model_input[part],
                        t,
                        **cond.select(part).unet_kwargs(),
                        **residuals_kwargs(residuals, part),
                        return_dict=False,
                    )[0]
                )
        return torch.cat(out)

    def _decode(self, latents, output_type: str, generator):
        """latents (B, C, h, w) -> the family's output class.  UNets: ``to_images`` undoes the latent
        normalisation first, x = D(z · σ / s + m) (VAE scaling factor s, per-channel latent mean m and std σ; see
        ``latents``); SD3 / Flux: the family's shift and scale, in the pipeline's latent layout."""
        family, pipe = self.family, self.pipe
        if not family.flow:
            return family.output(to_images(pipe, latents, output_type, generator))
        if not torch.isfinite(latents).all():
            raise UserError("sampling produced non-finite values (NaN or infinity); lower the guidance or style scale.")
        if output_type == "latent":
            return family.output(family.pipeline_latents(latents))
        images = pipe.vae.decode(family.decode_latents(pipe.vae, latents.to(pipe.vae.dtype)), return_dict=False)[0]
        return family.output(pipe.image_processor.postprocess(images, output_type=output_type))

    def lora_scale(self, prompt, style: str, scale: float = 1.0, **kwargs):
        """Baseline: base weights + scale·(style LoRA) with plain CFG, prompting with the style suffix."""
        self._scales([style], 1.0)
        check_number("the LoRA scale", scale, -MAX_SCALE, MAX_SCALE, hint="; 1 applies the style as trained")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        self._set_weights({style: scale})
        try:
            return self([p + self.suffixes[style] for p in prompts], styles={}, base_adapter=style, **kwargs)
        finally:
            self._set_weights({})


class FlowStyleGuidedPipeline(StyleGuidedPipeline):
    """A ``StyleGuidedPipeline`` of an SD3 or Flux pipeline (the class ``style_guided`` picks for them)."""

    def __init__(self, pipe, routing=None, controlnet=None, routed_styles: dict[str, str] | None = None):
        check_flow_options(controlnet=controlnet)
        if not family_of(pipe).flow:
            raise UserError(f"{type(pipe).__name__} is not an SD3 or Flux pipeline; wrap it in StyleGuidedPipeline.")
        super().__init__(pipe, routing=routing, routed_styles=routed_styles)


def style_guided(pipe, **kwargs) -> StyleGuidedPipeline:
    """The style-guidance wrapper of ``pipe``'s family: ``FlowStyleGuidedPipeline`` for SD3 and Flux, else
    ``StyleGuidedPipeline``; ``kwargs`` as their constructor's."""
    return (FlowStyleGuidedPipeline if family_of(pipe).flow else StyleGuidedPipeline)(pipe, **kwargs)


def from_pretrained(
    model: str,
    torch_dtype=torch.float32,
    device: str | None = None,
    variant: str | None = None,
    vae: str | None = None,
    controlnet=None,
) -> StyleGuidedPipeline:
    """``StyleGuidedPipeline.from_pretrained``: a model of any family, in its family's wrapper."""
    return StyleGuidedPipeline.from_pretrained(model, torch_dtype, device, variant, vae, controlnet)
