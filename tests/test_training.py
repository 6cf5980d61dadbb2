"""Pair training (paper Eqs. 6-8): what trains, what stays frozen, and that losses fall."""

import json

import pytest
import torch
from diffusers import DDIMScheduler

from paircustom.models.forward import prediction_target
from paircustom.tiny.unet import build_tiny_pipeline
from paircustom.training.objective import RowKind
from paircustom.training.trainer import PairTrainer
from tests.conftest import SHARED_PAIRS, quick_config


def _snapshot(trainer):
    layers = trainer.layers.values()
    return {
        kind: [getattr(l, kind).detach().clone() for l in layers]
        for kind in ("content_A", "style_A", "content_B", "style_B")
    }


def _changed(before, after):
    return max((a - b).abs().max().item() for a, b in zip(before, after))


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_A_frozen_style_waits_for_style_start_then_both_train(family, pair, tmp_path):
    trainer = PairTrainer(
        quick_config(*pair, tmp_path / "s.safetensors", max_steps=4, style_start_step=2), build_tiny_pipeline(family)
    )
    start = _snapshot(trainer)
    trainer.train_step(), trainer.train_step()  # steps 0 and 1: warm-up, content only
    warm = _snapshot(trainer)
    assert _changed(start["content_B"], warm["content_B"]) > 0, "content B did not train during warm-up"
    assert _changed(start["style_B"], warm["style_B"]) == 0, "style B changed before style_start_step"
    trainer.train_step(), trainer.train_step()
    end = _snapshot(trainer)
    assert _changed(warm["style_B"], end["style_B"]) > 0, "style B did not train after style_start_step"
    for kind in ("content_A", "style_A"):
        assert _changed(start[kind], end[kind]) == 0, f"{kind} changed during training"
    assert all(not l.content_A.requires_grad and not l.style_A.requires_grad for l in trainer.layers.values())
    trainer.close()


def test_style_loss_never_reaches_content_weights(pair, tmp_path):
    trainer = PairTrainer(quick_config(*pair, tmp_path / "s.safetensors"), build_tiny_pipeline("sd"))
    with torch.no_grad():  # non-zero B's so every path carries gradient
        for layer in trainer.layers.values():
            layer.content_B.normal_(std=0.1)
            layer.style_B.normal_(std=0.1)
    from paircustom.training.objective import pair_losses

    losses = pair_losses(
        trainer.denoiser,
        trainer.layers,
        trainer.noise_scheduler,
        trainer.pair,
        (RowKind.CONTENT, RowKind.STYLE_OVER_FROZEN_CONTENT),
        torch.Generator().manual_seed(0),
        trainer.family,
    )
    losses[RowKind.STYLE_OVER_FROZEN_CONTENT].backward()
    content_grad = max((p.grad.abs().max().item() if p.grad is not None else 0.0) for p in trainer.content_params)
    style_grad = max(p.grad.abs().max().item() for p in trainer.style_params)
    assert content_grad == 0, f"style loss sent gradient {content_grad} to content B"
    assert style_grad > 0
    trainer.close()


@pytest.mark.parametrize("family, scheduler", [("sd", None), ("sdxl", None), ("sd", "sd2-v"), ("sdxl", "sdxl-euler")])
def test_short_training_lowers_both_losses(family, scheduler, pair, tmp_path):
    trainer = PairTrainer(
        quick_config(*pair, tmp_path / "s.safetensors", learning_rate=3e-3, max_steps=40, style_start_step=10),
        build_tiny_pipeline(family, scheduler=scheduler),
    )
    content_before, style_before = trainer.evaluate()
    trainer.fit()
    content_after, style_after = trainer.evaluate()
    assert content_after < 0.97 * content_before, f"content loss {content_before:.4f} -> {content_after:.4f}"
    assert style_after < 0.97 * style_before, f"style loss {style_before:.4f} -> {style_after:.4f}"
    trainer.close()


def test_sdxl_run_with_euler_lowers_the_style_loss_below_its_first_value(pair, tmp_path):
    """A learning signal for SDXL as shipped (Euler sampling scheduler): the style loss, on fixed draws, from the
    first style step (content already warmed up) to the end of a short run."""
    trainer = PairTrainer(
        quick_config(*pair, tmp_path / "s.safetensors", learning_rate=3e-3, max_steps=30, style_start_step=10),
        build_tiny_pipeline("sdxl", scheduler="sdxl-euler"),
    )
    while trainer.step < trainer.config.style_start_step:
        trainer.train_step()
    first = trainer.evaluate()[1]
    trainer.fit()
    last = trainer.evaluate()[1]
    assert last < 0.97 * first, f"style loss {first:.4f} at the first style step -> {last:.4f} after 20 style steps"
    trainer.close()


