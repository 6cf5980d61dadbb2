"""Style guidance for the rectified-flow transformers (SD3, Flux), paper Eqs. 10-11.

    SD3 (true CFG):        v = v0(∅) + λ_cfg·(v0(c) − v0(∅)) + Σ_i λ_i·(v_i(c_i) − v0(c))
    Flux-dev (distilled):  v = v0(c) + Σ_i λ_i·(v_i(c_i) − v0(c)),   the distilled guidance value
                           (``guidance_scale``) passed to every row as the model's ``guidance`` input;
                           with a ``negative_prompt`` and ``true_cfg_scale`` > 1 the ∅ term of SD3 comes back.

``FlowStyleGuidedPipeline`` is a ``StyleGuidedPipeline``: styles load, route and switch off the same way (the
denoiser is the transformer); only the sampling loop differs.  As for the UNets, all rows of a step go through
ONE batched transformer call (peft's per-row ``adapter_names``), the first ``style_start_fraction`` of the steps
carry no style term, and ``style_end`` / ``style_interval`` / ``style_tolerance`` / ``style_reuse`` act as there
(``StyleSchedule``).
Latents follow the wrapped pipeline's own convention (Flux: packed), so the same ``latents`` give the plain
pipeline's result when every style scale is 0.  ``style_guided(pipe)`` picks the wrapper of a pipeline's family.
"""

from __future__ import annotations

import copy

import torch
from diffusers.utils.torch_utils import randn_tensor

from .checks import check_sampling
from .errors import UserError
from .families import family_of
from .family import Conditioning
from .generate_config import GENERATE
from .guidance import StyleGuidedPipeline
from .guide import StyleSchedule, style_guidance

# What the UNet pipeline's call takes and this one does not: the value that means "not used".
UNSUPPORTED = {"prompt_2": None, "negative_prompt_2": None, "guidance_rescale": 0.0, "control_image": None,
               "controlnet": None}


def check_flow_options(**values) -> None:
    """Refuse, in one sentence, options that SD3 / Flux style guidance does not take (before a model loads)."""
    for name, value in values.items():
        if name not in UNSUPPORTED:
            raise TypeError(f"FlowStyleGuidedPipeline got an unexpected keyword argument {name!r}")
        if value != UNSUPPORTED[name]:
            raise UserError(f"{name.replace('_', ' ')} is not supported for SD3 and Flux pipelines yet; drop it.")


