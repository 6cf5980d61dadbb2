"""Frozen LoRA down-projections from one seeded orthonormal basis per input width (paper Sec. 3.2).

For a layer with input width ``d`` we draw one random orthonormal basis
``Q`` of R^d (seeded by the basis seed and ``d`` only, so every layer of the
same width shares it and anybody can rebuild it from the seed) and give

    content  A_c = Q[0 : r_c]            # (r_c, d)
    style    A_s = Q[r_c : r_c + r_s]    # (r_s, d)

Disjoint rows of an orthonormal matrix span orthogonal subspaces, so the
content and style updates ``B_c A_c`` and ``B_s A_s`` read orthogonal
directions of every input: ``A_c A_s^T = 0``.
"""

from __future__ import annotations

import torch

from .errors import UserError


def orthonormal_basis(width: int, seed: int) -> torch.Tensor:
    """A (width, width) orthogonal matrix, the same for the same (width, seed) on every machine."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + width)
    gaussian = torch.randn(width, width, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    # Fix the signs so the factorisation (and hence the basis) is unique.
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return q.T.contiguous().float()  # rows are the basis vectors


def split_rows(width: int, content_rank: int, style_rank: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (A_c, A_s): rows [0, r_c) and [r_c, r_c + r_s) of the basis for this width."""
    check_ranks(width, content_rank, style_rank)
    q = orthonormal_basis(width, seed)
    return q[:content_rank].clone(), q[content_rank:content_rank + style_rank].clone()


def check_ranks(width: int, content_rank: int, style_rank: int) -> None:
    """Both orthogonal row sets must fit in the layer's input width."""
    if content_rank + style_rank > width:
        raise UserError(
            f"content rank {content_rank} + style rank {style_rank} = {content_rank + style_rank} exceeds a "
            f"layer's input width {width}; choose ranks whose sum is at most {width}."
        )