def test_training_is_reproducible(pair, tmp_path):
    losses = []
    for run in range(2):
        trainer = PairTrainer(quick_config(*pair, tmp_path / f"{run}.safetensors"), build_tiny_pipeline("sd"))
        trainer.fit()
        losses.append(trainer.history)
        trainer.close()
    assert losses[0] == losses[1]


def test_v_prediction_target_is_the_velocity():
    scheduler = DDIMScheduler(prediction_type="v_prediction")
    x0, noise, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.tensor([10, 900])
    alpha = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    expected = alpha.sqrt() * noise - (1 - alpha).sqrt() * x0
    assert torch.allclose(prediction_target(scheduler, x0, noise, t), expected, atol=1e-5)


def test_sdxl_micro_conditioning_uses_each_images_real_size(tmp_path):
    from tests.conftest import write_pair

    content, style = write_pair(tmp_path, size=(64, 48), style_size=(128, 96))
    trainer = PairTrainer(quick_config(content, style, tmp_path / "s.safetensors"), build_tiny_pipeline("sdxl"))
    time_ids = trainer.pair.cond.added["time_ids"]
    # (original h, w, crop top, left, target h, w): 64x48 -> 43x32 (crop left 5); 128x96 -> 43x32 as well.
    assert time_ids[0].tolist() == [48, 64, 0, 5, 32, 32]
    assert time_ids[1].tolist() == [96, 128, 0, 5, 32, 32]
    trainer.close()


@pytest.mark.skipif(not SHARED_PAIRS.is_dir(), reason=f"real image pairs not found at {SHARED_PAIRS}")
@pytest.mark.parametrize("name", ["dog_digital_art_style", "man_painting_style"])
def test_trains_on_the_real_pairs(name, tmp_path):
    folder = SHARED_PAIRS / name
    trainer = PairTrainer(
        quick_config(
            folder / "content.png", folder / "style.png", tmp_path / "s.safetensors", max_steps=2, style_start_step=1
        ),
        build_tiny_pipeline("sdxl"),
    )
    assert trainer.pair.latent_mean.shape == (2, 4, 16, 16)
    trainer.fit()
    assert trainer.history[-1][2] is not None
    path = trainer.save()
    assert path.is_file()
    trainer.close()


def test_gradient_checkpointing_gives_the_same_training(pair, tmp_path):
    histories = []
    for checkpointing in (False, True):
        trainer = PairTrainer(
            quick_config(
                *pair,
                tmp_path / f"{checkpointing}.safetensors",
                max_steps=3,
                style_start_step=1,
                gradient_checkpointing=checkpointing,
            ),
            build_tiny_pipeline("sd"),
        )
        trainer.fit()
        histories.append([loss for _, c, s in trainer.history for loss in (c, s) if loss is not None])
        trainer.close()
    assert histories[0] == pytest.approx(histories[1], rel=1e-4)


@pytest.mark.parametrize("family, scheduler", [("sd", None), ("sdxl", "sdxl-euler"), ("sd", "sd1-pndm")])
def test_preview_writes_base_and_styled_side_by_side(family, scheduler, pair, tmp_path):
    """Previews sample between training steps; on SDXL's Euler this once broke the next step (IndexError)."""
    from PIL import Image

    trainer = PairTrainer(
        quick_config(*pair, tmp_path / "s.safetensors", max_steps=4, style_start_step=0, preview_every=2),
        build_tiny_pipeline(family, scheduler=scheduler),
    )
    trainer.fit()
    for step in (2, 4):
        preview = tmp_path / f"s-preview-{step:05d}.png"
        assert Image.open(preview).size == (64, 32), f"preview after step {step}"
    assert len(trainer.history) == 4
    trainer.close()


def test_style_only_baseline_trains_one_lora_on_the_style_image(pair, tmp_path):
    trainer = PairTrainer(
        quick_config(*pair, tmp_path / "s.safetensors", method="style-only", max_steps=2, style_start_step=1),
        build_tiny_pipeline("sd"),
    )
    start = _snapshot(trainer)
    trainer.train_step()  # step 0: style-only ignores the warm-up
    end = _snapshot(trainer)
    assert _changed(start["style_B"], end["style_B"]) > 0
    assert _changed(start["content_B"], end["content_B"]) == 0
    assert trainer.history[-1][1] is None and trainer.history[-1][2] is not None
    trainer.close()


