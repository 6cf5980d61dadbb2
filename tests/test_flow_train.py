"""SD3 and Flux through the trainer, the command line and the web app's logic, on tiny pipelines saved to disk."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from paircustom.cli.main import main
from paircustom.errors import UserError
from paircustom.models.flow import TRANSFORMER_TARGETS
from paircustom.models.plan import ModelPlan
from paircustom.models.registry import family_of
from paircustom.sampling.pipeline import FlowStyleGuidedPipeline, from_pretrained
from paircustom.tiny.flow import build_tiny_flow_pipeline
from paircustom.training.objective import RowKind, pair_losses
from paircustom.training.trainer import PairTrainer
from tests.conftest import RESOLUTION, quick_config

TINY_DEFAULTS = dict(
    rank=4, learning_rate=1e-2, max_steps=3, style_start=1, gradient_accumulation=1, resolution=RESOLUTION
)


@pytest.fixture(scope="module", params=("flux", "sd3"))
def model(request, tmp_path_factory):
    """A tiny SD3 / Flux pipeline saved with save_pretrained, with small training defaults in its paircustom.json."""
    folder = tmp_path_factory.mktemp("flow-model") / request.param
    build_tiny_flow_pipeline(request.param).save_pretrained(folder)
    (folder / "paircustom.json").write_text(json.dumps({"train_defaults": TINY_DEFAULTS}))
    return folder


def run(argv, capsys) -> tuple[int, list[str], list[str]]:
    """(exit code, stdout lines, stderr lines) of ``paircustom argv``."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_info:
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out.strip().splitlines(), err.strip().splitlines()


def test_train_and_generate_on_the_command_line(model, pair, tmp_path, capsys):
    style = tmp_path / "art.safetensors"
    code, out, err = run(
        [
            "train",
            *pair,
            "--subject",
            "dog",
            "--style",
            "digital art",
            "--model",
            model,
            "-o",
            style,
            "--device",
            "cpu",
            "--quiet",
        ],
        capsys,
    )
    assert code in (0, None) and out == [f"wrote {style}"], (code, out, err)
    with safe_open(str(style), framework="pt") as file:
        metadata = json.loads(file.metadata()["paircustom"])
        tensors = {key: file.get_tensor(key) for key in file.keys()}
    assert metadata["family"] == model.name and metadata["target_modules"] == list(TRANSFORMER_TARGETS), metadata
    assert all(key.startswith("transformer.") for key in tensors), "keys load_lora_weights reads for SD3 / Flux"
    for target in ("to_q", "add_q_proj", "to_add_out"):  # the default targets include the joint text stream
        assert any(f".{target}.lora_B." in key for key in tensors), f"no {target} adapter in the style file"
    trained = max(t.abs().max().item() for k, t in tensors.items() if ".lora_B." in k)
    assert trained > 1e-4, f"the style B's did not move from zero ({trained:.3g})"

    image = tmp_path / "cat.png"
    code, out, err = run(
        [
            "generate",
            "a photo of a cat",
            "-s",
            f"{style}=3",
            "--steps",
            3,
            "--height",
            32,
            "--width",
            32,
            "--compare",
            "-o",
            image,
            "--device",
            "cpu",
            "--quiet",
        ],
        capsys,
    )
    wrote = [f"wrote {image}", f"wrote {image.with_name('cat-compare.png')}"]
    # without --model, one line first says which model the style file chose and why (docs/reliability.md)
    assert code in (0, None) and out[0].startswith("model: ") and out[1:] == wrote, (out, err)


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--guidance-rescale", "0.5"], "guidance rescale is not supported for SD3 and Flux"),
        (["--prompt-2", "a dog"], "prompt 2 is not supported for SD3 and Flux"),
    ],
)
def test_options_flux_and_sd3_do_not_take_are_refused_before_loading(model, tmp_path, capsys, extra, words):
    style = tmp_path / "style.safetensors"
    pipe = build_tiny_flow_pipeline(model.name)
    trainer = PairTrainer(quick_config(*_pair(tmp_path), style, max_steps=1, style_start_step=0), pipe)
    trainer.save()
    code, out, err = run(["generate", "a cat", "-s", style, "--model", model, "-o", tmp_path / "x.png", *extra], capsys)
    assert (code, len(err)) == (2, 1) and err[0].startswith("paircustom: error: ") and words in err[0], err
    assert not (tmp_path / "x.png").exists()
    code, out, err = run(
        ["stylize", _pair(tmp_path)[0], "-s", style, "--model", model, "-o", tmp_path / "y.png"], capsys
    )
    assert (code, len(err)) == (2, 1) and "not supported for SD3 and Flux" in err[0], err


def _pair(tmp_path):
    from tests.conftest import write_pair

    return write_pair(tmp_path / "pair")


