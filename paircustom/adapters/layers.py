"""The content and style LoRA adapters, and per-sample adapter selection.

Training (paper Eqs. 6-8) needs, in ONE batched forward pass,

    content sample:  W0 + Δc            (Δc trainable)
    style sample:    W0 + sg(Δc) + Δs   (Δc constant, Δs trainable)

with Δc = B_c A_c and Δs = B_s A_s.  peft cannot express "this adapter, but
without gradient, for these rows", so ``PairLoRALinear`` is our own small
layer: a frozen base ``nn.Linear``, frozen A's from ``basis.split_rows`` and
zero-initialised trainable B's.  Each batch row has a ``Route`` (the adapters it goes through); ``Rows`` holds
the rows of each route and is set on every layer for the duration of one forward pass.

Generation uses peft (diffusers' ``load_lora_weights``) and its
``adapter_names`` mixed-batch forward, reached through ``peft_routing``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

from ..config.targets import DEFAULT_TARGETS
from .basis import split_rows


class Route(Enum):
    """The adapters one batch row goes through (W0: the frozen base weight; sg: stop-gradient)."""

    BASE = "base"  # W0
    CONTENT = "content"  # W0 + Δc, training B_c
    FROZEN_CONTENT_AND_STYLE = "content+style"  # W0 + sg(Δc) + Δs, training B_s (the style loss)
    STYLE_ALONE = "style"  # W0 + Δs (DreamBooth-LoRA, a slider's + end, previews)
    MINUS_STYLE = "-style"  # W0 - Δs (a Concept Sliders slider's - end)

    @property
    def trains_content(self) -> bool:
        return self is Route.CONTENT

    @property
    def trains_style(self) -> bool:
        return self in (Route.FROZEN_CONTENT_AND_STYLE, Route.STYLE_ALONE, Route.MINUS_STYLE)


@dataclass(frozen=True)
class Rows:
    """Which batch rows go through which adapter (index tensors, computed once per step)."""

    content: tuple[torch.Tensor, ...]  # per pair k: rows with Δc_k, gradient flowing into B_c,k
    content_frozen: tuple[torch.Tensor, ...]  # per pair k: rows with sg(Δc_k): B_c,k used as a constant
    style: torch.Tensor  # rows with Δs
    minus_style: torch.Tensor  # rows with -Δs

    @staticmethod
    def of(routes: list[Route], device, pairs: list[int] | None = None) -> Rows:
        """``routes`` has one entry per sample; ``pairs`` the pair whose content adapter each row uses (default:
        pair 0 for all)."""
        pairs = pairs or [0] * len(routes)

        def pick(*wanted: Route, pair=None):
            return torch.tensor(
                [i for i, r in enumerate(routes) if r in wanted and pair in (None, pairs[i])],
                dtype=torch.long,
                device=device,
            )

        count = max(pairs, default=0) + 1
        return Rows(
            tuple(pick(Route.CONTENT, pair=k) for k in range(count)),
            tuple(pick(Route.FROZEN_CONTENT_AND_STYLE, pair=k) for k in range(count)),
            pick(Route.FROZEN_CONTENT_AND_STYLE, Route.STYLE_ALONE),
            pick(Route.MINUS_STYLE),
        )


class PairLoRALinear(nn.Module):
    """y = W0 x + scale_c·B_c,k A_c,k x (rows of pair k) + scale_s·B_s A_s x (routed rows).

    With several pairs the content adapters are stacked: ``content_A`` (pairs·r_c, in) and ``content_B``
    (out, pairs·r_c); pair k owns rows / columns [k r_c, (k+1) r_c).
    """

    def __init__(
        self,
        base: nn.Linear,
        content_A: torch.Tensor,
        style_A: torch.Tensor,
        content_scale: float,
        style_scale: float,
        trainable_A: bool = False,
        pairs: int = 1,
    ):
        super().__init__()
        self.base = base
        self.content_rank = content_A.shape[0] // pairs
        # Adapters stay in float32 even when the base weights are half precision (they are what trains).
        device = base.weight.device
        for name, A in (("content_A", content_A), ("style_A", style_A)):  # (r, in) each
            A = A.to(device, torch.float32)
            if trainable_A:
                setattr(self, name, nn.Parameter(A))
            else:
                self.register_buffer(name, A)  # frozen
        self.content_B = nn.Parameter(torch.zeros(base.out_features, content_A.shape[0], device=device))
        self.style_B = nn.Parameter(torch.zeros(base.out_features, style_A.shape[0], device=device))
        self.content_scale, self.style_scale = content_scale, style_scale
        self.rows: Rows | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, N, in)
        y = self.base(x)  # (B, N, out)
        if self.rows is None:
            return y
        for k, (rows, frozen_rows) in enumerate(zip(self.rows.content, self.rows.content_frozen)):
            A, B = self.content_adapter(k)
            y = self._add(y, x, rows, A, B, self.content_scale)
            y = self._add(y, x, frozen_rows, A, B.detach(), self.content_scale)
        y = self._add(y, x, self.rows.minus_style, self.style_A, self.style_B, -self.style_scale)
        return self._add(y, x, self.rows.style, self.style_A, self.style_B, self.style_scale)

    def content_adapter(self, pair: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_c,k, B_c,k) of pair ``pair``: views into the stacked content adapters."""
        rows = slice(pair * self.content_rank, (pair + 1) * self.content_rank)
        return self.content_A[rows], self.content_B[:, rows]

    @staticmethod
    def _add(y, x, rows, A, B, scale):
        """Add scale·B A x to the given batch rows only."""
        if rows.numel() == 0:
            return y
        delta = F.linear(F.linear(x[rows].to(A.dtype), A), B) * scale  # (rows, N, out)
        return y.index_add(0, rows, delta.to(y.dtype))


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    """Set the submodule at dotted path ``name`` (``setattr`` also works for the "0" of ``to_out.0``)."""
    parent_name, _, attribute = name.rpartition(".")
    setattr(root.get_submodule(parent_name), attribute, module)