class FlowStyleGuidedPipeline(StyleGuidedPipeline):
    """Generate with learned styles on a ``StableDiffusion3Pipeline`` or ``FluxPipeline`` (shared, not copied)."""

    flow = True

    def __init__(self, pipe, routing=None, controlnet=None, routed_styles: dict[str, str] | None = None):
        check_flow_options(controlnet=controlnet)
        super().__init__(pipe, routing=routing, routed_styles=routed_styles)

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], styles=None, style_scale: float = GENERATE.style_scale,
                 guidance_scale: float | None = None, true_cfg_scale: float = GENERATE.true_cfg_scale,
                 negative_prompt: str | None = None, style_start_fraction: float | None = None,
                 style_end: float | None = GENERATE.style_end, style_interval: int = GENERATE.style_interval,
                 style_tolerance: float | None = GENERATE.style_tolerance, style_reuse: str = GENERATE.style_reuse,
                 num_inference_steps: int = 28,
                 height: int | None = None, width: int | None = None, seed: int | None = None, generator=None,
                 latents: torch.Tensor | None = None, output_type: str = "pil",
                 num_images_per_prompt: int = GENERATE.num_images_per_prompt, base_adapter: str | None = None,
                 **unsupported):
        """Generate; returns the wrapped pipeline's own output class.

        ``guidance_scale``: SD3's CFG scale (default 7), Flux's distilled guidance value (default 3.5).
        ``style_start_fraction`` default: 0.2 (SD3), 6/28 (Flux, as the research code: style from step 6 of 28).
        ``base_adapter``: the adapter behind v0 (None: the base weights; ``lora_scale`` sets it).
        """
        check_flow_options(**unsupported)
        pipe, family = self.pipe, self.family
        guidance_scale = family.default_guidance if guidance_scale is None else guidance_scale
        if style_start_fraction is None:
            style_start_fraction = family.default_style_start_fraction
        scales = self._scales(styles, style_scale)
        factor = pipe.vae_scale_factor * family.patch
        check_sampling(guidance_scale, scales, style_start_fraction, num_inference_steps, height, width, seed,
                       num_images_per_prompt, factor, style_end=style_end, style_interval=style_interval,
                       style_tolerance=style_tolerance, style_reuse=style_reuse)
        check_sampling(true_cfg_scale, {}, style_start_fraction, num_inference_steps, None, None, None, 1, factor)
        height = height or pipe.default_sample_size * pipe.vae_scale_factor
        width = width or pipe.default_sample_size * pipe.vae_scale_factor
        prompts = [p for p in ([prompt] if isinstance(prompt, str) else prompt) for _ in range(num_images_per_prompt)]
        device = pipe._execution_device
        if generator is None and seed is not None:
            generator = torch.Generator("cpu").manual_seed(seed)

        # 1. rows: [∅] (true CFG only), c, c + suffix_i per style
        cfg, with_uncond = family.cfg(guidance_scale, true_cfg_scale, negative_prompt)
        cond, uncond = family.encode(pipe, prompts, device, negative_prompt, with_negative=with_uncond)
        blocks = ([uncond] if with_uncond else []) + [cond]
        blocks += [family.encode(pipe, [p + self.suffixes[n] for p in prompts], device)[0] for n in scales]
        blocks = [family.with_guidance(pipe, b, guidance_scale) for b in blocks]
        plain = 2 if with_uncond else 1
        names = [base_adapter] * plain + list(scales)
        cond_of = {k: Conditioning.cat(blocks[:k]) for k in {plain, len(blocks)}}

        # 2. latents (the pipeline's layout in and out) and timesteps, on a private copy of the scheduler
        shape = family.latent_shape(pipe, len(prompts), height, width)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=cond.hidden.dtype)
        else:
            latents = family.from_pipeline_latents(latents.to(device, cond.hidden.dtype), shape)
            if latents.shape != shape:
                raise UserError(f"latents do not fit {height}x{width} images (latent shape {tuple(shape)}).")
        scheduler = copy.deepcopy(pipe.scheduler)
        timesteps = family.sampling_timesteps(pipe, scheduler, num_inference_steps, shape[2:], device)
        stop = len(timesteps) if style_end is None else round(style_end * len(timesteps))
        schedule = StyleSchedule(round(style_start_fraction * len(timesteps)), stop if scales else 0,
                                 style_interval, style_tolerance, style_reuse)

        # 3. denoising: one transformer call per step
        with self._adapters_enabled():
            for i, t in enumerate(pipe.progress_bar(timesteps)):
                active = len(blocks) if schedule.fresh(i) else plain
                per_row = [name for name in names[:active] for _ in prompts]
                with self.routing(per_row):
                    v = family.predict(self.denoiser, latents.repeat(active, 1, 1, 1), t.expand(active * len(prompts)),
                                       cond_of[active]).chunk(active)
                v_uncond, v_cond = (v[0], v[1]) if with_uncond else (v[0], v[0])
                deltas = schedule.update(i, v_cond, list(v[plain:]))            # v_i(c_i) − v0(c), Eqs. 10-11
                guided = style_guidance(v_uncond, v_cond, deltas, cfg, list(scales.values())[:len(deltas)])
                latents = scheduler.step(guided, t, latents, return_dict=False)[0]

        # 4. decode
        if not torch.isfinite(latents).all():
            raise UserError("sampling produced non-finite values (NaN or infinity); lower the guidance or style scale.")
        if output_type == "latent":
            return family.output(family.pipeline_latents(latents))
        images = pipe.vae.decode(family.decode_latents(pipe.vae, latents.to(pipe.vae.dtype)), return_dict=False)[0]
        return family.output(pipe.image_processor.postprocess(images, output_type=output_type))

    def stylize(self, *args, **kwargs):
        raise UserError("stylising an existing image is not supported for SD3 and Flux pipelines yet; use "
                        "'paircustom generate'.")


def style_guided(pipe, **kwargs) -> StyleGuidedPipeline:
    """The style-guidance wrapper of ``pipe``'s family: ``FlowStyleGuidedPipeline`` for SD3 and Flux, else
    ``StyleGuidedPipeline``; ``kwargs`` as their constructor's."""
    return (FlowStyleGuidedPipeline if family_of(pipe).flow else StyleGuidedPipeline)(pipe, **kwargs)


def from_pretrained(model: str, torch_dtype=torch.float32, device: str | None = None, variant: str | None = None,
                    vae: str | None = None, controlnet=None) -> StyleGuidedPipeline:
    """``StyleGuidedPipeline.from_pretrained`` for a model of any family."""
    return StyleGuidedPipeline.from_pretrained(model, torch_dtype, device, variant, vae, controlnet, wrap=style_guided)
