"""Style guidance (paper Eqs. 9-11) as a wrapper around a loaded SD / SDXL diffusers pipeline.

    eps = e0(x_t, ∅) + λ_cfg·(e0(x_t, c) − e0(x_t, ∅)) + Σ_i λ_i·(e_i(x_t, c_i) − e0(x_t, c))

    e0        base model (no adapter)                    rows "uncond" and "cond"
    e_i       base model + style LoRA i (content dropped) one row block per style
    c_i       prompt + style i's suffix ("... in digital art style")
    λ_cfg     guidance_scale;  λ_i  that style's scale (0 drops the term)

All predictions of one denoising step come from ONE batched UNet call in which
each row picks its adapter (peft's mixed-batch ``adapter_names``).  The first
``style_start_fraction`` of the steps run plain CFG, as in the paper; after ``style_end`` plain CFG runs
again.  In between, the style delta e_i(c_i) − e0(c) may be recomputed only every ``style_interval`` steps (or
when ``style_tolerance`` says it is stale) and reused in between, where the call holds the CFG rows only
(``guide.StyleSchedule``).  With a
ControlNet (``control``) its residuals are computed once per step for all rows;
stylising existing images (SDEdit, DDIM inversion) lives in ``stylize``.
"""

from __future__ import annotations

import copy
import math
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg
from diffusers.utils.torch_utils import randn_tensor

from .adapters import peft_routing
from .control import Control, load_controlnet, residuals_kwargs, with_controlnet
from .checks import MAX_SCALE, check_number, check_sampling
from .errors import PairCustomWarning, UserError
from .distributed import check_device
from .families import family_of, load_pipeline
from .family import Conditioning, Size
from .formats import check_fits, read_style, require_suffix
from .generate_config import GENERATE
from .guide import Guide, StyleSchedule, style_guidance
from .latents import to_images


