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

from ..adapters.layers import peft_routing
from ..config.checks import MAX_SCALE, check_number
from ..config.generate import GENERATE
from ..config.validate import check_path, check_prompts, check_text, check_texts
from ..distributed import check_device
from ..errors import UserError
from ..models.family import Size
from ..models.registry import family_of, load_pipeline
from . import loop
from .control import Control, load_controlnet, with_controlnet
from .prepare import check_flow_options, checked_call, guide_of, initial_latents, latent_shape, timesteps_of
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
        the wrapper (default: ``style_guided``, the class of the model's family, or this class if a subclass)."""
        check_path("model", model)
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

        ``styles``: {name: scale}, a list of names (each at ``style_scale``), or None for all loaded styles; a
        scale may also be a list with one number per prompt (``sweep`` draws a grid row in one call so).
        Style terms act from ``style_start_fraction`` up to ``style_end`` (fractions of the steps; None: to the end).
        ``style_interval=k`` recomputes the style deltas e_i(c_i) − e0(c) every k style steps and reuses them
        in between (only the CFG rows are computed there); ``style_tolerance`` also recomputes them early when
        the base prediction has moved by more than that relative L1 change; ``style_reuse="forecast"`` adds a
        straight-line extrapolation of the last two deltas on those steps instead (see ``StyleSchedule``).
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
        (Over 60 lines: diffusers' argument list, its documentation here, and calls written one argument a line.)
        """
        pipe, family = self.pipe, self.family
        prompts = check_prompts(prompt)
        # 1. check inputs; the family's defaults
        schedule = dict(style_end=style_end, style_interval=style_interval, style_tolerance=style_tolerance)
        unet_only = dict(
            prompt_2=prompt_2,
            negative_prompt_2=negative_prompt_2,
            guidance_rescale=guidance_rescale,
            control_image=control_image,
            eta=eta,
            denoising_end=denoising_end,
            callback_on_step_end=callback_on_step_end,
        )
        scales, guidance_scale, style_start_fraction, steps, height, width = checked_call(
            self,
            styles,
            style_scale,
            guidance_scale,
            style_start_fraction,
            num_inference_steps,
            height,
            width,
            seed,
            num_images_per_prompt,
            true_cfg_scale,
            dict(schedule, style_reuse=style_reuse),
            unet_only,
            rows=len(prompts),
        )
        prompts = self._check_call(prompt, scales, base_adapter)
        check_texts("negative_prompt", negative_prompt)
        if generator is None and seed is not None:
            generator = torch.Generator("cpu").manual_seed(seed)

        # 2. timesteps, on a private copy of the pipeline's scheduler: its state (Euler's step index, PNDM's
        #    history) stays as the user and a running training left it; 3. the initial latents
        scheduler = copy.deepcopy(pipe.scheduler)
        shape = latent_shape(self, len(prompts) * num_images_per_prompt, height, width)
        timesteps = timesteps_of(self, scheduler, steps, shape, denoising_end)
        # 4. encode prompts: [∅], c, and c + suffix_i for each style; one row block each; the control image
        guide = self._guide(
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

    # the denoising loop, one denoiser call of all row blocks, and decoding: in ``loop``, for every family
    # (the benchmark's oracle rows override ``_guide``, ``_predict`` and ``_style_texts``)
    denoise = loop.denoise
    _guide = guide_of
    _predict = loop.predict
    _decode = loop.decode

    def _style_texts(self, texts: list[str] | None, name: str) -> list[str] | None:
        """The prompts c_i of style ``name``'s rows (Eq. 10): each text + the style's suffix."""
        return None if texts is None else [text + self.suffixes[name] for text in texts]

    def sweep(self, prompt, styles: dict, seeds=(0,), lora_scales=None, cells_per_call: int | None = None, **kwargs):
        """A strength sweep ({name: strengths}) or blend grid (2-3 styles) with labelled axes; see ``sweep``."""
        from .sweep import sweep

        return sweep(self, prompt, styles, seeds, lora_scales, cells_per_call, **kwargs)

    def lora_scale(self, prompt, style: str, scale: float = 1.0, **kwargs):
        """Baseline: base weights + scale·(style LoRA) with plain CFG, prompting with the style suffix."""
        check_text("style", style, optional=False)
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
