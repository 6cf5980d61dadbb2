"""Style guidance (paper Eqs. 10-11) as a ComfyUI GUIDER, for SamplerCustomAdvanced and our sampler node.

    D = D0(∅) + λ_cfg·(D0(c) − D0(∅)) + Σ_i λ_i·(D_i(c + suffix_i) − D0(c))

ComfyUI's guiders combine denoised predictions D (x0), not noise predictions; D = c_skip·x + c_out·ε (or v) at
one noise level, and every weight sum above is 1 (CFG) or 0 (style terms), so this is Eq. 10/11 of the noise
predictions exactly.  D_i is the model with style i's LoRA: its conditioning carries that LoRA as a ComfyUI
weight hook (``styles.load_style``), so ComfyUI patches the weights for those rows only.
"""

from __future__ import annotations

from dataclasses import dataclass

import comfy.hooks
import comfy.samplers

from .styles import Style


@dataclass(frozen=True)
class Styled:
    """A prompt encoded for style guidance: c (``positive``) and c + suffix_i for each style (``branches``)."""

    positive: list  # ComfyUI CONDITIONING of the prompt
    branches: tuple  # ((Style, CONDITIONING of prompt + its suffix), ...)


def style_window(sigmas, start: float, end: float) -> tuple[float, float]:
    """Noise levels (high, low] in which the style terms act: steps round(start·N) <= i < round(end·N), the rule
    of ``StyleGuidedPipeline`` (N = len(sigmas) − 1 steps; step i evaluates the model at sigmas[i])."""
    steps = len(sigmas) - 1
    first, stop = round(start * steps), round(end * steps)
    if first >= stop:
        return 0.0, 0.0  # an empty window
    return float(sigmas[first]), float(sigmas[stop])


class StyleGuider(comfy.samplers.CFGGuider):
    """CFG plus one term per style (Eqs. 10-11) inside the style window, plain CFG outside it."""

    def set_styled(self, styled: Styled, negative, cfg: float, start: float, end: float):
        self.styles: list[Style] = [style for style, _ in styled.branches]
        self.start, self.end = start, end
        conds = {"positive": styled.positive, "negative": negative}
        for i, (style, cond) in enumerate(styled.branches):
            conds[f"style_{i}"] = comfy.hooks.set_hooks_for_conditioning(cond, style.hooks)
        self.inner_set_conds(conds)
        self.set_cfg(cfg)

    def sample(self, noise, latent_image, sampler, sigmas, *args, **kwargs):
        self.window = style_window(sigmas, self.start, self.end)
        return super().sample(noise, latent_image, sampler, sigmas, *args, **kwargs)

    def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 (ComfyUI's signature)
        active = [i for i, style in enumerate(self.styles) if style.scale != 0]
        high, low = self.window
        sigma = float(timestep.max())
        if not active or not (low < sigma <= high):  # plain CFG: ComfyUI's own function, bit for bit
            return comfy.samplers.sampling_function(
                self.inner_model,
                x,
                timestep,
                self.conds.get("negative"),
                self.conds.get("positive"),
                self.cfg,
                model_options,
                seed,
            )
        positive, negative = self.conds.get("positive"), self.conds.get("negative")
        conds = [positive, negative] + [self.conds[f"style_{i}"] for i in active]
        # one model call for the CFG rows, one per style (ComfyUI patches the weights per hook group)
        d_cond, d_uncond, *d_styles = comfy.samplers.calc_cond_batch(
            self.inner_model, conds, x, timestep, model_options
        )  # (B, C, h, w) each
        guided = comfy.samplers.cfg_function(
            self.inner_model,
            d_cond,
            d_uncond,
            self.cfg,
            x,
            timestep,
            model_options=model_options,
            cond=positive,
            uncond=negative,
        )
        for i, d_style in zip(active, d_styles):
            guided = guided + self.styles[i].scale * (d_style - d_cond)  # Eq. 11: λ_i (D_i(c_i) − D0(c))
        return guided