class StyleGuidedPipeline:
    """Generate with one or more learned styles by style guidance; wraps (and shares) a diffusers pipeline."""

    flow = False        # the families it samples: UNets here, SD3 and Flux in ``flow_guidance``

    def __init__(self, pipe, routing=None, controlnet=None, routed_styles: dict[str, str] | None = None):
        """Wrap ``pipe`` (SD, SDXL, or their ControlNet pipelines); ``controlnet`` (a ControlNetModel) turns an SD /
        SDXL pipeline into its ControlNet pipeline sharing the same components (diffusers' ``from_pipe``).

        ``routing(adapter_names)`` gives the context in which UNet row i uses adapter_names[i] (None: the base
        weights); by default peft's adapters, loaded with ``load_style``.  ``routed_styles`` ({name: prompt
        suffix}) are styles that ``routing`` applies itself, e.g. a training run's own adapter layers (previews).
        """
        if controlnet is not None:
            pipe = with_controlnet(pipe, controlnet)
        self.pipe = pipe
        self.family = family_of(pipe)
        if self.family.flow != self.flow:
            raise UserError(f"{type(pipe).__name__} takes {'Flow' * self.family.flow}StyleGuidedPipeline; wrap it in "
                            "paircustom.flow_guidance.style_guided(pipe), which picks the right one.")
        self.denoiser = self.family.denoiser(pipe)             # the UNet (SD, SDXL) or transformer (SD3, Flux)
        self.suffixes: dict[str, str] = dict(routed_styles or {})     # style name -> prompt suffix
        self.content_prompts: dict[str, str | None] = {}   # style name -> its file's content prompt (stylize)
        self.routing = routing or (lambda names: peft_routing(self.denoiser, names))

    @classmethod
    def from_pretrained(cls, model: str, torch_dtype=torch.float32, device: str | None = None,
                        variant: str | None = None, vae: str | None = None, controlnet=None,
                        wrap=None) -> "StyleGuidedPipeline":
        """Load a hub id, a local folder or "shapes" (the embedded model).

        ``variant`` ("fp16") picks weight files; ``vae`` (folder or hub id) replaces the VAE, e.g.
        "madebyollin/sdxl-vae-fp16-fix" for SDXL in fp16; ``controlnet`` (ControlNetModel, folder or hub id)
        adds a ControlNet.  ``device`` is checked before anything loads.  ``wrap(pipe, controlnet=...)`` makes
        the wrapper (default: this class; ``flow_guidance.from_pretrained`` picks the one of the model's family).
        """
        device = check_device(device) if device else None
        pipe = load_pipeline(model, torch_dtype, variant=variant, vae=vae)
        if isinstance(controlnet, (str, Path)):
            controlnet = load_controlnet(str(controlnet), torch_dtype)
        guided = (wrap or cls)(pipe, controlnet=controlnet)
        if device:
            guided.pipe.to(device)
        return guided

    def load_style(self, path: str | Path, name: str | None = None, suffix: str | None = None) -> str:
        """Load a style file as peft adapter ``name`` (default: the file's stem); return the name.

        Any layout diffusers' ``load_lora_weights`` reads works (peft, old diffusers, kohya; see ``layouts``).
        ``suffix`` (e.g. " in digital art style") replaces the file's own; it is
        required for files without paircustom metadata.
        """
        style = read_style(path, self.denoiser.config)
        tensors, metadata = style.tensors, style.metadata
        check_fits(path, tensors, metadata, self.family.name, self.denoiser)
        require_suffix(path, metadata, suffix)
        name = name or Path(path).stem
        if not name or "." in name or hasattr(torch.nn.ModuleDict, name):   # peft keeps adapters in ModuleDicts
            raise UserError(f"'{name}' cannot name a style (it is empty, has a '.' or is a torch module attribute); "
                            "give another name (name=..., --name on the command line).")
        if name in self.suffixes:
            raise UserError(f"a style named '{name}' is already loaded; give this one another name.")
        if style.ignored:
            warnings.warn(f"'{path}' also holds {style.ignored} text-encoder LoRA tensors; paircustom adapts only the "
                          "denoiser, so they are ignored.", PairCustomWarning, stacklevel=2)
        # The denoiser part of diffusers' load_lora_weights, on the file converted to the peft layout.
        with warnings.catch_warnings():   # peft warns that the model already holds adapters: that is the point
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            self.denoiser.load_lora_adapter(tensors, prefix=self.family.lora_prefix, adapter_name=name)
        self.suffixes[name] = suffix if suffix is not None else metadata.style_suffix
        self.content_prompts[name] = metadata.content_prompt if metadata is not None else None
        if metadata is not None and metadata.adapter != "style":
            warnings.warn(f"'{path}' holds a {metadata.adapter} LoRA, not a style; the style file is the one "
                          "without '-content' in its name.", PairCustomWarning, stacklevel=2)
        self._set_weights({})
        self.denoiser.disable_lora()     # the wrapped pipeline, called directly, stays the base model
        return name

    def _scales(self, styles, style_scale: float) -> dict[str, float]:
        if styles is None:
            styles = list(self.suffixes)
        if not isinstance(styles, dict):
            styles = {name: style_scale for name in styles}
        for name, scale in styles.items():
            if name not in self.suffixes:
                raise UserError(f"no style named '{name}' is loaded (loaded: {', '.join(self.suffixes) or 'none'}); "
                                "call load_style first.")
            if not math.isfinite(scale):
                raise UserError(f"the scale of style '{name}' is {scale}; give a finite number such as 3.")
        return {name: float(scale) for name, scale in styles.items() if scale != 0}

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], styles=None, style_scale: float = GENERATE.style_scale,
                 guidance_scale: float = GENERATE.guidance_scale,
                 style_start_fraction: float = GENERATE.style_start_fraction,
                 style_end: float | None = GENERATE.style_end, style_interval: int = GENERATE.style_interval,
                 style_tolerance: float | None = GENERATE.style_tolerance,
                 style_reuse: str = GENERATE.style_reuse, num_inference_steps: int = GENERATE.num_inference_steps,
                 negative_prompt: str | None = GENERATE.negative_prompt, height: int | None = GENERATE.height,
                 width: int | None = GENERATE.width, seed: int | None = None, generator=None,
                 latents: torch.Tensor | None = None, output_type: str = "pil",
                 num_images_per_prompt: int = GENERATE.num_images_per_prompt, eta: float = 0.0, batched: bool = True,
                 base_adapter: str | None = None, prompt_2: str | list[str] | None = GENERATE.prompt_2,
                 negative_prompt_2: str | None = GENERATE.negative_prompt_2,
                 guidance_rescale: float = GENERATE.guidance_rescale, denoising_end: float | None = None,
                 callback_on_step_end=None, control_image=None,
                 controlnet_conditioning_scale: float = GENERATE.controlnet_conditioning_scale):
        """Generate; returns the wrapped pipeline's own output type (``.images``).

        ``styles``: {name: scale}, a list of names (each at ``style_scale``), or None for all loaded styles.
        Style terms act from ``style_start_fraction`` up to ``style_end`` (fractions of the steps; None: to the end).
        ``style_interval=k`` recomputes the style deltas e_i(c_i) − e0(c) every k style steps and reuses them
        in between (only the CFG rows are computed there); ``style_tolerance`` also recomputes them early when
        the base prediction has moved by more than that relative L1 change; ``style_reuse="forecast"`` adds a
        straight-line extrapolation of the last two deltas on those steps instead (see ``StyleSchedule``).
        ``batched=False`` makes one UNet call per term instead of one per step (same result, for comparison).
        ``base_adapter``: the adapter behind e0 (None: base weights; ``lora_scale`` sets it).
        As in diffusers: ``prompt_2``/``negative_prompt_2`` (SDXL's second text encoder; style suffixes are
        appended to both prompts), ``guidance_rescale`` (applied to the guided prediction),
        ``denoising_end`` (stop at this fraction, e.g. for a refiner) and
        ``callback_on_step_end(pipe, i, t, {"latents": ...})``, which may return replacement latents.
        With a ControlNet (see ``__init__``): ``control_image`` (PIL image, path or tensor) and
        ``controlnet_conditioning_scale``, as in diffusers' ControlNet pipelines.
        """
        pipe = self.pipe
        # 1. check inputs
        scales = self._scales(styles, style_scale)
        if not (0.0 <= guidance_rescale <= 1.0) or not (denoising_end is None or 0.0 < denoising_end <= 1.0):
            raise UserError(f"guidance_rescale must lie in [0, 1] (got {guidance_rescale}) and denoising_end in "
                            f"(0, 1] (got {denoising_end}).")
        factor = pipe.vae_scale_factor
        check_sampling(guidance_scale, scales, style_start_fraction, num_inference_steps, height, width, seed,
                       num_images_per_prompt, factor, pipe.scheduler.config.get("num_train_timesteps", 1000),
                       style_end=style_end, style_interval=style_interval, style_tolerance=style_tolerance,
                       style_reuse=style_reuse)
        height = height or pipe.unet.config.sample_size * factor
        width = width or pipe.unet.config.sample_size * factor
        device = pipe._execution_device
        if generator is None and seed is not None:
            generator = torch.Generator("cpu").manual_seed(seed)

        # 2. encode prompts: ∅, c, and c + suffix_i for each style; one row block each; the control image
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        size = Size((height, width), (0, 0), (height, width))
        guide = self._guide(prompts, scales, [size] * len(prompts), guidance_scale, negative_prompt, prompt_2,
                            negative_prompt_2, num_images_per_prompt, base_adapter, guidance_rescale, batched)
        guide.control = self._control(control_image, height, width, controlnet_conditioning_scale)

        # 3. timesteps, 4. initial latents, 5. scheduler extras, on a private copy of the pipeline's scheduler:
        #    its state (Euler's step index, PNDM's history) stays as the user and a running training left it.
        scheduler = copy.deepcopy(pipe.scheduler)
        scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = scheduler.timesteps
        shape = (len(prompts) * num_images_per_prompt, pipe.unet.config.in_channels, height // factor, width // factor)
        dtype = guide.cond_of[2].hidden.dtype
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif latents.shape != shape:
            raise UserError(f"latents must have shape {tuple(shape)} for these settings; got {tuple(latents.shape)}.")
        latents = latents.to(device, dtype) * scheduler.init_noise_sigma                     # (B, C, h, w)
        guide.first_styled = round(style_start_fraction * len(timesteps))
        guide.stop_styled = None if style_end is None else round(style_end * len(timesteps))
        guide.style_interval, guide.style_tolerance, guide.style_reuse = style_interval, style_tolerance, style_reuse
        if denoising_end is not None:    # diffusers' rule: keep the steps at or above the cut-off timestep
            steps = scheduler.config.num_train_timesteps
            timesteps = timesteps[timesteps >= int(round(steps - denoising_end * steps))]

        # 6. denoising loop, 7. decode
        latents = self.denoise(scheduler, latents, timesteps, guide, pipe.prepare_extra_step_kwargs(generator, eta),
                               callback_on_step_end)
        return self._decode(latents, output_type, generator)

    def stylize(self, image, prompt: str | None = None, styles=None, strength: float = GENERATE.strength,
                method: str = GENERATE.method, **kwargs):
        """Stylise an existing image (PIL or path) by "sdedit" or "inversion"; see ``paircustom.stylize``."""
        from .stylize import stylize

        return stylize(self, image, prompt, styles, strength, method, **kwargs)

    def _guide(self, prompts: list[str], scales: dict[str, float], sizes: list[Size], guidance_scale: float,
               negative_prompt=None, prompt_2=None, negative_prompt_2=None, num_images_per_prompt: int = 1,
               base_adapter: str | None = None, guidance_rescale: float = GENERATE.guidance_rescale,
               batched: bool = True) -> "Guide":
        """Encode ∅, c and c + suffix_i (one row block each, ``sizes`` one per prompt) into a ``Guide``."""
        pipe, family = self.pipe, self.family
        if family.name != "sdxl" and (prompt_2 is not None or negative_prompt_2 is not None):
            raise UserError("prompt_2 and negative_prompt_2 feed SDXL's second text encoder; this pipeline has one "
                            "text encoder, so drop them.")
        prompts_2 = None if prompt_2 is None else [prompt_2] * len(prompts) if isinstance(prompt_2, str) else list(prompt_2)
        if prompts_2 is not None and len(prompts_2) != len(prompts):
            raise UserError(f"give one prompt_2 per prompt ({len(prompts)}); got {len(prompts_2)}.")
        device = pipe._execution_device
        cond, uncond = family.encode(pipe, prompts, device, negative_prompt, with_negative=True, prompts_2=prompts_2,
                                     negative_prompt_2=negative_prompt_2)
        blocks = [uncond, cond] + [family.encode(pipe, self._style_texts(prompts, n), device,
                                                 prompts_2=self._style_texts(prompts_2, n))[0] for n in scales]
        blocks = [family.add_size(pipe, b, sizes).repeat(num_images_per_prompt) for b in blocks]
        cond_of = {active: Conditioning.cat(blocks[:active]) for active in {2, len(blocks)}}  # (k·B, T, D) each
        return Guide(cond_of, [base_adapter, base_adapter, *scales], list(scales.values()), guidance_scale,
                     guidance_rescale=guidance_rescale, batched=batched)

    def _style_texts(self, texts: list[str] | None, name: str) -> list[str] | None:
        """The prompts c_i of style ``name``'s rows (Eq. 10): each text + the style's suffix."""
        return None if texts is None else [text + self.suffixes[name] for text in texts]

    def _control(self, control_image, height: int, width: int, scale: float):
        """The control image prepared for the pipeline's ControlNet, or None without one."""
        if control_image is None and getattr(self.pipe, "controlnet", None) is None:
            return None
        return Control.of(self.pipe, control_image, height, width, scale)

    def denoise(self, scheduler, latents, timesteps, guide: "Guide", extra: dict | None = None,
                callback_on_step_end=None) -> torch.Tensor:
        """Run ``scheduler`` over ``timesteps`` from ``latents`` with style guidance (Eqs. 10-11); each step is
        one batched UNet call (and one ControlNet call) on the CFG row blocks and, when ``StyleSchedule`` says so,
        the style blocks; style terms from ``guide.first_styled`` up to ``guide.stop_styled``."""
        pipe, blocks = self.pipe, 2 + len(guide.scales)
        stop = len(timesteps) if guide.stop_styled is None else guide.stop_styled
        schedule = StyleSchedule(guide.first_styled, stop if guide.scales else 0, guide.style_interval,
                                 guide.style_tolerance, guide.style_reuse)
        with self._adapters_enabled():    # peft adapters are switched on only for the loop
            for i, t in enumerate(pipe.progress_bar(timesteps)):
                # 6a. the rows of this step: CFG always, the style rows when the schedule recomputes them
                active = blocks if schedule.fresh(i) else 2
                model_input = scheduler.scale_model_input(latents, t).repeat(active, 1, 1, 1)  # (k·B, C, h, w)
                # 6b. one batched UNet call of those rows
                e_uncond, e_cond, *e_styles = self._predict(model_input, t, guide.cond_of[active],
                                                            guide.names[:active], guide.batched,
                                                            guide.control).chunk(active)
                # 6c. style deltas e_i(c_i) − e0(c): this step's, cached ones, or none outside the style steps
                deltas = schedule.update(i, e_cond, e_styles)
                # 6d. Eqs. 10-11
                guided = style_guidance(e_uncond, e_cond, deltas, guide.guidance_scale, guide.scales[:len(deltas)])
                if guide.guidance_rescale > 0:
                    guided = rescale_noise_cfg(guided, e_cond, guide.guidance_rescale)
                # 6e. scheduler step
                latents = scheduler.step(guided, t, latents, **(extra or {}), return_dict=False)[0]
                if callback_on_step_end is not None:
                    latents = (callback_on_step_end(pipe, i, t, {"latents": latents}) or {}).get("latents", latents)
        return latents

    def _predict(self, model_input, t, cond: Conditioning, names: list[str | None], batched: bool, control=None):
        """UNet predictions for all row blocks (one adapter name per block): one call, or one call per term.

        With a ControlNet its residuals are computed once, in one call on all rows, and handed to the UNet.
        """
        rows = len(model_input) // len(names)
        per_row = [name for name in names for _ in range(rows)]
        residuals = control.residuals(model_input, t, cond) if control is not None else None
        if batched:
            with self.routing(per_row):
                return self.pipe.unet(model_input, t, **cond.unet_kwargs(), **residuals_kwargs(residuals),
                                      return_dict=False)[0]
        out = []   # the reference algorithm: unconditional + conditional together, then each style alone
        for start, stop in [(0, 2)] + [(k, k + 1) for k in range(2, len(names))]:
            part = list(range(start * rows, stop * rows))
            with self.routing(per_row[start * rows:stop * rows]):
                out.append(self.pipe.unet(model_input[part], t, **cond.select(part).unet_kwargs(),
                                          **residuals_kwargs(residuals, part), return_dict=False)[0])
        return torch.cat(out)

    def _decode(self, latents, output_type: str, generator):
        # latents (B, C, h, w) -> the family's output class; ``to_images`` undoes the latent normalisation first,
        # x = D(z · σ / s + m) (VAE scaling factor s, per-channel latent mean m and std σ; see ``latents``)
        return self.family.output(to_images(self.pipe, latents, output_type, generator))

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

    @contextmanager
    def _adapters_enabled(self):
        """Our loaded styles take part only inside our calls; outside them the pipeline is the base model."""
        if not self.suffixes:
            yield
            return
        self.denoiser.enable_lora()
        try:
            yield
        finally:
            self.denoiser.disable_lora()

    def _set_weights(self, weights: dict[str, float]) -> None:
        """LoRA strength of each loaded style: 1 (as trained) unless given; guidance scales do the weighting."""
        names = list(self.suffixes)
        self.denoiser.set_adapters(names, [weights.get(n, 1.0) for n in names])