def test_slider_baseline_moves_the_style_image_up_and_the_content_image_down_under_one_prompt(pair, tmp_path):
    """Concept Sliders: rows (content image, -Δs) and (style image, +Δs), both under the content prompt."""
    trainer = PairTrainer(
        quick_config(*pair, tmp_path / "s.safetensors", method="slider", max_steps=2, style_start_step=1),
        build_tiny_pipeline("sd"),
    )
    assert trainer.config.style_prompt == trainer.config.content_prompt and trainer.config.style_suffix == ""
    assert trainer.kinds(0) == (RowKind.SLIDER_MINUS, RowKind.SLIDER_PLUS)
    seen = []
    hook = trainer.denoiser.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append(kwargs["encoder_hidden_states"].clone()), with_kwargs=True
    )
    start = _snapshot(trainer)
    trainer.train_step()
    hook.remove()
    assert torch.equal(seen[0][0], seen[0][1]), "both slider rows must use the content prompt"
    assert torch.equal(seen[0][0], trainer.pair.cond.hidden[0])
    assert _changed(start["style_B"], _snapshot(trainer)["style_B"]) > 0
    assert _changed(start["content_B"], _snapshot(trainer)["content_B"]) == 0
    assert None not in trainer.history[-1]
    trainer.close()


def test_non_orthogonal_ablation_trains_A_and_saves_it(pair, tmp_path):
    from safetensors.torch import load_file

    trainer = PairTrainer(
        quick_config(*pair, tmp_path / "s.safetensors", orthogonal=False, max_steps=3, style_start_step=1),
        build_tiny_pipeline("sd"),
    )
    start = _snapshot(trainer)
    trainer.fit()
    end = _snapshot(trainer)
    assert _changed(start["content_A"], end["content_A"]) > 0 and _changed(start["style_A"], end["style_A"]) > 0
    name, layer = next(iter(trainer.layers.items()))
    saved = load_file(str(trainer.save()))
    assert torch.equal(saved[f"unet.{name}.lora_A.weight"], layer.style_A.detach())
    trainer.close()


