"""Style guidance for the rectified-flow transformers (SD3, Flux), paper Eqs. 10-11.

    SD3 (true CFG):        v = v0(∅) + λ_cfg·(v0(c) − v0(∅)) + Σ_i λ_i·(v_i(c_i) − v0(c))
    Flux-dev (distilled):  v = v0(c) + Σ_i λ_i·(v_i(c_i) − v0(c)),   the distilled guidance value
                           (``guidance_scale``) passed to every row as the model's ``guidance`` input;
                           with a ``negative_prompt`` and ``true_cfg_scale`` > 1 the ∅ term of SD3 comes back.

As for the UNets, all rows of a step go through ONE batched transformer call (peft's per-row
``adapter_names``) and the first ``style_start_fraction`` of the steps carry no style term.
Latents follow the wrapped pipeline's own convention (Flux: packed), so the same ``latents`` give
the plain pipeline's result when every style scale is 0.
"""

from __future__ import annotations

import copy
import json
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers.utils.torch_utils import randn_tensor

from .adapters import peft_routing
from .checks import check_sampling
from .errors import UserError
from .families import family_of
from .family import Conditioning
from .generate_config import GENERATE
from .formats import METADATA_KEY
from .guide import style_guidance


class FlowStyleGuidedPipeline:
    """Generate with learned styles on a ``StableDiffusion3Pipeline`` or ``FluxPipeline`` (shared, not copied)."""

    def __init__(self, pipe):
        self.pipe, self.family = pipe, family_of(pipe)
        if not self.family.flow:
            raise UserError(f"{type(pipe).__name__} is a UNet pipeline; use StyleGuidedPipeline for it.")
        self.transformer = self.family.denoiser(pipe)
        self.suffixes: dict[str, str] = {}

    def load_style(self, path: str | Path, name: str | None = None, suffix: str | None = None) -> str:
        """Load a style file with diffusers' own ``load_lora_weights``; its suffix comes from our metadata."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise UserError(f"the style file '{path}' does not exist; give the .safetensors file written by training.")
        with safe_open(str(path), framework="pt") as file:
            header = file.metadata() or {}
        metadata = json.loads(header[METADATA_KEY]) if METADATA_KEY in header else {}
        if metadata.get("family", self.family.name) != self.family.name:
            raise UserError(f"'{path}' was trained on a {metadata['family']} model but this pipeline is "
                            f"{self.family.name}; load it into a {metadata['family']} pipeline.")
        suffix = suffix if suffix is not None else metadata.get("style_suffix")
        if suffix is None:
            raise UserError(f"'{path}' has no paircustom metadata, so its style prompt is unknown; pass "
                            "suffix=' in <style> style'.")
        name = name or path.stem
        if name in self.suffixes or "." in name:
            raise UserError(f"'{name}' cannot name this style (already loaded, or has a '.'); give another name.")
        self.pipe.load_lora_weights(str(path), adapter_name=name)
        self.suffixes[name] = suffix
        self.transformer.set_adapters(list(self.suffixes), [1.0] * len(self.suffixes))
        self.transformer.disable_lora()          # the wrapped pipeline, called directly, stays the base model
        return name

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], styles: dict[str, float] | None = None,
                 style_scale: float = GENERATE.style_scale,
                 guidance_scale: float | None = None, true_cfg_scale: float = 1.0, negative_prompt: str | None = None,
                 style_start_fraction: float | None = None, num_inference_steps: int = 28,
                 height: int | None = None,
                 width: int | None = None, generator=None, latents: torch.Tensor | None = None,
                 output_type: str = "pil"):
        """Generate; returns the wrapped pipeline's own output class.

        ``guidance_scale``: SD3's CFG scale (default 7), Flux's distilled guidance value (default 3.5).
        ``style_start_fraction`` default: 0.2 (SD3), 6/28 (Flux, as the research code: style from step 6 of 28).
        """
        pipe, family = self.pipe, self.family
        guidance_scale = family.default_guidance if guidance_scale is None else guidance_scale
        if style_start_fraction is None:
            style_start_fraction = family.default_style_start_fraction
        scales = self._scales(styles, style_scale)
        factor = pipe.vae_scale_factor * 2
        check_sampling(guidance_scale, scales, style_start_fraction, num_inference_steps, height, width, None, 1, factor)
        check_sampling(true_cfg_scale, {}, style_start_fraction, num_inference_steps, None, None, None, 1, factor)
        height = height or pipe.default_sample_size * pipe.vae_scale_factor
        width = width or pipe.default_sample_size * pipe.vae_scale_factor
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        device = pipe._execution_device

        # 1. rows: [∅] (true CFG only), c, c + suffix_i per style
        cfg, with_uncond = family.cfg(guidance_scale, true_cfg_scale, negative_prompt)
        cond, uncond = family.encode(pipe, prompts, device, negative_prompt, with_negative=with_uncond)
        blocks = ([uncond] if with_uncond else []) + [cond]
        blocks += [family.encode(pipe, [p + self.suffixes[n] for p in prompts], device)[0] for n in scales]
        blocks = [family.with_guidance(pipe, b, guidance_scale) for b in blocks]
        names = [None] * (2 if with_uncond else 1) + list(scales)
        plain = 2 if with_uncond else 1
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
        first_styled = round(style_start_fraction * len(timesteps))

        # 3. denoising: one transformer call per step
        with self._adapters_enabled():
            for i, t in enumerate(pipe.progress_bar(timesteps)):
                active = len(blocks) if i >= first_styled else plain
                rows = len(prompts)
                per_row = [name for name in names[:active] for _ in range(rows)]
                with peft_routing(self.transformer, per_row):
                    v = family.predict(self.transformer, latents.repeat(active, 1, 1, 1), t.expand(active * rows),
                                       cond_of[active]).chunk(active)
                v_uncond, v_cond, v_styles = (v[0], v[1], v[2:]) if with_uncond else (v[0], v[0], v[1:])
                deltas = [v_style - v_cond for v_style in v_styles]           # v_i(c_i) − v0(c), Eq. 10-11
                guided = style_guidance(v_uncond, v_cond, deltas, cfg, [scales[n] for n in names[plain:active]])
                latents = scheduler.step(guided, t, latents, return_dict=False)[0]

        # 4. decode
        if not torch.isfinite(latents).all():
            raise UserError("sampling produced non-finite values (NaN or infinity); lower the guidance or style scale.")
        if output_type == "latent":
            return family.output(family.pipeline_latents(latents))
        images = pipe.vae.decode(family.decode_latents(pipe.vae, latents.to(pipe.vae.dtype)), return_dict=False)[0]
        return family.output(pipe.image_processor.postprocess(images, output_type=output_type))

    def _scales(self, styles, style_scale: float) -> dict[str, float]:
        if styles is None:
            styles = {name: style_scale for name in self.suffixes}
        for name in styles:
            if name not in self.suffixes:
                raise UserError(f"no style named '{name}' is loaded (loaded: {', '.join(self.suffixes) or 'none'}); "
                                "call load_style first.")
        return {name: float(scale) for name, scale in styles.items() if scale != 0}

    @contextmanager
    def _adapters_enabled(self):
        if not self.suffixes:
            yield
            return
        self.transformer.enable_lora()
        try:
            yield
        finally:
            self.transformer.disable_lora()
