"""One denoising step of style guidance: Eqs. 10-11 (``style_guidance``), when the style terms act and when their
deltas are recomputed (``StyleSchedule``), and what every step needs, prepared once (``Guide``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config.generate import GENERATE
from ..models.family import Conditioning
from .control import Control


def style_guidance(e_uncond, e_cond, style_deltas, guidance_scale: float, style_scales: list[float]):
    """Paper Eq. 10 (one style) and Eq. 11 (several): CFG plus one term per style.

    eps = e0(∅) + λ_cfg (e0(c) − e0(∅)) + Σ_i λ_i (e_i(c_i) − e0(c)); every tensor (B, C, h, w).
    ``style_deltas[i]`` is the bracket e_i(c_i) − e0(c), of this step or cached from an earlier one; each λ_i
    a number or a (B, 1, 1, 1) tensor, one per row (``row_scales``: the cells of a sweep).
    """
    guided = e_uncond + guidance_scale * (e_cond - e_uncond)
    for delta, scale in zip(style_deltas, style_scales, strict=True):
        guided = guided + scale * delta
    return guided


def row_scales(scale: float | tuple[float, ...], repeat: int, like: torch.Tensor):
    """λ_i as ``style_guidance`` takes it: a number, or one per prompt as a (B, 1, 1, 1) tensor (each prompt's
    value repeated for its ``repeat`` images, rows prompt-major) in the dtype and device of ``like``."""
    if not isinstance(scale, tuple):
        return scale
    values = torch.tensor(scale, dtype=like.dtype, device=like.device).repeat_interleave(repeat)  # (B,)
    return values[:, None, None, None]  # (B, 1, 1, 1)


@dataclass
class StyleSchedule:
    """When the style terms act (steps ``first`` <= i < ``stop``) and when their deltas are recomputed.

    A delta d_i = e_i(x_t, c_i) − e0(x_t, c) is computed on the first style step and then every ``interval``
    steps; the steps in between reuse the last one and call the UNet with the CFG rows only.  This is the
    caching idea of DeepCache (Ma et al., 2023) and of CFG-caching samplers applied to the style term: the
    style direction changes slowly along the trajectory, the prediction it is added to is still fresh.

    Adaptive rule (``tolerance``): the delta is stale once the base prediction it was measured against has
    moved.  On every reuse step we compute r = |e0(c) − e0_ref(c)|₁ / |e0_ref(c)|₁, the relative L1 change of
    the conditional CFG row since the delta's own step (which we compute anyway); if r > tolerance the next
    step recomputes (one step late, so every step stays ONE batched UNet call).  This approximates the
    criterion of TeaCache (Liu et al., arXiv 2411.19108), which recomputes a cached output once the relative L1
    change of a cheap proxy of the model input exceeds a threshold: both d_i and e0(c) are functions of the
    same x_t and t, and to first order d_i changes by (J_i − J_0)·Δx_t, so it drifts when x_t (and with it
    e0(c)) has moved, and not while e0(c) stays put.  ``interval`` remains the longest reuse.

    Reuse (``reuse``): "hold" adds the last computed deltas unchanged; "forecast" extrapolates them to step i
    along a straight line through the last two computations j' < j,

        d(i) = d(j) + (i − j)/(j − j') · (d(j) − d(j')),

    the first-order forecast of TaylorSeer (Liu et al., arXiv 2503.06923) applied to the style delta (held
    until there are two).  Measured on the shapes model (trained line-sketch style, 4 held-out captions x 2
    seeds, 20 style steps of 25): the deltas shrink along the trajectory (mean |d| 0.50 -> 0.30), so a held
    delta is too large; a held one misses the fresh one by 12% (interval 2) and 25% (interval 4) of its size
    (mean relative L1), the forecast by 6% and 17%.
    """

    first: int
    stop: int
    interval: int = 1
    tolerance: float | None = None
    reuse: str = GENERATE.style_reuse  # "forecast" or "hold"
    deltas: list = field(default_factory=list)  # cached d_i, (B, C, h, w) each
    _computed_at: int = -1
    _previous: list = field(default_factory=list)  # the deltas of the computation before, for "forecast"
    _previous_at: int = -1
    _reference: torch.Tensor | None = None  # e0(c) of the step the deltas were computed on
    _stale: bool = False

    def active(self, i: int) -> bool:
        """Does step ``i`` add style terms?"""
        return self.first <= i < self.stop

    def fresh(self, i: int) -> bool:
        """Does step ``i`` compute the style rows (else it reuses ``deltas``)?"""
        return self.active(i) and (not self.deltas or self._stale or i - self._computed_at >= self.interval)

    def update(self, i: int, e_cond, e_styles: list) -> list:
        """Step ``i``'s style deltas: fresh from ``e_styles`` when given, else the cached ones."""
        if not self.active(i):
            return []
        if e_styles:
            self._previous, self._previous_at = self.deltas, self._computed_at
            self.deltas = [e_style - e_cond for e_style in e_styles]
            self._computed_at, self._reference, self._stale = i, e_cond, False
            return self.deltas
        if self.tolerance is not None:
            change = (e_cond - self._reference).abs().mean() / self._reference.abs().mean().clamp_min(1e-12)
            self._stale = bool(change > self.tolerance)
        if self.reuse == "hold" or not self._previous:
            return self.deltas
        slope = (i - self._computed_at) / (self._computed_at - self._previous_at)
        return [d + slope * (d - p) for d, p in zip(self.deltas, self._previous, strict=True)]


@dataclass(frozen=True)
class Guide:
    """What every denoising step of style guidance needs, prepared once per call (``prepare.guide_of``)."""

    cond_of: dict[int, Conditioning]  # number of active row blocks (plain: ∅ and c; all: with styles) -> rows
    names: list[str | None]  # adapter of each row block
    scales: list[float]  # λ_i of each style block, in block order
    guidance_scale: float  # λ_cfg
    plain: int = 2  # CFG row blocks: ∅ and c (Flux without true CFG: c alone)
    first_styled: int = 0  # index of the first step with style terms
    stop_styled: int | None = None  # index of the first step without them again (None: none such)
    style_interval: int = 1  # style deltas recomputed every this many style steps (``StyleSchedule``)
    style_tolerance: float | None = None  # ... or once e0(c) has moved by this relative L1 change
    style_reuse: str = GENERATE.style_reuse  # what reuse steps add: the last deltas ("hold") or a "forecast"
    guidance_rescale: float = GENERATE.guidance_rescale
    control: Control | None = None  # ControlNet image and scale