def test_flow_options_are_refused_for_unet_models(tmp_path, capsys, style_files):
    from paircustom.tiny.unet import build_tiny_pipeline

    build_tiny_pipeline("sd").save_pretrained(tmp_path / "sd")
    capsys.readouterr()
    code, out, err = run(
        [
            "generate",
            "a cat",
            "-s",
            style_files["sd"],
            "--true-cfg-scale",
            "4",
            "--model",
            tmp_path / "sd",
            "-o",
            tmp_path / "x.png",
        ],
        capsys,
    )
    assert (code, len(err)) == (2, 1) and "--true-cfg-scale applies to Flux" in err[0], err


def test_the_resolution_must_be_a_whole_number_of_2x2_patches():
    plan = ModelPlan.of_pipeline(build_tiny_flow_pipeline("flux"))
    assert plan.pixel_multiple == 4, "the tiny VAE halves, and Flux packs 2x2 latents: 4 pixels per token side"
    plan.check_resolution(32)
    with pytest.raises(UserError, match="multiple of 4 for this flux model"):
        plan.check_resolution(30)


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_gradient_checkpointing_gives_the_same_gradients(family, pair, tmp_path):
    """The transformer's gradient checkpointing recomputes each block in backward, through our row routing."""
    grads = []
    for checkpointing in (False, True):
        trainer = PairTrainer(
            quick_config(*pair, tmp_path / f"{checkpointing}.safetensors", gradient_checkpointing=checkpointing),
            build_tiny_flow_pipeline(family),
        )
        assert trainer.denoiser.is_gradient_checkpointing == checkpointing
        losses = pair_losses(
            trainer.denoiser,
            trainer.layers,
            trainer.noise_scheduler,
            trainer.pair,
            (RowKind.CONTENT, RowKind.STYLE_OVER_FROZEN_CONTENT),
            torch.Generator().manual_seed(0),
            trainer.family,
        )
        sum(losses.values()).backward()
        grads.append([p.grad.clone() for p in trainer.content_params + trainer.style_params])
    worst = max((a - b).abs().max().item() for a, b in zip(*grads))
    assert worst <= 1e-6, f"gradients with checkpointing differ by up to {worst:.3g}"
    assert max(g.abs().max().item() for g in grads[0]) > 1e-5, "all gradients ~0: the test would prove nothing"


def test_targets_can_be_narrowed_and_previews_sample_through_the_run_s_own_adapters(pair, tmp_path):
    pipe = build_tiny_flow_pipeline("flux")
    trainer = PairTrainer(quick_config(*pair, tmp_path / "s.safetensors", target_modules=("to_q", "to_v")), pipe)
    assert {name.rsplit(".", 1)[1] for name in trainer.layers} == {"to_q", "to_v"}
    assert family_of(pipe).denoiser(pipe) is trainer.denoiser
    trainer.train_step()
    assert trainer.preview().is_file()


def test_the_web_app_trains_and_generates_with_flux(model, pair, tmp_path):
    from paircustom.ui.studio import Studio

    if model.name != "flux":
        pytest.skip("one flow family is enough for the web app")
    studio = Studio(str(model), tmp_path / "work", device="cpu")
    studio.train(*pair, "dog", "digital art", steps=2)
    progress = studio.wait(120)
    assert progress.error is None and progress.step == 2, progress
    assert isinstance(studio.pipe, FlowStyleGuidedPipeline)
    base, styled, _ = studio.generate("a photo of a cat", {progress.style_name: 3.0}, steps=3)
    assert base.size == styled.size == (256, 256), "FluxPipeline's default size: 128 latents x the tiny VAE's 2"
    different = (
        (
            torch.tensor(list(base.getdata()), dtype=torch.float)
            - torch.tensor(list(styled.getdata()), dtype=torch.float)
        )
        .abs()
        .max()
        .item()
    )
    assert different > 0, "the style changed no pixel"


def test_from_pretrained_picks_the_family_s_wrapper(model):
    guided = from_pretrained(str(model))
    assert isinstance(guided, FlowStyleGuidedPipeline) and guided.family.name == model.name


def test_the_shipped_deepspeed_zero2_config_parses_as_accelerate_reads_it():
    """Not run under DeepSpeed here (not installed, no GPUs): the files parse with accelerate's own loaders."""
    from pathlib import Path

    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin, DistributedType

    root = Path(__file__).resolve().parents[1]
    launch = load_config_from_file(str(root / "configs" / "accelerate_deepspeed_zero2.yaml"))
    assert launch.distributed_type == DistributedType.DEEPSPEED and launch.num_processes >= 2
    file = root / launch.deepspeed_config["deepspeed_config_file"]
    plugin = DeepSpeedPlugin(hf_ds_config=str(file))
    assert plugin.zero_stage == 2 and plugin.deepspeed_config["bf16"]["enabled"] is True
    assert plugin.deepspeed_config["train_micro_batch_size_per_gpu"] == 1
