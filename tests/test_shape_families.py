"""Style families of the shapes world (``paircustom.shapes.families``) and how base training draws them."""

import itertools

import numpy as np
import pytest

from paircustom.shapes import families as fam
from paircustom.shapes.styles import STYLE_WORDS, posterize
from paircustom.shapes.world import random_scene, render


@pytest.mark.parametrize("name", list(fam.FAMILIES))
def test_family_members_differ_and_keep_size(name):
    """Every member of a family changes a rendered scene, keeps its shape and dtype, and members differ."""
    image = render(random_scene(np.random.default_rng(3), count=3))
    family = fam.FAMILIES[name]
    outputs = {}
    for words in itertools.product(*([w for w, _ in choices] for _, choices in family.options)):
        out = family.member(*words).apply(image)
        assert out.shape == image.shape and out.dtype == np.uint8, (name, words)
        assert np.abs(out.astype(int) - image).mean() > 1.0, f"{name} {words} barely changes the image"
        outputs[words] = out
    values = list(outputs.values())
    assert all(not np.array_equal(a, b) for i, a in enumerate(values) for b in values[:i]), f"{name}: equal members"


@pytest.mark.parametrize(
    "image_value, levels, expected",
    [(0, 3, 0), (63, 3, 0), (64, 3, 128), (200, 3, 255), (127, 2, 0), (128, 2, 255), (100, 4, 85)],
)
def test_quantize_levels(image_value, levels, expected):
    image = np.full((64, 64, 3), image_value, np.uint8)
    assert fam.quantize(image, levels)[0, 0, 0] == expected


def test_quantize_two_levels_equals_posterize():
    image = render(random_scene(np.random.default_rng(4), count=2))
    assert np.array_equal(fam.quantize(image, 2), posterize(image))


def test_member_prompt_and_family_prompt():
    member = fam.BENCHMARK_MEMBERS["outlined"]
    assert member.style.prompt == "thick white outlined" and member.family_style.prompt == "outlined"
    assert set(fam.BENCHMARK_MEMBERS) == set(fam.FAMILIES)
    assert not set(fam.FAMILY_WORDS) & set(STYLE_WORDS) - {"striped"}, "family words collide with style words"
    with pytest.raises(ValueError):
        fam.FAMILIES["tinted"].member("red", "thick")


def test_pool_families_only_on_unstyled_scenes_and_captioned():
    from paircustom.shapes.base_config import BaseTrainConfig
    from paircustom.shapes.data import training_pool

    plain_images, plain_captions = training_pool(BaseTrainConfig(pool_size=400))
    images, captions = training_pool(BaseTrainConfig(pool_size=400, family_share=0.5))
    changed = [i for i in range(400) if captions[i] != plain_captions[i]]
    assert 0.25 < len(changed) / 400 < 0.5, len(changed)
    for i in changed:
        assert " style" not in plain_captions[i], "a family was drawn over a known style"
        assert any(f" {name} style" in captions[i] for name in fam.FAMILIES), captions[i]
        assert not np.array_equal(images[i], plain_images[i])
    unchanged = [i for i in range(400) if i not in changed]
    assert all(np.array_equal(images[i], plain_images[i]) for i in unchanged)


def test_remap_embedding_moves_rows_by_token_text(tmp_path):
    import torch

    from paircustom.shapes.train import remap_embedding
    from paircustom.tiny.unet import write_clip_tokenizer

    old_tok = write_clip_tokenizer(tmp_path / "old", ["red", "circle"])
    new_tok = write_clip_tokenizer(tmp_path / "new", ["red", "circle", "tinted"])
    old = torch.randn(len(old_tok), 4, generator=torch.Generator().manual_seed(0))
    fresh = torch.zeros(len(new_tok), 4)
    rows = remap_embedding(old, fresh, old_tok, new_tok)
    for word in ("red</w>", "circle</w>", "<|endoftext|>"):
        assert torch.equal(rows[new_tok.get_vocab()[word]], old[old_tok.get_vocab()[word]]), word
    assert torch.equal(rows[new_tok.get_vocab()["tinted</w>"]], fresh[0])


def _family_counts(focus: str) -> dict[str, int]:
    from paircustom.shapes.base_config import BaseTrainConfig
    from paircustom.shapes.data import training_pool

    _, captions = training_pool(BaseTrainConfig(pool_size=1200, family_share=1.0, family_focus=focus))
    return {name: sum(f" {name} style" in caption for caption in captions) for name in fam.FAMILIES}


def test_family_focus_draws_named_families_three_times_as_often():
    counts = _family_counts("outlined,banded")
    focused = (counts["outlined"] + counts["banded"]) / 2
    others = sum(counts[name] for name in fam.FAMILIES if name not in ("outlined", "banded")) / 4
    assert 2.3 < focused / others < 3.9, counts  # expected 3; ~170 draws per family of the others


@pytest.mark.parametrize("focus, message", [("sketchy", "unknown family 'sketchy'"), ("tinted,nope", "'nope'")])
def test_family_focus_refuses_unknown_names(focus, message):
    from paircustom.shapes.data import family_weights

    with pytest.raises(ValueError, match=message):
        family_weights(focus)


def test_family_focus_empty_keeps_the_uniform_pool():
    from paircustom.shapes.data import family_weights

    assert family_weights("") is None and family_weights(" , ") is None
