"""The orthogonal frozen bases and the per-row adapter layer (paper Sec. 3.2)."""

import pytest
import torch
from torch import nn

from paircustom.adapters.basis import split_rows
from paircustom.adapters.layers import PairLoRALinear, Route, add_pair_lora, pair_routing, random_rows, remove_pair_lora
from paircustom.errors import UserError
from paircustom.tiny.unet import build_tiny_pipeline

TOLERANCE = 1e-5


@pytest.mark.parametrize("width, content_rank, style_rank", [(32, 4, 4), (64, 16, 48), (320, 64, 64), (7, 3, 4)])
def test_rows_are_orthonormal_and_spaces_orthogonal(width, content_rank, style_rank):
    content_A, style_A = split_rows(width, content_rank, style_rank, seed=0)
    assert content_A.shape == (content_rank, width) and style_A.shape == (style_rank, width)
    both = torch.cat([content_A, style_A]).double()
    gram = both @ both.T
    error = (gram - torch.eye(content_rank + style_rank, dtype=torch.double)).abs().max().item()
    assert error < TOLERANCE, f"A rows not orthonormal: max |AA^T - I| = {error} >= {TOLERANCE}"
    cross = (content_A.double() @ style_A.double().T).abs().max().item()
    assert cross < TOLERANCE, f"content/style row spaces not orthogonal: max |A_c A_s^T| = {cross}"


def test_basis_is_reproducible_and_seeded():
    a, _ = split_rows(32, 4, 4, seed=0)
    b, _ = split_rows(32, 4, 4, seed=0)
    c, _ = split_rows(32, 4, 4, seed=1)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 0.1


