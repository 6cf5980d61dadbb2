"""Frozen LoRA down-projections from one seeded orthonormal basis per input width (paper Sec. 3.2).

For a layer with input width ``d`` we draw one random orthonormal basis
``Q`` of R^d (seeded by the basis seed and ``d`` only, so every layer of the
same width shares it and anybody can rebuild it from the seed) and give

    content  A_c = Q[0 : r_c]            # (r_c, d)
    style    A_s = Q[r_c : r_c + r_s]    # (r_s, d)

Disjoint rows of an orthonormal matrix span orthogonal subspaces, so the
content and style updates ``B_c A_c`` and ``B_s A_s`` read orthogonal
directions of every input: ``A_c A_s^T = 0``.

Several pairs (one shared style, one content LoRA per pair): pair 0 keeps rows
[0, r_c) and the style keeps [r_c, r_c + r_s), exactly as with one pair; pair
k >= 1 takes the next block after the style rows,

    A_c,k = Q[r_c + r_s + (k-1) r_c : r_c + r_s + k r_c]

so every content LoRA is orthogonal to the style and to every other content LoRA.
"""

from __future__ import annotations

import torch

from ..errors import UserError


def orthonormal_basis(width: int, seed: int) -> torch.Tensor:
    """A (width, width) orthogonal matrix, the same for the same (width, seed) on every machine."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + width)
    gaussian = torch.randn(width, width, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    # Fix the signs so the factorisation (and hence the basis) is unique.
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return q.T.contiguous().float()  # rows are the basis vectors


def split_rows(
    width: int, content_rank: int, style_rank: int, seed: int, pairs: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (A_c, A_s): the content rows of every pair stacked (pairs·r_c, width), pair 0 first, and the
    style rows [r_c, r_c + r_s) of the basis for this width."""
    check_ranks(width, content_rank, style_rank, pairs)
    q = orthonormal_basis(width, seed)
    after_style = content_rank + style_rank
    content = [q[:content_rank]] + [
        q[after_style + (k - 1) * content_rank : after_style + k * content_rank] for k in range(1, pairs)
    ]
    return torch.cat(content).clone(), q[content_rank:after_style].clone()


def check_ranks(width: int, content_rank: int, style_rank: int, pairs: int = 1) -> None:
    """All orthogonal row sets (one content set per pair, one style set) must fit in the layer's input width."""
    total = pairs * content_rank + style_rank
    if total > width:
        sets = f"{pairs} x content rank {content_rank}" if pairs > 1 else f"content rank {content_rank}"
        raise UserError(
            f"{sets} + style rank {style_rank} = {total} exceeds a layer's input width {width}; choose ranks "
            f"whose sum is at most {width}."
        )
