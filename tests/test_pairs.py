"""Several pairs per style: one shared style LoRA, one content LoRA per pair (rows of one orthonormal basis)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

import paircustom.training.trainer as training
from paircustom.adapters.basis import split_rows
from paircustom.adapters.layers import Route, set_route
from paircustom.cli.main import main
from paircustom.models.forward import prediction_target
from paircustom.tiny.unet import build_tiny_pipeline
from paircustom.training.objective import RowKind
from paircustom.training.trainer import PairTrainer
from tests.conftest import fast_flags, quick_config


def single_pair_losses(unet, layers, scheduler, pair, kinds, generator, family):
    """The single-pair objective as it was before several pairs existed (the reference): rows = kinds,
    x0 for all rows, then ONE eps, then ONE t, both shared by all rows."""
    rows_of = {
        RowKind.CONTENT: (0, 0, Route.CONTENT),
        RowKind.STYLE_OVER_FROZEN_CONTENT: (1, 1, Route.FROZEN_CONTENT_AND_STYLE),
    }
    images = [rows_of[k][0] for k in kinds]
    mean, std = pair.latent_mean[images], pair.latent_std[images]
    draw = lambda *shape: torch.randn(*shape, generator=generator).to(mean.device, mean.dtype)  # noqa: E731
    x0 = mean + std * draw(*mean.shape)
    noise = draw(1, *mean.shape[1:]).expand_as(x0)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=generator).expand(len(kinds))
    noisy = scheduler.add_noise(x0, noise, timesteps)
    set_route(layers, [rows_of[k][2] for k in kinds], mean.device)
    prediction = unet(noisy, timesteps, **pair.cond.select([rows_of[k][1] for k in kinds]).unet_kwargs()).sample
    target = prediction_target(scheduler, x0, noise, timesteps)
    return dict(zip(kinds, F.mse_loss(prediction, target, reduction="none").mean(dim=(1, 2, 3))))


def trained_weights(config, family, steps=5):
    trainer = PairTrainer(config, build_tiny_pipeline(family))
    for _ in range(steps):
        trainer.train_step()
    weights = [p.detach().clone() for p in trainer.content_params + trainer.style_params]
    trainer.close()
    return weights


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_one_pair_through_the_multi_pair_path_equals_single_pair_training_bitwise(family, pair, tmp_path, monkeypatch):
    config = quick_config(*pair, tmp_path / "out.safetensors", max_steps=5, style_start_step=2)
    multi = trained_weights(config, family)
    monkeypatch.setattr(training, "pair_losses", single_pair_losses)
    single = trained_weights(config, family)
    assert len(multi) == len(single) and all(torch.equal(a, b) for a, b in zip(multi, single)), (
        "one pair through the multi-pair objective differs from single-pair training"
    )
    assert any(w.abs().max() > 0 for w in multi), "nothing trained"


def test_content_rows_of_every_pair_are_orthogonal_to_the_style_and_to_each_other():
    content, style = split_rows(64, 4, 6, seed=3, pairs=3)
    one_content, one_style = split_rows(64, 4, 6, seed=3)
    assert content.shape == (12, 64) and torch.equal(style, one_style) and torch.equal(content[:4], one_content), (
        "pair 0 and the style must keep the single-pair rows"
    )
    gram = torch.cat([content, style]) @ torch.cat([content, style]).T
    assert (gram - torch.eye(18)).abs().max() < 1e-5, "content and style rows are not orthonormal"


def _second_pair(folder):
    rng = np.random.default_rng(5)
    content = (rng.random((48, 48, 3)) * 255).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(content).save(folder / "c2.png")
    Image.fromarray(255 - content).save(folder / "s2.png")
    return str(folder / "c2.png"), str(folder / "s2.png")


def test_two_pairs_train_one_style_and_two_content_loras(pair, tmp_path):
    extra = _second_pair(tmp_path / "second")
    config = replace(
        quick_config(*pair, tmp_path / "two.safetensors", max_steps=4, style_start_step=1),
        extra_pairs=(extra,),
        save_content=True,
    )
    trainer = PairTrainer(config, build_tiny_pipeline("sd"))
    for _ in range(4):
        trainer.train_step()
    layer = next(iter(trainer.layers.values()))
    (A0, B0), (A1, B1) = layer.content_adapter(0), layer.content_adapter(1)
    assert (A0 @ A1.T).abs().max() < 1e-5 and (A1 @ layer.style_A.T).abs().max() < 1e-5
    assert B0.abs().max() > 0 and B1.abs().max() > 0 and not torch.equal(B0, B1), "each pair trains its own content"
    trainer.save()
    trainer.close()
    files = sorted(p.name for p in tmp_path.glob("two*.safetensors"))
    assert files == ["two-content-1.safetensors", "two-content-2.safetensors", "two.safetensors"], files
    style = load_file(tmp_path / "two.safetensors")
    single_A = split_rows(layer.style_A.shape[1], 4, 4, 0)[1]
    key = next(k for k in style if k.endswith("lora_A.weight") and style[k].shape[1] == single_A.shape[1])
    assert torch.equal(style[key], single_A), "the style rows must not depend on the number of pairs"


def test_cli_pair_option_equals_positional_pair_and_takes_several(pair, tmp_path):
    model = tmp_path / "model"
    build_tiny_pipeline("sd").save_pretrained(model)
    fast = ["--subject", "dog", "--style", "art", "--model", str(model), *fast_flags(2)]
    content, style = map(str, pair)
    assert main(["train", content, style, "-o", str(tmp_path / "a.safetensors"), *fast]) == 0
    assert main(["train", "--pair", content, style, "-o", str(tmp_path / "b.safetensors"), *fast]) == 0
    a, b = load_file(tmp_path / "a.safetensors"), load_file(tmp_path / "b.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "--pair differs from the positional pair"
    extra = _second_pair(tmp_path / "second")
    assert main(["train", content, style, "--pair", *extra, "-o", str(tmp_path / "c.safetensors"), *fast]) == 0
    c = load_file(tmp_path / "c.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a), "the second pair changed nothing"


def test_each_pair_can_have_its_own_subject(pair, tmp_path):
    """Subjects given per pair make each pair's content and style prompts (the suffix is shared); the training
    rows of pair k are encoded from pair k's prompts."""
    extra = _second_pair(tmp_path / "second")
    base = replace(
        quick_config(*pair, tmp_path / "two.safetensors", max_steps=2, style_start_step=1), extra_pairs=(extra,)
    )
    shared = base.resolved(build_tiny_pipeline("sd")).pair_prompts
    assert shared[0] == shared[1] == ("a photo of a sbu dog", "a photo of a sbu dog in digital art style"), shared
    pipe = build_tiny_pipeline("sd")
    trainer = PairTrainer(replace(base, pair_subjects=("cat",)), pipe)
    assert trainer.config.pair_prompts[1] == ("a photo of a sbu cat", "a photo of a sbu cat in digital art style")
    family = trainer.family
    for row, prompt in enumerate(p for prompts in trainer.config.pair_prompts for p in prompts):
        expected, _ = family.encode(pipe, [prompt], trainer.device)
        torch.testing.assert_close(
            trainer.pair.cond.select([row]).hidden,
            expected.hidden,
            atol=0,
            rtol=0,
            msg=f"row {row} is not encoded from {prompt!r}",
        )
    trainer.close()