def _model_folder(folder, train_defaults: dict) -> str:
    """A model folder as far as resolving settings reads it: model_index.json, paircustom.json."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "paircustom.json").write_text(json.dumps({"train_defaults": train_defaults}))
    return str(folder)


@pytest.mark.parametrize(
    "given, model_defaults, expected_start",
    [
        (dict(max_steps=30), {}, 10),  # the paper's 250 of 750
        (dict(max_steps=30, style_start_step=5), {}, 5),  # given wins
        (dict(), {"max_steps": 300, "style_start": 100}, 100),  # the model's own defaults
        (dict(max_steps=12), {"max_steps": 300, "style_start": 150}, 6),  # the model's share
    ],
)
def test_style_start_defaults_keep_their_share_of_the_steps(given, model_defaults, expected_start, tmp_path):
    from paircustom.training.trainer import TrainConfig

    model = _model_folder(tmp_path / "model", model_defaults)
    config = TrainConfig("c.png", "s.png", model=model, **given).resolved()
    assert config.style_start_step == expected_start


def test_a_pipeline_passed_in_brings_the_defaults_of_the_folder_it_was_loaded_from(tmp_path):
    from types import SimpleNamespace

    from paircustom.training.trainer import TrainConfig

    folder = _model_folder(
        tmp_path / "model",
        {
            "max_steps": 40,
            "style_start": 10,
            "rank": 2,
            "resolution": 16,
            "learning_rate": 0.5,
            "gradient_accumulation": 3,
        },
    )
    loaded = TrainConfig("c.png", "s.png").resolved(SimpleNamespace(name_or_path=folder))
    assert (
        loaded.max_steps,
        loaded.style_start_step,
        loaded.content_rank,
        loaded.style_rank,
        loaded.resolution,
        loaded.learning_rate,
        loaded.gradient_accumulation,
    ) == (40, 10, 2, 2, 16, 0.5, 3), loaded
    built = TrainConfig("c.png", "s.png").resolved(SimpleNamespace(name_or_path=None))  # built in code: the paper's
    assert (built.max_steps, built.content_rank, built.resolution) == (750, 64, 512), built


@pytest.mark.parametrize("alpha, content_scale, style_scale", [(None, 1.0, 1.0), (8.0, 4.0, 2.0)])
def test_adapter_scale_is_alpha_over_rank_and_the_saved_file_matches_plain_diffusers(
    pair, tmp_path, alpha, content_scale, style_scale
):
    """Content rank 2 and style rank 4: each adapter's scale is alpha / its rank (alpha defaults to the rank).
    The saved file bakes the style scale into B, so the trainer's style-alone UNet and a plain diffusers UNet with
    the file loaded give the same prediction."""
    from paircustom.adapters.layers import Route, set_route

    config = quick_config(
        *pair, tmp_path / "a.safetensors", alpha=alpha, content_rank=2, max_steps=3, style_start_step=1
    )
    trainer = PairTrainer(config, build_tiny_pipeline("sd"))
    scales = {(layer.content_scale, layer.style_scale) for layer in trainer.layers.values()}
    assert scales == {(content_scale, style_scale)}, f"alpha {alpha}: scales {scales}"
    for _ in range(3):
        trainer.train_step()
    path = trainer.save()
    generator = torch.Generator().manual_seed(0)
    x, t, text = torch.randn(1, 4, 16, 16, generator=generator), torch.tensor([500]), trainer.pair.cond.select([1])
    with torch.no_grad():
        set_route(trainer.layers, [Route.STYLE_ALONE], "cpu")
        ours = trainer.denoiser(x, t, **text.unet_kwargs()).sample
        set_route(trainer.layers, None, "cpu")
        base = trainer.denoiser(x, t, **text.unet_kwargs()).sample
    trainer.close()
    plain = build_tiny_pipeline("sd")
    plain.load_lora_weights(str(path), adapter_name="style")
    with torch.no_grad():
        theirs = plain.unet(x, t, **text.unet_kwargs()).sample
    assert (ours - base).abs().max() > 1e-3, "the style adapters changed nothing"
    error = (ours - theirs).abs().max().item()
    assert error < 1e-4, f"alpha {alpha}: our style layers and diffusers' loaded file differ by {error:.3g}"


def _recording_trainer(pair, tmp_path, monkeypatch, **overrides):
    """A trainer whose pair_losses calls append their content losses to the returned list."""
    import paircustom.training.trainer as training

    seen, real = [], training.pair_losses

    def recording(*args):
        losses = real(*args)
        seen.append(losses[RowKind.CONTENT].item())
        return losses

    monkeypatch.setattr(training, "pair_losses", recording)
    return PairTrainer(quick_config(*pair, tmp_path / "a.safetensors", **overrides), build_tiny_pipeline("sd")), seen


def test_an_accumulated_step_reports_the_mean_of_its_micro_steps(pair, tmp_path, monkeypatch):
    """gradient_accumulation 2: the step's content loss (history and return value) is the mean of its two draws."""
    trainer, draws = _recording_trainer(pair, tmp_path, monkeypatch, gradient_accumulation=2)
    content, style = trainer.train_step()
    trainer.close()
    assert len(draws) == 2 and draws[0] != draws[1], draws
    assert style is None and content == pytest.approx(sum(draws) / 2, rel=1e-6), (content, draws)
    assert trainer.history == [(1, content, None)]


def test_evaluate_is_the_mean_over_its_draws(pair, tmp_path, monkeypatch):
    trainer, draws = _recording_trainer(pair, tmp_path, monkeypatch)
    content, _ = trainer.evaluate(draws=3)
    trainer.close()
    assert len(draws) == 3 and content == pytest.approx(sum(draws) / 3, rel=1e-6), (content, draws)


def test_the_fused_adamw_on_the_cpu_trains_as_the_per_tensor_one(pair, tmp_path, monkeypatch):
    """The trainer's AdamW is fused on a CPU (one kernel for every adapter); the same B's as the per-tensor loop."""
    from paircustom.training import trainer as trainer_module

    weights = {}
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(trainer_module, "optimizer_class", lambda config, device: torch.optim.AdamW)
        trainer = PairTrainer(
            quick_config(*pair, tmp_path / f"{fused}.safetensors", max_steps=4, style_start_step=1),
            build_tiny_pipeline("sd"),
        )
        assert trainer.optimizer.optimizer.param_groups[0]["fused"] is (fused or None), "fused AdamW on the CPU"
        trainer.fit()
        weights[fused] = _snapshot(trainer)
        trainer.close()
    for kind in ("content_B", "style_B"):
        moved = max(b.abs().max().item() for b in weights[False][kind])
        assert moved > 1e-3, f"{kind} did not train"
        assert _changed(weights[True][kind], weights[False][kind]) < 1e-5 * max(moved, 1.0), kind