def target_names(unet: nn.Module, targets=DEFAULT_TARGETS) -> list[str]:
    """Paths of the Linear modules whose name ends with one of ``targets``."""
    return [
        name
        for name, module in unet.named_modules()
        if isinstance(module, nn.Linear) and any(name.endswith("." + t) for t in targets)
    ]


def random_rows(width: int, rank: int, generator: torch.Generator) -> torch.Tensor:
    """An ordinary LoRA down-projection: nn.Linear's default (Kaiming-uniform) initialisation, (rank, width)."""
    bound = 1 / math.sqrt(width)
    return (torch.rand(rank, width, generator=generator) * 2 - 1) * bound


def add_pair_lora(
    unet: nn.Module,
    content_rank: int,
    style_rank: int,
    alpha_content: float,
    alpha_style: float,
    seed: int,
    targets=DEFAULT_TARGETS,
    orthogonal: bool = True,
    pairs: int = 1,
) -> dict[str, PairLoRALinear]:
    """Wrap every target projection of ``unet`` in a ``PairLoRALinear``; return them by module path.

    The returned paths are the original ones (``...attn1.to_q``), which are also the saved file's keys.
    ``orthogonal=False`` is the ablation: independent random A's that train like ordinary LoRA.
    ``pairs`` > 1: one content adapter per pair (``basis.split_rows``), one shared style adapter.
    """
    layers, generator = {}, torch.Generator().manual_seed(seed)
    rows = {}  # input width -> (A_c, A_s): one QR per width, since every layer of a width shares its basis
    for name in target_names(unet, targets):
        base = unet.get_submodule(name).requires_grad_(False)
        if orthogonal:
            width = base.in_features
            if width not in rows:
                rows[width] = split_rows(width, content_rank, style_rank, seed, pairs)
            content_A, style_A = (A.clone() for A in rows[width])  # each layer owns its buffers
        else:
            content_A = random_rows(base.in_features, content_rank * pairs, generator)
            style_A = random_rows(base.in_features, style_rank, generator)
        layers[name] = PairLoRALinear(
            base,
            content_A,
            style_A,
            alpha_content / content_rank,
            alpha_style / style_rank,
            trainable_A=not orthogonal,
            pairs=pairs,
        )
        _replace(unet, name, layers[name])
    return layers


def remove_pair_lora(unet: nn.Module, layers: dict[str, PairLoRALinear]) -> None:
    """Put the original Linear modules back (the adapters are dropped)."""
    for name, layer in layers.items():
        _replace(unet, name, layer.base)


def set_route(
    layers: dict[str, PairLoRALinear], routes: list[Route] | None, device, pairs: list[int] | None = None
) -> None:
    """Send batch row i through ``routes[i]`` on every layer until the next call (None: no adapters); ``pairs``:
    the pair of each row's content adapter (default 0).

    Training leaves the routes set through the backward pass, because gradient
    checkpointing runs the forward pass again there.
    """
    rows = None if routes is None else Rows.of(routes, device, pairs)
    for layer in layers.values():
        layer.rows = rows


@contextmanager
def pair_routing(layers: dict[str, PairLoRALinear], rows: list[Route], device):
    """Route batch rows to adapters for the duration of a (no-grad) call."""
    set_route(layers, rows, device)
    try:
        yield
    finally:
        set_route(layers, None, device)


@contextmanager
def peft_routing(unet: nn.Module, adapter_names: list[str | None]):
    """One peft adapter per batch row (None = base weights) via peft's mixed-batch ``adapter_names``.

    diffusers does not pass ``adapter_names`` through the UNet, so we hand it to
    every peft LoRA layer with a forward pre-hook for the duration of the call.
    """
    from peft.tuners.lora import LoraLayer

    names = [name or "__base__" for name in adapter_names]
    hooks = [
        module.register_forward_pre_hook(
            lambda _m, args, kwargs: (args, {**kwargs, "adapter_names": names}), with_kwargs=True
        )
        for module in unet.modules()
        if isinstance(module, LoraLayer)
    ]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()
