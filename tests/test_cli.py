"""The command line end to end on a tiny model saved to disk, and every bad input's one-sentence refusal."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from paircustom.cli.main import main
from paircustom.files.images import LABEL_HEIGHT
from paircustom.tiny.unet import build_tiny_pipeline
from tests.conftest import RESOLUTION, fast_flags, write_pair

FAST = fast_flags(3)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for family in ("sd", "sdxl"):
        build_tiny_pipeline(family).save_pretrained(root / family)
    return {family: str(root / family) for family in ("sd", "sdxl")}


@pytest.fixture(scope="module")
def trained(model_dirs, tmp_path_factory):
    """A style file trained through the CLI on the saved tiny SD model."""
    folder = tmp_path_factory.mktemp("cli")
    content, style = write_pair(folder)
    output = folder / "art.safetensors"
    assert (
        main(
            [
                "train",
                str(content),
                str(style),
                "--subject",
                "dog",
                "--style",
                "digital art",
                "--model",
                model_dirs["sd"],
                "--output",
                str(output),
                "--save-content",
                *FAST,
            ]
        )
        == 0
    )
    return folder, output


def test_train_writes_style_and_content_files_with_metadata(trained, model_dirs, capsys):
    folder, output = trained
    assert output.is_file() and (folder / "art-content.safetensors").is_file()
    main(["info", str(output)])
    text = capsys.readouterr().out
    metadata = json.loads(text[text.index("{") :])
    assert metadata["family"] == "sd" and metadata["base_model"] == model_dirs["sd"]
    assert metadata["style_suffix"] == " in digital art style" and metadata["content_rank"] == 4
    assert metadata["training"]["max_steps"] == 3 and len(metadata["training"]["final_losses"]) == 2


def test_generate_writes_image_and_comparison(trained, tmp_path):
    _, style = trained
    out = tmp_path / "cat.png"
    assert (
        main(
            [
                "generate",
                "a photo of a cat",
                "--style-file",
                f"{style}=2.5",
                "--steps",
                "3",
                "--height",
                "32",
                "--width",
                "32",
                "--output",
                str(out),
                "--compare",
            ]
        )
        == 0
    )
    assert Image.open(out).size == (32, 32)
    compare = Image.open(tmp_path / "cat-compare.png").convert("L")
    assert compare.size == (64, 32 + LABEL_HEIGHT)
    assert min(compare.crop((0, 0, 64, LABEL_HEIGHT)).getdata()) < 128, "the compare image has no labels"


def test_generate_lora_scale_baseline_and_several_images(trained, tmp_path):
    _, style = trained
    out = tmp_path / "cat.png"
    main(
        [
            "generate",
            "a cat",
            "-s",
            str(style),
            "--lora-scale",
            "0.8",
            "--num-images",
            "2",
            "--steps",
            "2",
            "--height",
            "32",
            "--width",
            "32",
            "-o",
            str(out),
        ]
    )
    assert (tmp_path / "cat-0.png").is_file() and (tmp_path / "cat-1.png").is_file()


def test_python_dash_m_shows_help():
    result = subprocess.run([sys.executable, "-m", "paircustom", "train", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--style-start-step" in result.stdout and "paper: 250" in result.stdout


def _refusal(argv, capsys, match):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2, err
    last = err.splitlines()[-1]  # loading progress bars may come before it
    assert "Traceback" not in err and last.startswith("paircustom: error: "), err
    assert match in last, err
    return err


def _train_args(content, style, model, output, *extra):
    return [
        "train",
        str(content),
        str(style),
        "--subject",
        "dog",
        "--style",
        "art",
        "--model",
        model,
        "--output",
        str(output),
        *FAST,
        *extra,
    ]


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing content", "does not exist"),
        ("not an image", "is not a readable image"),
        ("mismatched sizes", "same aspect ratio"),
        ("ranks too large", "exceeds a layer's input width"),
        ("zero rank", "--rank must be at least 1"),
        ("style start after end", "--style-start-step (10)"),
        ("output exists", "--overwrite"),
        ("bad model folder", "not a diffusers pipeline folder"),
        ("missing model folder", "the model folder"),
        ("missing nested model folder", "the model folder"),
        ("resume without checkpoint", "found no checkpoint"),
    ],
)
def test_bad_training_input_is_refused_in_one_sentence(case, match, model_dirs, tmp_path, capsys, monkeypatch):
    content, style = write_pair(tmp_path)
    output = tmp_path / "out.safetensors"
    model, extra = model_dirs["sd"], []
    if case == "missing content":
        content = tmp_path / "nope.png"
    elif case == "not an image":
        content.write_text("hello")
    elif case == "mismatched sizes":
        Image.new("RGB", (64, 32)).save(style)
    elif case == "ranks too large":
        extra = ["--rank", "20"]  # 20 + 20 > the tiny UNet's width 32
    elif case == "zero rank":
        extra = ["--rank", "0"]
    elif case == "style start after end":
        extra = ["--style-start-step", "10"]
    elif case == "output exists":
        output.write_bytes(b"precious")
    elif case == "bad model folder":
        model = str(tmp_path)
    elif case == "missing model folder":
        model = str(tmp_path / "models" / "sd")
    elif case == "missing nested model folder":  # looks like a hub id, but its first part is a folder here
        (tmp_path / "models").mkdir()
        model = "models/sd"
        monkeypatch.chdir(tmp_path)
    elif case == "resume without checkpoint":
        output.write_bytes(b"precious")
        extra = ["--resume"]
    _refusal(_train_args(content, style, model, output, *extra), capsys, match)
    if case in ("output exists", "resume without checkpoint"):
        assert output.read_bytes() == b"precious", "an existing file was touched"


@pytest.mark.parametrize(
    "case, match",
    [
        ("wrong family", "was trained on an SD 1.x/2.x model"),
        ("corrupt file", "is not a readable .safetensors file"),
        ("no metadata", "pass suffix="),
        ("nan scale", "must be a finite number"),
        ("bad style start", "--style-start-fraction must lie between 0 and 1"),
        ("bad size", "multiples of 2"),
    ],
)
def test_bad_generation_input_is_refused_in_one_sentence(case, match, trained, model_dirs, tmp_path, capsys):
    _, style = trained
    model, extra, spec = model_dirs["sd"], [], str(style)
    if case == "wrong family":
        model = model_dirs["sdxl"]
    elif case == "corrupt file":
        spec = str(tmp_path / "bad.safetensors")
        (tmp_path / "bad.safetensors").write_bytes(style.read_bytes()[:100])
    elif case == "no metadata":
        from safetensors.torch import load_file, save_file

        spec = str(tmp_path / "other.safetensors")
        save_file(load_file(str(style)), spec)
    elif case == "nan scale":
        spec = f"{style}=nan"
    elif case == "bad style start":
        extra = ["--style-start-fraction", "1.5"]
    elif case == "bad size":
        extra = ["--height", "33"]
    _refusal(
        ["generate", "a cat", "-s", spec, "--model", model, "--steps", "2", "-o", str(tmp_path / "x.png"), *extra],
        capsys,
        match,
    )


def test_corrupt_checkpoint_is_refused_on_resume(model_dirs, tmp_path, capsys):
    content, style = write_pair(tmp_path)
    output = tmp_path / "out.safetensors"
    output.with_suffix(".checkpoint.safetensors").write_bytes(b"garbage")
    _refusal(_train_args(content, style, model_dirs["sd"], output, "--resume"), capsys, "cannot resume")


def _straight_run(model, folder):
    """A 4-step run with a checkpoint every 2 steps, trained straight through: (pair, its settings, the trainer)."""
    from paircustom.training.trainer import PairTrainer, TrainConfig

    content, style = write_pair(folder)
    settings = dict(
        subject="dog",
        style="art",
        model=model,
        rank=4,
        learning_rate=1e-2,
        max_steps=4,
        style_start_step=1,
        gradient_accumulation=1,
        resolution=RESOLUTION,
        progress=False,
        checkpoint_every=2,
    )
    straight = PairTrainer(TrainConfig(str(content), str(style), output=str(folder / "a.safetensors"), **settings))
    straight.fit()
    return (content, style), settings, straight


def test_resume_continues_where_the_checkpoint_stopped(model_dirs, tmp_path):
    from paircustom.training.trainer import PairTrainer, TrainConfig

    (content, style), settings, straight = _straight_run(model_dirs["sd"], tmp_path)
    first = PairTrainer(
        TrainConfig(str(content), str(style), output=str(tmp_path / "b.safetensors"), **{**settings, "max_steps": 2})
    )
    first.fit()  # writes b.checkpoint.safetensors at step 2
    resumed = PairTrainer(
        TrainConfig(str(content), str(style), output=str(tmp_path / "b.safetensors"), resume=True, **settings)
    )
    assert resumed.step == 2
    resumed.fit()
    for a, b in zip(straight.style_params, resumed.style_params):
        assert torch.allclose(a, b, atol=1e-6)


def test_relative_model_is_stored_absolute_and_generate_works_from_another_folder(model_dirs, tmp_path, monkeypatch):
    import shutil

    from paircustom.files.style_file import read_adapter

    shutil.copytree(model_dirs["sd"], tmp_path / "work" / "my-model")
    content, style = write_pair(tmp_path / "work")
    monkeypatch.chdir(tmp_path / "work")
    assert (
        main(
            [
                "train",
                "content.png",
                "style.png",
                "--subject",
                "dog",
                "--style",
                "art",
                "--model",
                "my-model",
                "--output",
                "art.safetensors",
                *FAST,
            ]
        )
        == 0
    )
    _, metadata = read_adapter(tmp_path / "work" / "art.safetensors")
    assert metadata.base_model == str((tmp_path / "work" / "my-model").resolve()), metadata.base_model
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert (
        main(
            [
                "generate",
                "a cat",
                "-s",
                "../work/art.safetensors",
                "--steps",
                "2",
                "--height",
                "32",
                "--width",
                "32",
                "-o",
                "cat.png",
            ]
        )
        == 0
    )
    assert (tmp_path / "elsewhere" / "cat.png").is_file()


def test_resume_without_checkpoint_trains_from_the_start_when_nothing_is_overwritten(model_dirs, tmp_path):
    content, style = write_pair(tmp_path)
    output = tmp_path / "out.safetensors"
    assert main(_train_args(content, style, model_dirs["sd"], output, "--resume")) == 0
    assert output.is_file()


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_written_files_follow_the_umask(umask, trained, tmp_path):
    import os

    _, style = trained
    previous = os.umask(umask)
    try:
        main(
            [
                "generate",
                "a cat",
                "-s",
                str(style),
                "--steps",
                "1",
                "--height",
                "32",
                "--width",
                "32",
                "-o",
                str(tmp_path / "cat.png"),
            ]
        )
    finally:
        os.umask(previous)
    mode = (tmp_path / "cat.png").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask, f"image written with mode {oct(mode)} under umask {oct(umask)}"


def test_generate_shows_progress_unless_quiet(trained, tmp_path, capsys):
    _, style = trained
    args = ["generate", "a cat", "-s", str(style), "--steps", "2", "--height", "32", "--width", "32"]
    main([*args, "-o", str(tmp_path / "a.png")])
    assert "2/2" in capsys.readouterr().err, "no denoising progress bar"
    main([*args, "-o", str(tmp_path / "b.png"), "--quiet"])
    assert "2/2" not in capsys.readouterr().err, "--quiet still shows a progress bar"


def test_png_carries_prompt_seed_styles_and_model(trained, model_dirs, tmp_path):
    _, style = trained
    out = tmp_path / "cat.png"
    main(
        [
            "generate",
            "a photo of a cat",
            "-s",
            f"{style}=2.5",
            "--seed",
            "7",
            "--steps",
            "2",
            "--height",
            "32",
            "--width",
            "32",
            "-o",
            str(out),
            "--negative-prompt",
            "blurry",
            "--compare",
            "--quiet",
        ]
    )
    text = Image.open(out).text
    assert text["prompt"] == "a photo of a cat" and text["seed"] == "7" and text["negative_prompt"] == "blurry"
    assert text["model"] == Path(model_dirs["sd"]).name, text  # names, not the folders of this machine
    digest = hashlib.sha256(style.read_bytes()).hexdigest()
    assert json.loads(text["styles"]) == {"art": {"file": style.name, "sha256": digest, "scale": 2.5}}, text["styles"]
    assert str(tmp_path) not in " ".join(text.values()), "an absolute path went into the PNG"
    assert Image.open(tmp_path / "cat-compare.png").text["layout"] == "base | styled"
    args = ["-s", f"{style}=2.5", "--steps", "1", "--height", "32", "--width", "32", "--record-paths", "--quiet"]
    main(["generate", "a photo of a cat", *args, "-o", str(tmp_path / "paths.png")])
    text = Image.open(tmp_path / "paths.png").text
    assert text["model"] == model_dirs["sd"] and json.loads(text["styles"])["art"]["path"] == str(style.resolve())


def test_style_interval_and_end_reach_the_sampler_and_the_png(trained, tmp_path):
    import numpy as np

    _, style = trained
    # 8 steps: style steps 2-5 (end 0.8), recomputed on 2 and 4; the forecast acts on step 5
    args = [
        "generate",
        "a photo of a cat",
        "-s",
        f"{style}=3",
        "--steps",
        "8",
        "--height",
        "32",
        "--width",
        "32",
        "--quiet",
    ]
    main([*args, "-o", str(tmp_path / "full.png")])
    main(
        [
            *args,
            "-o",
            str(tmp_path / "cached.png"),
            "--style-interval",
            "2",
            "--style-end",
            "0.8",
            "--style-reuse",
            "hold",
        ]
    )
    main([*args, "-o", str(tmp_path / "forecast.png"), "--style-interval", "2", "--style-end", "0.8"])
    names = ("full", "cached", "forecast")
    images = {name: Image.open(tmp_path / f"{name}.png") for name in names}
    full, cached, forecast = images.values()
    assert {"style_interval", "style_end", "style_tolerance", "style_reuse"} & full.text.keys() == set(), full.text
    assert cached.text["style_interval"] == "2" and cached.text["style_end"] == "0.8", cached.text
    assert cached.text["style_reuse"] == "hold" and forecast.text["style_reuse"] == "forecast", forecast.text
    pixels = {name: np.asarray(image, dtype=float) for name, image in images.items()}
    for a, b in (("full", "cached"), ("cached", "forecast")):
        assert np.abs(pixels[a] - pixels[b]).max() > 0, f"{b} drew the same image as {a}: the option did not arrive"


def test_name_tells_styles_with_the_same_stem_apart(trained, tmp_path, capsys):
    import shutil

    _, style = trained
    (tmp_path / "other").mkdir()
    copy = shutil.copy(style, tmp_path / "other" / style.name)
    args = [
        "generate",
        "a cat",
        "-s",
        f"{style}=2",
        "-s",
        f"{copy}=1",
        "--steps",
        "2",
        "--height",
        "32",
        "--width",
        "32",
        "--quiet",
    ]
    _refusal([*args, "-o", str(tmp_path / "x.png")], capsys, "name each with --name")
    _refusal([*args, "-o", str(tmp_path / "x.png"), "--name", "a"], capsys, "one --name per --style-file")
    _refusal([*args, "-o", str(tmp_path / "x.png"), "--name", "half", "--name", "b"], capsys, "cannot name a style")
    assert main([*args, "-o", str(tmp_path / "y.png"), "--name", "a", "--name", "b"]) == 0
    assert json.loads(Image.open(tmp_path / "y.png").text["styles"]).keys() == {"a", "b"}


def test_content_lora_as_style_warns_in_one_line(trained, tmp_path, capsys):
    folder, _ = trained
    main(
        [
            "generate",
            "a cat",
            "-s",
            str(folder / "art-content.safetensors"),
            "--steps",
            "1",
            "--height",
            "32",
            "--width",
            "32",
            "--quiet",
            "-o",
            str(tmp_path / "x.png"),
        ]
    )
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if "content LoRA" in line]
    assert len(warning) == 1 and warning[0].startswith("paircustom: warning: "), err
    assert "warnings.warn" not in err and "Warning:" not in err, err


def test_cpu_mixed_precision_fallback_is_one_warning_line(model_dirs, tmp_path, capsys):
    content, style = write_pair(tmp_path)
    main(_train_args(content, style, model_dirs["sd"], tmp_path / "o.safetensors", "--mixed-precision", "bf16"))
    err = capsys.readouterr().err
    assert "paircustom: warning: mixed precision needs a GPU" in err and "warnings.warn" not in err, err


def test_device_and_dtype_options(trained, tmp_path, capsys):
    _, style = trained
    args = ["generate", "a cat", "-s", str(style), "--steps", "2", "--height", "32", "--width", "32", "--quiet"]
    assert main([*args, "--device", "cpu", "--dtype", "bf16", "-o", str(tmp_path / "bf16.png")]) == 0
    assert Image.open(tmp_path / "bf16.png").size == (32, 32)
    _refusal([*args, "--device", "warp-drive", "-o", str(tmp_path / "x.png")], capsys, "is not a device")
    if not torch.cuda.is_available():
        _refusal([*args, "--device", "cuda", "-o", str(tmp_path / "x.png")], capsys, "not available on this machine")


def test_train_with_half_precision_base_weights_and_half_precision_file(model_dirs, tmp_path):
    from paircustom.files.style_file import read_adapter

    content, style = write_pair(tmp_path)
    output = tmp_path / "half-precision.safetensors"
    assert (
        main(
            _train_args(
                content, style, model_dirs["sd"], output, "--device", "cpu", "--dtype", "bf16", "--save-dtype", "fp16"
            )
        )
        == 0
    )
    tensors, metadata = read_adapter(output)
    assert {t.dtype for t in tensors.values()} == {torch.float16} and metadata.dtype == "fp16"
    assert metadata.training["dtype"] == "bf16"
    assert (
        main(
            [
                "generate",
                "a cat",
                "-s",
                str(output),
                "--steps",
                "2",
                "--height",
                "32",
                "--width",
                "32",
                "--quiet",
                "-o",
                str(tmp_path / "cat.png"),
            ]
        )
        == 0
    )


@pytest.mark.parametrize("model, expected", [("shapes", "fp32"), ("stabilityai/stable-diffusion-xl-base-1.0", "fp16")])
def test_style_files_default_to_fp16_for_hub_models(model, expected):
    from paircustom.training.trainer import TrainConfig

    assert TrainConfig("c.png", "s.png", model=model).resolved().save_dtype == expected


@pytest.fixture(scope="module")
def variant_and_vae(tmp_path_factory):
    from paircustom.tiny.unet import tiny_vae

    root = tmp_path_factory.mktemp("variant")
    build_tiny_pipeline("sd").save_pretrained(root / "sd-fp16", variant="fp16")
    tiny_vae(seed=7).save_pretrained(root / "vae")
    return root


def test_variant_and_vae_are_loaded(variant_and_vae, trained, tmp_path, capsys):
    from paircustom.sampling.pipeline import StyleGuidedPipeline
    from paircustom.tiny.unet import tiny_vae

    root, (_, style) = variant_and_vae, trained
    args = [
        "generate",
        "a cat",
        "-s",
        str(style),
        "--steps",
        "2",
        "--height",
        "32",
        "--width",
        "32",
        "--quiet",
        "--model",
        str(root / "sd-fp16"),
    ]
    assert main([*args, "--variant", "fp16", "--vae", str(root / "vae"), "-o", str(tmp_path / "a.png")]) == 0
    _refusal([*args, "--variant", "fp8", "-o", str(tmp_path / "b.png")], capsys, "could not load")
    _refusal(
        [*args, "--variant", "fp16", "--vae", str(tmp_path / "no-vae"), "-o", str(tmp_path / "c.png")],
        capsys,
        "the VAE folder",
    )
    pipe = StyleGuidedPipeline.from_pretrained(str(root / "sd-fp16"), variant="fp16", vae=str(root / "vae"))
    expected = tiny_vae(seed=7).state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in pipe.pipe.vae.state_dict().items()), (
        "the pipeline kept its own VAE"
    )


@pytest.mark.parametrize("family, passed", [("sd", True), ("sdxl", False)])
def test_safety_checker_is_only_switched_off_where_the_pipeline_has_one(family, passed, model_dirs, monkeypatch):
    """SDXL has no safety checker: passing safety_checker=None made diffusers warn on every SDXL command."""
    from diffusers import DiffusionPipeline

    from paircustom.models.registry import load_pipeline

    seen = {}
    original = DiffusionPipeline.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.update(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", classmethod(spy))
    load_pipeline(model_dirs[family])
    assert ("safety_checker" in seen) == passed, seen


def test_finished_run_keeps_its_checkpoint_and_resume_with_more_steps_extends_it(model_dirs, tmp_path):
    from paircustom.training.trainer import PairTrainer, TrainConfig, train_pair

    (content, style), settings, straight = _straight_run(model_dirs["sd"], tmp_path)
    output = tmp_path / "b.safetensors"
    train_pair(TrainConfig(str(content), str(style), output=str(output), **{**settings, "max_steps": 3}))
    assert output.is_file() and output.with_suffix(".checkpoint.safetensors").is_file(), (
        "the finished run's checkpoint is gone"
    )
    extended = PairTrainer(TrainConfig(str(content), str(style), output=str(output), resume=True, **settings))
    assert extended.step == 3, f"resumed at step {extended.step}, not at the end of the finished run"
    extended.fit()
    for a, b in zip(straight.style_params, extended.style_params):
        assert torch.allclose(a, b, atol=1e-6), "3 + 1 steps differ from 4 straight steps"


def test_save_every_writes_numbered_intermediate_styles(model_dirs, tmp_path):
    from paircustom.files.style_file import read_adapter

    content, style = write_pair(tmp_path)
    output = tmp_path / "art.safetensors"
    assert main(_train_args(content, style, model_dirs["sd"], output, "--steps", "4", "--save-every", "2")) == 0
    _, metadata = read_adapter(tmp_path / "art-step00002.safetensors")
    assert metadata.training["step"] == 2 and read_adapter(output)[1].training["step"] == 4
    assert not (tmp_path / "art-step00004.safetensors").exists(), "the last step is the output itself"
    assert not output.with_suffix(".checkpoint.safetensors").exists(), "no checkpoint was asked for"


def test_keep_checkpoints_keeps_the_newest_numbered_and_resume_reads_the_newest(model_dirs, tmp_path):
    from paircustom.training.checkpoint import read_header

    content, style = write_pair(tmp_path)
    output = tmp_path / "art.safetensors"
    args = lambda steps, *extra: _train_args(
        content,
        style,
        model_dirs["sd"],
        output,
        "--steps",
        str(steps),  # noqa: E731
        "--checkpoint-every",
        "1",
        "--keep-checkpoints",
        "2",
        *extra,
    )
    killed = tmp_path / ".art.checkpoint-step00009.safetensors.abcd1234.safetensors"  # a killed write's leftover
    killed.write_bytes(b"half")
    assert main(args(4)) == 0
    kept = sorted(p.name for p in tmp_path.glob("art.checkpoint*"))
    assert kept == [
        "art.checkpoint-step00003.safetensors",
        "art.checkpoint-step00004.safetensors",
        "art.checkpoint.safetensors",
    ], f"kept {kept}"
    rolling = output.with_suffix(".checkpoint.safetensors")
    assert rolling.read_bytes() == (tmp_path / "art.checkpoint-step00004.safetensors").read_bytes()
    assert not killed.exists(), "the temporary file of a killed numbered checkpoint was left"
    assert main(args(5, "--resume")) == 0
    assert read_header(rolling)["step"] == 5 and sorted(p.name for p in tmp_path.glob("art.checkpoint-*")) == [
        "art.checkpoint-step00004.safetensors",
        "art.checkpoint-step00005.safetensors",
    ]


def test_prompts_file_and_seeds_name_each_image_by_prompt_and_seed(style_files, model_dirs, tmp_path, monkeypatch):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("A photo of a cat!\n# skipped\n\na red house\n")
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "generate",
                "--prompts-file",
                str(prompts),
                "--seeds",
                "3,5",
                "-s",
                str(style_files["sd"]),
                "--model",
                model_dirs["sd"],
                "--steps",
                "2",
                "--height",
                "32",
                "--width",
                "32",
                "-o",
                "out/img.png",
                "--quiet",
                "--compare",
            ]
        )
        == 0
    )
    made = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert made == sorted(
        f"img-{i}-s{seed}{part}.png"
        for i in ("000-a-photo-of-a-cat", "001-a-red-house")
        for seed in (3, 5)
        for part in ("", "-compare")
    ), made
    text = Image.open(tmp_path / "out" / "img-001-a-red-house-s5.png").text
    assert (text["prompt"], text["seed"], text["prompt_index"]) == ("a red house", "5", "1")
    single = tmp_path / "single.png"
    assert (
        main(
            [
                "generate",
                "a red house",
                "--seed",
                "5",
                "-s",
                str(style_files["sd"]),
                "--model",
                model_dirs["sd"],
                "--steps",
                "2",
                "--height",
                "32",
                "--width",
                "32",
                "-o",
                str(single),
                "--quiet",
            ]
        )
        == 0
    )
    assert np.array_equal(
        np.asarray(Image.open(single)), np.asarray(Image.open(tmp_path / "out" / "img-001-a-red-house-s5.png"))
    ), "a batch image differs from the same prompt and seed made alone"


def test_sdxl_second_prompt_and_guidance_rescale(style_files, model_dirs, tmp_path, capsys):
    args = ["generate", "a cat", "--steps", "2", "--height", "32", "--width", "32", "--quiet"]
    assert (
        main(
            [
                *args,
                "-s",
                str(style_files["sdxl"]),
                "--model",
                model_dirs["sdxl"],
                "--prompt-2",
                "a dog",
                "--negative-prompt-2",
                "dark",
                "--guidance-rescale",
                "0.7",
                "-o",
                str(tmp_path / "a.png"),
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "a.png").text["prompt_2"] == "a dog"
    _refusal(
        [
            *args,
            "-s",
            str(style_files["sd"]),
            "--model",
            model_dirs["sd"],
            "--prompt-2",
            "a dog",
            "-o",
            str(tmp_path / "b.png"),
        ],
        capsys,
        "second text encoder",
    )


@pytest.mark.parametrize(
    "method, extra, recorded",
    [
        ("sdedit", [], "stylize sdedit"),
        ("inversion", [], "stylize inversion"),
        ("inversion", ["--negative-prompt-inversion"], "stylize inversion (negative-prompt inversion)"),
    ],
)
def test_stylize_writes_the_styled_image_with_its_settings(method, extra, recorded, trained, tmp_path):
    _, style = trained
    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(3).random((40, 56, 3)) * 255).astype(np.uint8)).save(photo)
    out = tmp_path / "styled.png"
    assert (
        main(
            [
                "stylize",
                str(photo),
                "-s",
                f"{style}=3",
                "--method",
                method,
                "--strength",
                "0.5",
                "--steps",
                "4",
                "--resolution",
                "32",
                "-o",
                str(out),
                "--quiet",
                *extra,
            ]
        )
        == 0
    )
    written = Image.open(out)
    assert written.size == (32, 32)
    assert written.text["method"] == recorded and written.text["prompt"] == "a photo of a sbu dog"
    assert written.text["strength"] == "0.5"


def test_generate_and_stylize_with_a_controlnet(trained, model_dirs, tmp_path):
    from diffusers import ControlNetModel, UNet2DConditionModel

    _, style = trained
    unet = UNet2DConditionModel.from_pretrained(model_dirs["sd"], subfolder="unet")
    ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16)).save_pretrained(tmp_path / "cn")
    edges = tmp_path / "edges.png"
    Image.fromarray((np.random.default_rng(4).random((32, 32, 3)) * 255).astype(np.uint8)).save(edges)
    control = ["--controlnet", str(tmp_path / "cn"), "--control-image", str(edges), "--quiet"]
    assert (
        main(
            [
                "generate",
                "a photo of a cat",
                "-s",
                str(style),
                "--steps",
                "2",
                "--height",
                "32",
                "--width",
                "32",
                "-o",
                str(tmp_path / "cat.png"),
                *control,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "stylize",
                str(edges),
                "-s",
                str(style),
                "--steps",
                "2",
                "--resolution",
                "32",
                "-o",
                str(tmp_path / "styled.png"),
                *control,
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "cat.png").size == (32, 32) and Image.open(tmp_path / "styled.png").size == (32, 32)