@pytest.mark.parametrize(
    "pairs, message",
    [
        (1, r"^content rank 20 \+ style rank 20 = 40 exceeds"),
        (2, r"^2 x content rank 10 \+ style rank 20 = 40 exceeds"),
    ],
)
def test_ranks_larger_than_width_are_refused(pairs, message):
    with pytest.raises(UserError, match=message + " a layer's input width 32"):
        split_rows(32, 40 // (2 * pairs), 20, seed=0, pairs=pairs)


CONTENT_SCALE, STYLE_SCALE = 0.5, 2.0  # alpha / rank of each adapter; neither 1, so a lost factor shows


def test_ordinary_lora_rows_are_kaiming_uniform():
    """The ablation's A (``orthogonal=False``): nn.Linear's default init, U(-1/sqrt(width), 1/sqrt(width))."""
    width, bound = 256, 1 / 256**0.5
    A = random_rows(width, 64, torch.Generator().manual_seed(0))  # 16384 draws
    assert A.shape == (64, width)
    assert 0.99 * bound < A.abs().max() <= bound, f"max |A| {A.abs().max():.4g}, bound {bound:.4g}"
    assert abs(A.mean()) < 0.02 * bound, f"mean {A.mean():.3g} is not ~0"
    assert abs(A.std() - bound / 3**0.5) < 0.02 * bound, f"std {A.std():.4g}, uniform's {bound / 3**0.5:.4g}"


def _layer(rows=3, width=8, out=6, rank=2):
    torch.manual_seed(0)
    content_A, style_A = split_rows(width, rank, rank, seed=0)
    layer = PairLoRALinear(nn.Linear(width, out), content_A, style_A, CONTENT_SCALE, STYLE_SCALE)
    with torch.no_grad():
        layer.content_B.normal_()
        layer.style_B.normal_()
    return layer, torch.randn(rows, 5, width)


@pytest.mark.parametrize(
    "rows, uses_content, uses_style",
    [
        ([Route.BASE], False, False),
        ([Route.CONTENT], True, False),
        ([Route.STYLE_ALONE], False, True),
        ([Route.FROZEN_CONTENT_AND_STYLE], True, True),
        ([Route.MINUS_STYLE], False, -1),
    ],
)
def test_each_route_adds_exactly_its_adapters(rows, uses_content, uses_style):
    layer, x = _layer(rows=1)
    expected = layer.base(x)
    if uses_content:
        expected = expected + CONTENT_SCALE * x @ layer.content_A.T @ layer.content_B.T
    if uses_style:
        expected = expected + int(uses_style) * STYLE_SCALE * (x @ layer.style_A.T @ layer.style_B.T)
    with pair_routing({"l": layer}, rows, "cpu"):
        got = layer(x)
    assert torch.allclose(got, expected, atol=TOLERANCE)


@pytest.mark.parametrize("route", list(Route))
def test_a_route_trains_exactly_the_adapters_it_says(route):
    """``trains_content`` / ``trains_style`` (which the trainer uses to choose what DDP holds) match the gradients."""
    layer, x = _layer(rows=1)
    with pair_routing({"l": layer}, [route], "cpu"):
        layer(x).square().sum().backward()
    gets = lambda B: B.grad is not None and B.grad.abs().max().item() > 0  # noqa: E731
    assert (gets(layer.content_B), gets(layer.style_B)) == (route.trains_content, route.trains_style), route


def test_frozen_content_rows_send_no_gradient_to_content_B_but_do_to_the_input():
    layer, x = _layer(rows=2)
    x.requires_grad_(True)
    with pair_routing({"l": layer}, [Route.BASE, Route.FROZEN_CONTENT_AND_STYLE], "cpu"):
        layer(x).square().sum().backward()
    assert layer.content_B.grad is None or layer.content_B.grad.abs().max() == 0
    assert layer.style_B.grad.abs().max() > 0
    # sg(Δc) is a constant weight, not a cut: the input still sees W0 + Δc + Δs.
    full = (
        layer.base.weight
        + CONTENT_SCALE * layer.content_B @ layer.content_A
        + STYLE_SCALE * layer.style_B @ layer.style_A
    )
    expected = 2 * (x[1] @ full.T + layer.base.bias) @ full
    assert torch.allclose(x.grad[1], expected.detach(), atol=1e-4)


def test_wrapping_and_unwrapping_a_unet_keeps_its_output():
    pipe = build_tiny_pipeline("sd")
    unet = pipe.unet
    sample, t, text = torch.randn(1, 4, 16, 16), torch.tensor([10]), torch.randn(1, 77, 32)
    before = unet(sample, t, text).sample
    layers = add_pair_lora(unet, 4, 4, 4, 4, seed=0)
    assert len(layers) == 4 * 2 * 4, (
        "expected to_q/k/v/out of attn1 and attn2 in 4 transformer blocks (down, mid, 2 up)"
    )
    assert torch.allclose(unet(sample, t, text).sample, before, atol=TOLERANCE)  # B = 0 and no route
    remove_pair_lora(unet, layers)
    assert not any(isinstance(m, PairLoRALinear) for m in unet.modules())


def test_every_layer_of_a_width_gets_that_widths_rows_from_one_qr_and_owns_them(monkeypatch):
    from paircustom.adapters import basis

    unet = build_tiny_pipeline("sd").unet
    calls = []
    real = basis.orthonormal_basis
    monkeypatch.setattr(basis, "orthonormal_basis", lambda width, seed: calls.append(width) or real(width, seed))
    layers = add_pair_lora(unet, 4, 4, 4, 4, seed=3)
    widths = {layer.base.in_features for layer in layers.values()}
    assert sorted(calls) == sorted(widths), f"one QR per input width {sorted(widths)}, got calls {sorted(calls)}"
    for name, layer in layers.items():
        content_A, style_A = split_rows(layer.base.in_features, 4, 4, 3)
        assert torch.equal(layer.content_A, content_A) and torch.equal(layer.style_A, style_A), name
    pointers = [layer.content_A.data_ptr() for layer in layers.values()]
    assert len(set(pointers)) == len(pointers), "layers must not share A's storage (safetensors refuses shared)"