def test_cli_pair_subject_goes_to_its_pair(pair, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(training, "train_pair", lambda config, **_: seen.append(config) or config.output)
    content, style = map(str, pair)
    common = ["--subject", "dog", "--style", "art", "-o", str(tmp_path / "x.safetensors"), "--quiet"]
    main(["train", "--pair", content, style, "--pair", content, style, "cat", *common])
    main(["train", "--pair", content, style, "puppy", "--pair", content, style, *common])
    main(["train", content, style, "--pair", content, style, *common])
    assert [(c.subject, c.pair_subjects) for c in seen] == [("dog", ("cat",)), ("puppy", ("dog",)), ("dog", ())]


def test_each_training_row_gets_its_own_pairs_image_prompt_eps_and_t(pair, tmp_path):
    """Two pairs with their own subjects, rows pair-major (content, style of pair 0, then of pair 1): row 2k + i
    is x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps of image 2k + kind.image, under prompt 2k + kind.prompt, with pair
    k's own eps and t (latent std 0, so x0 is the image's mean)."""
    extra = _second_pair(tmp_path / "second")
    config = replace(quick_config(*pair, tmp_path / "two.safetensors"), extra_pairs=(extra,), pair_subjects=("cat",))
    trainer = PairTrainer(config, build_tiny_pipeline("sd"))
    trainer.pair.latent_std.zero_()
    kinds = (RowKind.CONTENT, RowKind.STYLE_OVER_FROZEN_CONTENT)
    seen = {}
    hook = trainer.denoiser.register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(
            x=args[0].clone(), t=args[1].clone(), hidden=kwargs["encoder_hidden_states"].clone()
        ),
        with_kwargs=True,
    )
    with torch.no_grad():
        training.pair_losses(
            trainer.denoiser,
            trainer.layers,
            trainer.noise_scheduler,
            trainer.pair,
            kinds,
            torch.Generator().manual_seed(0),
            trainer.family,
        )
    hook.remove()
    generator = torch.Generator().manual_seed(0)
    torch.randn(4, *trainer.pair.latent_mean.shape[1:], generator=generator)  # x0's z (std 0: unused)
    eps = torch.randn(2, *trainer.pair.latent_mean.shape[1:], generator=generator)  # one per pair
    t = torch.randint(0, trainer.noise_scheduler.config.num_train_timesteps, (2,), generator=generator)
    a = trainer.noise_scheduler.alphas_cumprod
    for k in range(2):
        for i, kind in enumerate(kinds):
            row = 2 * k + i
            x0 = trainer.pair.latent_mean[2 * k + kind.image]
            expected = a[t[k]].sqrt() * x0 + (1 - a[t[k]]).sqrt() * eps[k]
            assert seen["t"][row] == t[k], f"row {row}: t {seen['t'][row]} is not pair {k}'s {t[k]}"
            error = (seen["x"][row] - expected).abs().max().item()
            assert error < 1e-5, (
                f"row {row}: not x_t of image {2 * k + kind.image} under pair {k}'s draws ({error:.3g})"
            )
            assert torch.equal(seen["hidden"][row], trainer.pair.cond.hidden[2 * k + kind.prompt]), (
                f"row {row} is not conditioned on prompt {2 * k + kind.prompt}"
            )
    trainer.close()
