"""Every bad input to train, generate, info, export, ui and demo: exit 2, ONE line 'paircustom: error: ...', no
traceback, and not a file created or changed (checked before any model loads, so no progress bar either)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from paircustom.cli.main import main
from paircustom.tiny.unet import build_tiny_pipeline
from paircustom.training.trainer import PairTrainer, train_pair
from tests.conftest import fast_flags, quick_config, write_pair
from tests.helpers_bad_inputs import (
    edited_checkpoint,
    edited_style,
    fifo,
    integer_weights,
    link_to,
    model_copy,
    noise_image,
    only_index,
    pickled_checkpoint,
    png_bomb,
    read_only_folder,
    reshaped_B,
    set_key,
    snapshot,
    widened_B,
    wider_context,
    with_value,
    without_B,
    written_by,
)
from tests.test_layouts import kohya

FAST = fast_flags(3)
LONG = " ".join(["painting"] * 80)  # past the 77-token limit of the tiny text encoder


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny SD model folder and a style file trained on it (the files no case may change)."""
    root = tmp_path_factory.mktemp("bad-inputs")
    pipe = build_tiny_pipeline("sd")
    pipe.save_pretrained(root / "model")
    from diffusers import ControlNetModel

    ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(8, 16)).save_pretrained(
        root / "controlnet"
    )
    content, style = write_pair(root / "pair")
    train_pair(
        quick_config(
            content, style, root / "art.safetensors", model=str(root / "model"), max_steps=2, style_start_step=1
        )
    )
    return root


@dataclass
class Env:
    tmp: Path
    model: Path
    controlnet: Path  # a tiny ControlNet folder
    sf: Path  # a good style file
    content: Path
    style: Path
    out: Path  # training output
    png: Path  # generation output
    ro: Path | None = None  # a read-only folder (made on demand)


def train(*extra):
    return [
        "train",
        "{content}",
        "{style}",
        "--subject",
        "dog",
        "--style",
        "art",
        "--model",
        "{model}",
        "--output",
        "{out}",
        *FAST,
        *extra,
    ]


def generate(*extra, style="{sf}"):
    return [
        "generate",
        "a cat",
        "-s",
        style,
        "--model",
        "{model}",
        "--steps",
        "2",
        "--height",
        "32",
        "--width",
        "32",
        "-o",
        "{png}",
        *extra,
    ]


def stylize(*extra, style="{sf}"):
    return [
        "stylize",
        "{content}",
        "-s",
        style,
        "--model",
        "{model}",
        "--steps",
        "2",
        "--resolution",
        "32",
        "-o",
        "{png}",
        *extra,
    ]


CONTROL = ("--controlnet", "{controlnet}")


def checkpoint_with(e: Env, **settings):
    """A real checkpoint at step 1 beside e.out, written with ``settings``."""
    config = replace(
        quick_config(
            e.content,
            e.style,
            e.out,
            model=str(e.model),
            max_steps=3,
            style_start_step=1,
            checkpoint_every=1,
            **settings,
        ),
        style="art",
    )
    trainer = PairTrainer(config)
    trainer.train_step()
    trainer.write_checkpoint()
    trainer.close()


def numbers(make, option: str, name: str, out_of_range=(), not_finite=()) -> dict:
    """Cases giving ``option`` values outside its range ('<name> must lie ...') or not finite ('<name> must be a
    finite ...'), named "<command> <option> <value>"."""
    cases = {f"{make.__name__} {option} {v}": (make(f"{option}={v}"), None, f"{name} must lie") for v in out_of_range}
    return {
        **cases,
        **{f"{make.__name__} {option} {v}": (make(option, v), None, f"{name} must be a finite") for v in not_finite},
    }


def bad_style(name, **kwargs):
    return lambda e: edited_style(e.sf, e.tmp / "bad.safetensors", **kwargs)


BAD = "{tmp}/bad.safetensors"
CASES = {
    # ---- train: images
    "train missing content": (train(), lambda e: e.content.unlink(), "does not exist"),
    "train content is text": (train(), lambda e: e.content.write_text("hello"), "not a readable image"),
    "train content is empty": (train(), lambda e: e.content.write_bytes(b""), "not a readable image"),
    "train content is a folder": (["train", "{tmp}", "{style}", *train()[3:]], None, "is a folder"),
    "train style truncated": (train(), lambda e: e.style.write_bytes(e.style.read_bytes()[:200]), "truncated"),
    "train aspect mismatch": (train(), lambda e: Image.new("RGB", (64, 32)).save(e.style), "same aspect ratio"),
    "train decompression bomb": (train(), lambda e: png_bomb(e.content), "decompression bomb"),
    "train extreme aspect": (
        train(),
        lambda e: (noise_image(e.content, 8, 100), noise_image(e.style, 8, 100)),
        "times as long",
    ),
    # ---- train: numbers
    "train rank 0": (train("--rank", "0"), None, "--rank must be at least 1"),
    "train content rank 0": (train("--content-rank", "0"), None, "got content 0, style 4"),
    "train style rank -1": (train("--style-rank", "-1"), None, "--style-rank must lie"),
    "train ranks too large": (train("--rank", "20"), None, "exceeds a layer's input width"),
    **numbers(train, "--alpha", "--alpha", out_of_range=("0", "-1", "1e30"), not_finite=("nan", "inf")),
    "train lr 0": (train("--lr", "0"), None, "--lr must be a positive"),
    **numbers(train, "--lr", "--lr", out_of_range=("-1e-3", "1e30"), not_finite=("nan",)),
    **numbers(train, "--weight-decay", "--weight-decay", out_of_range=("-1",), not_finite=("nan", "inf")),
    **numbers(train, "--seed", "--seed", out_of_range=("-1", str(2**64))),
    **numbers(train, "--basis-seed", "--basis-seed", out_of_range=(str(2**64),)),
    **numbers(train, "--resolution", "--resolution", out_of_range=("100000",)),
    "train resolution 12": (train("--resolution", "12"), None, "multiple of 8"),
    "train resolution 0": (train("--resolution", "0"), None, "multiple of 8"),
    "train steps 0": (train("--steps", "0"), None, "--steps must be at least 1 (got 0)"),
    "train style start past end": (
        train("--style-start-step", "10"),
        None,
        "--style-start-step (10) must be at least 0 and below --steps (3)",
    ),
    "train style start -1": (train("--style-start-step=-1"), None, "--style-start-step must lie between 0"),
    "train accumulation 0": (train("--accumulation", "0"), None, "--accumulation must be at least 1"),
    "train preview every -1": (train("--preview-every=-1"), None, "--preview-every must lie"),
    "train checkpoint every -1": (train("--checkpoint-every=-1"), None, "--checkpoint-every must lie"),
    "train steps not a number": (train("--steps", "many"), None, "invalid int value"),
    "train unknown option": (train("--colour", "red"), None, "unrecognized arguments"),
    # ---- train: model, targets, prompts
    "train unknown targets": (train("--targets", "to_nothing"), None, "target modules ['to_nothing']"),
    "train empty targets": (train("--targets", ","), None, "target modules []"),
    "train missing model": (
        [
            "train",
            "{content}",
            "{style}",
            "--subject",
            "dog",
            "--style",
            "art",
            "--model",
            "{tmp}/no-model",
            "--output",
            "{out}",
            *FAST,
        ],
        None,
        "does not exist",
    ),
    "train model without index": (
        [
            "train",
            "{content}",
            "{style}",
            "--subject",
            "dog",
            "--style",
            "art",
            "--model",
            "{tmp}",
            "--output",
            "{out}",
            *FAST,
        ],
        None,
        "no model_index.json",
    ),
    "train style words past token limit": (
        train("--style-prompt", "a photo of a sbu dog " + LONG),
        None,
        "style words would be cut off",
    ),
    "train style prompt not extending": (train("--style-prompt", "a painting"), None, "must extend the content prompt"),
    "train pair missing image": (train("--pair", "{content}", "{tmp}/none.png"), None, "does not exist"),
    "train pair aspect mismatch": (
        train("--pair", "{content}", "{tmp}/wide.png"),
        lambda e: Image.new("RGB", (64, 32)).save(e.tmp / "wide.png"),
        "same aspect ratio",
    ),
    "train content without style": (
        ["train", "{content}", "--subject", "dog", "--style", "art", "--model", "{model}", "--output", "{out}", *FAST],
        None,
        "give the style image after",
    ),
    "train no images": (
        ["train", "--subject", "dog", "--style", "art", "--model", "{model}", "--output", "{out}", *FAST],
        None,
        "give a content and a style image",
    ),
    "train pair with one image": (train("--pair", "{content}"), None, "got 1 values"),
    "train pair with four values": (train("--pair", "{content}", "{style}", "cat", "dog"), None, "got 4 values"),
    "train pair subjects and a content prompt": (
        train("--pair", "{content}", "{style}", "cat", "--content-prompt", "a cat"),
        None,
        "drop --content-prompt",
    ),
    "train pairs' ranks too large": (
        train(
            "--rank",
            "8",
            "--pair",
            "{content}",
            "{style}",
            "--pair",
            "{content}",
            "{style}",
            "--pair",
            "{content}",
            "{style}",
        ),
        None,
        "4 x content rank 8",
    ),
    "train resume with another extra pair": (
        train("--resume", "--pair", "{content}", "{style}"),
        lambda e: checkpoint_with(e, learning_rate=1e-2),
        "(extra_pairs_sha256 [] ->",
    ),
    "train missing subject": (
        ["train", "{content}", "{style}", "--style", "art", "--model", "{model}"],
        None,
        "--subject",
    ),
    # ---- train: outputs and resuming
    "train output exists": (train(), lambda e: e.out.write_bytes(b"precious"), "already exists"),
    "train output is a folder": (train(), lambda e: e.out.mkdir(), "is a folder"),
    "train output under a file": (
        [
            "train",
            "{content}",
            "{style}",
            "--subject",
            "dog",
            "--style",
            "art",
            "--model",
            "{model}",
            "--output",
            "{content}/x.safetensors",
            *FAST,
        ],
        None,
        "is a file, not a folder",
    ),
    "train output read-only": (
        [
            "train",
            "{content}",
            "{style}",
            "--subject",
            "dog",
            "--style",
            "art",
            "--model",
            "{model}",
            "--output",
            "{ro}/x.safetensors",
            *FAST,
        ],
        "ro",
        "cannot write in",
    ),
    "train output not safetensors": (
        [
            "train",
            "{content}",
            "{style}",
            "--subject",
            "dog",
            "--style",
            "art",
            "--model",
            "{model}",
            "--output",
            "{tmp}/x.pt",
            *FAST,
        ],
        None,
        "must be a .safetensors file",
    ),
    "train refused, output in a new folder": (
        [
            "train",
            "{content}",
            "{style}",
            "--subject",
            "dog",
            "--style",
            "art",
            "--model",
            "{model}",
            "--output",
            "{tmp}/new/deeper/out.safetensors",
            *FAST,
            "--lr",
            "nan",
        ],
        None,
        "--lr must be a finite",
    ),
    "train content output exists": (
        train("--save-content"),
        lambda e: e.out.with_name("out-content.safetensors").write_bytes(b"x"),
        "out-content.safetensors' already exists",
    ),
    "train resume no checkpoint, output exists": (
        train("--resume"),
        lambda e: e.out.write_bytes(b"precious"),
        "found no checkpoint",
    ),
    "train resume from a pickle": (
        train("--resume"),
        lambda e: pickled_checkpoint(e.out.with_suffix(".checkpoint.pt"), e.tmp / "pwned"),
        "never loaded because unpickling",
    ),
    "train resume corrupt checkpoint": (
        train("--resume"),
        lambda e: e.out.with_suffix(".checkpoint.safetensors").write_bytes(b"junk"),
        "cannot resume from",
    ),
    "train resume with another lr": (
        train("--resume"),
        lambda e: checkpoint_with(e, learning_rate=1e-3),
        "(learning_rate 0.001 -> 0.01)",
    ),
    "train resume with another seed": (train("--resume"), lambda e: checkpoint_with(e, seed=7), "(seed 7 -> 0)"),
    "train keep checkpoints 0": (
        train("--keep-checkpoints", "0", "--checkpoint-every", "1"),
        None,
        "--keep-checkpoints must lie",
    ),
    "train keep checkpoints without checkpoints": (train("--keep-checkpoints", "3"), None, "add --checkpoint-every"),
    "train resume with another number of processes": (
        train("--resume"),
        lambda e: (checkpoint_with(e, learning_rate=1e-2), written_by(e.out.with_suffix(".checkpoint.safetensors"), 2)),
        "written by a run of 2 processes and this run has 1",
    ),
    "train resume with another image": (
        train("--resume"),
        lambda e: (checkpoint_with(e, learning_rate=1e-2), noise_image(e.style, 48, 48)),
        "(style_image_sha256 ",
    ),
    # ---- generate
    "generate no style": (["generate", "a cat", "--model", "{model}", "-o", "{png}"], None, "give at least one style"),
    "generate style missing": (generate(style="{tmp}/none.safetensors"), None, "does not exist"),
    "generate style garbage": (
        generate(style=BAD),
        lambda e: (e.tmp / "bad.safetensors").write_bytes(b"\0" * 99),
        "not a readable .safetensors",
    ),
    "generate style is a folder": (generate(style="{tmp}"), None, "is a folder"),
    "generate scale nan": (generate(style="{sf}=nan"), None, "must be a finite number"),
    "generate scale text": (generate(style="{sf}=lots"), None, "is not FILE or FILE=SCALE"),
    "generate style NaN weights": (
        generate(style=BAD),
        bad_style("nan", tensors=with_value("lora_B", float("nan"))),
        "non-finite values",
    ),
    "generate style inf weights": (
        generate(style=BAD),
        bad_style("inf", tensors=with_value("lora_A", float("inf"))),
        "non-finite values",
    ),
    "generate lora_B wrong shape": (
        generate(style=BAD),
        bad_style("shape", tensors=widened_B),
        "does not fit this model",
    ),
    "generate lora_B missing": (generate(style=BAD), bad_style("no B", tensors=without_B), "malformed LoRA layer"),
    "generate integer weights": (generate(style=BAD), bad_style("int", tensors=integer_weights), "floating-point"),
    "generate suffix not text": (
        generate(style=BAD),
        bad_style("suffix", style_suffix=3),
        "style_suffix should be text",
    ),
    "generate base model missing": (
        ["generate", "a cat", "-s", BAD, "-o", "{png}"],
        bad_style("base", base_model="/nonexistent/model"),
        "/nonexistent/model",
    ),
    "generate unknown family": (generate(style=BAD), bad_style("family", family="kandinsky"), "unknown model family"),
    "generate other family": (generate(style=BAD), bad_style("family", family="sdxl"), "trained on an SDXL model"),
    "generate damaged metadata": (
        generate(style=BAD),
        bad_style("json", metadata={"paircustom": "{oops"}),
        "damaged paircustom metadata",
    ),
    "generate no LoRA keys": (
        generate(style=BAD),
        bad_style("keys", tensors=lambda d: {"x": d[next(iter(d))]}),
        "no UNet or transformer LoRA weights",
    ),
    **numbers(generate, "--guidance-scale", "--guidance-scale", out_of_range=("1e30",), not_finite=("nan",)),
    "generate style scale -1e30": (generate("--style-scale=-1e30"), None, "must lie between -100 and 100"),
    **numbers(generate, "--lora-scale", "--lora-scale", out_of_range=("1e30",), not_finite=("nan",)),
    "generate lora scale two styles": (generate("--lora-scale", "1", "-s", "{sf}"), None, "exactly one --style-file"),
    "generate style start 1.5": (generate("--style-start-fraction", "1.5"), None, "--style-start-fraction must lie"),
    "generate style start nan": (
        generate("--style-start-fraction", "nan"),
        None,
        "--style-start-fraction must be a finite",
    ),
    "generate style interval 0": (generate("--style-interval", "0"), None, "--style-interval must lie between 1"),
    "generate style interval -3": (generate("--style-interval=-3"), None, "--style-interval must lie between 1"),
    "generate style interval 1.5": (generate("--style-interval", "1.5"), None, "invalid int value: '1.5'"),
    "generate style end before start": (
        generate("--style-start-fraction", "0.5", "--style-end", "0.3"),
        None,
        "--style-end (0.3) must come after --style-start-fraction (0.5)",
    ),
    "generate style end at start": (
        generate("--style-end", "0.2"),
        None,
        "must come after --style-start-fraction (0.2)",
    ),
    "generate style end 0": (generate("--style-end", "0"), None, "must come after --style-start-fraction"),
    **numbers(generate, "--style-end", "--style-end", out_of_range=("1.5",), not_finite=("nan",)),
    **numbers(generate, "--style-tolerance", "--style-tolerance", out_of_range=("-1",), not_finite=("inf",)),
    "generate style reuse unknown": (generate("--style-reuse", "linear"), None, "invalid choice: 'linear'"),
    "generate steps 0": (generate("--steps", "0"), None, "--steps must lie between 1 and 1000"),
    "generate steps past timesteps": (generate("--steps", "100000"), None, "--steps must lie between 1 and 1000"),
    "generate height -8": (generate("--height=-8"), None, "height must lie"),
    "generate height 33": (generate("--height", "33"), None, "multiples of 2"),
    "generate width 100000": (generate("--width", "100000"), None, "width must lie"),
    "generate num images 0": (generate("--num-images", "0"), None, "--num-images must lie"),
    "generate num images 1000": (generate("--num-images", "1000"), None, "--num-images must lie"),
    **numbers(generate, "--seed", "--seed", out_of_range=("-1", str(2**64))),
    "generate prompt past token limit": (
        ["generate", "a cat " + LONG, "-s", "{sf}", "--model", "{model}", "-o", "{png}"],
        None,
        "style words would be cut off",
    ),
    "generate no prompt": (["generate", "-s", "{sf}", "--model", "{model}", "-o", "{png}"], None, "give a prompt"),
    "generate prompt and prompts file": (generate("--prompts-file", "{content}"), None, "not both"),
    "generate prompts file missing": (
        ["generate", "--prompts-file", "{tmp}/none.txt", "-s", "{sf}", "-o", "{png}"],
        None,
        "does not exist",
    ),
    "generate prompts file empty": (
        ["generate", "--prompts-file", "{tmp}/p.txt", "-s", "{sf}", "-o", "{png}"],
        lambda e: (e.tmp / "p.txt").write_text("# only a comment\n\n"),
        "has no prompts",
    ),
    "generate prompts file binary": (
        ["generate", "--prompts-file", "{content}", "-s", "{sf}", "-o", "{png}"],
        None,
        "as UTF-8 text",
    ),
    "generate prompts file too long a prompt": (
        ["generate", "--prompts-file", "{tmp}/p.txt", "-s", "{sf}", "--model", "{model}", "-o", "{png}"],
        lambda e: (e.tmp / "p.txt").write_text("a cat\na cat " + LONG + "\n"),
        "style words would be cut off",
    ),
    "generate seeds not numbers": (generate("--seeds", "0-x"), None, "ranges such as 0-3"),
    "generate seeds backwards": (generate("--seeds", "5-2"), None, "runs backwards"),
    "generate seeds repeated": (generate("--seeds", "0-3,2"), None, "names a seed twice"),
    "generate seeds too large": (generate("--seeds", str(2**64)), None, "a seed must lie"),
    "generate seeds too many": (generate("--seeds", "0-999999999"), None, "more than 100000"),
    "generate seed and seeds": (generate("--seeds", "0-1", "--seed", "3"), None, "either --seed or --seeds"),
    "generate seeds and num images": (generate("--seeds", "0-1", "--num-images", "2"), None, "give the seeds instead"),
    "generate batch output exists": (
        generate("--seeds", "4"),
        lambda e: (e.tmp / "cat-000-a-cat-s4.png").write_bytes(b"x"),
        "cat-000-a-cat-s4.png",
    ),
    "generate output exists": (generate(), lambda e: e.png.write_bytes(b"precious"), "already exists"),
    "generate output is a folder": (generate(), lambda e: e.png.mkdir(), "is a folder"),
    "generate output under a file": (generate("-o", "{content}/x.png"), None, "is a file, not a folder"),
    "generate output read-only": (generate("-o", "{ro}/x.png"), "ro", "cannot write in"),
    "generate refused, output in a new folder": (
        generate("-o", "{tmp}/new/x.png", "--steps", "0"),
        None,
        "--steps must lie between 1 and 1000",
    ),
    "generate missing model": (generate("--model", "{tmp}/no-model"), None, "does not exist"),
    "generate foreign file, no --suffix": (
        generate(style=BAD),
        bad_style("kohya", tensors=kohya, metadata={}),
        "pass suffix",
    ),
    "generate foreign file for another model": (
        generate("--suffix", " in x style", style=BAD),
        bad_style("sd15", tensors=lambda d: kohya(wider_context(d)), metadata={}),
        "an SD 1.x model, and its first differing layer",
    ),
    "generate LyCORIS file": (
        generate("--suffix", " in x style", style=BAD),
        bad_style("loha", tensors=lambda d: {"lora_unet_x.hada_w1_a": d[next(iter(d))]}, metadata={}),
        "cannot convert",
    ),
    # ---- stylize and ControlNet
    "stylize missing image": (stylize(), lambda e: e.content.unlink(), "does not exist"),
    "stylize image is text": (stylize(), lambda e: e.content.write_text("hello"), "not a readable image"),
    "stylize strength 1.5": (stylize("--strength", "1.5"), None, "strength must lie between 0 and 1"),
    "stylize strength -0.1": (stylize("--strength=-0.1"), None, "strength must lie between 0 and 1"),
    "stylize strength nan": (stylize("--strength", "nan"), None, "strength must be a finite"),
    "stylize unknown method": (stylize("--method", "ddpm"), None, "invalid choice: 'ddpm'"),
    "stylize refine -1": (stylize("--inversion-refine=-1"), None, "--inversion-refine must lie"),
    "stylize npi without inversion": (stylize("--negative-prompt-inversion"), None, "needs the inversion method"),
    "stylize no style": (
        ["stylize", "{content}", "--model", "{model}", "-o", "{png}"],
        None,
        "give at least one style",
    ),
    "stylize steps 0": (stylize("--steps", "0"), None, "--steps must lie between 1 and 1000"),
    "stylize resolution 33": (stylize("--resolution", "33"), None, "multiples of 2"),
    "stylize output exists": (stylize(), lambda e: e.png.write_bytes(b"precious"), "already exists"),
    "stylize foreign file, no prompt": (
        stylize("--suffix", " in x style", style=BAD),
        bad_style("kohya", tensors=kohya, metadata={}),
        "give --prompt",
    ),
    "stylize control image missing": (stylize(*CONTROL, "--control-image", "{tmp}/none.png"), None, "does not exist"),
    "stylize controlnet without image": (stylize(*CONTROL), None, "go together"),
    "generate control image missing": (generate(*CONTROL, "--control-image", "{tmp}/none.png"), None, "does not exist"),
    "generate controlnet without image": (generate(*CONTROL), None, "go together"),
    "generate control image without controlnet": (generate("--control-image", "{content}"), None, "go together"),
    "generate controlnet missing": (
        generate("--controlnet", "{tmp}/no-cn", "--control-image", "{content}"),
        None,
        "the ControlNet folder",
    ),
    "generate controlnet not a folder of one": (
        generate("--controlnet", "{tmp}", "--control-image", "{content}"),
        None,
        "no config.json",
    ),
    "generate controlnet scale nan": (
        generate(*CONTROL, "--control-image", "{content}", "--controlnet-scale", "nan"),
        None,
        "conditioning scale must be a finite",
    ),
    # ---- export
    "export missing": (["export", "{tmp}/none.safetensors", "-o", "{tmp}/k.safetensors"], None, "does not exist"),
    "export output exists": (["export", "{sf}", "-o", "{content}"], None, "already exists"),
    "export output is a folder": (["export", "{sf}", "-o", "{tmp}"], None, "is a folder"),
    "export onto itself": (["export", "{sf}", "-o", "{sf}", "--overwrite"], None, "the style file itself"),
    "export unknown format": (
        ["export", "{sf}", "--format", "lycoris", "-o", "{tmp}/k.safetensors"],
        None,
        "invalid choice",
    ),
    "export no output": (["export", "{sf}"], None, "required"),
    "export garbage": (
        ["export", BAD, "-o", "{tmp}/k.safetensors"],
        lambda e: (e.tmp / "bad.safetensors").write_bytes(os.urandom(300)),
        "not a readable .safetensors",
    ),
    # ---- ui (refused before Gradio starts)
    "ui port 0": (["ui", "--port", "0"], None, "must lie between 1 and 65535"),
    "ui missing model": (["ui", "--model", "{tmp}/no-model"], None, "does not exist"),
    "ui work folder is a file": (["ui", "--workdir", "{content}"], None, "is a file, not a folder"),
    "ui unknown device": (["ui", "--device", "tpu"], None, "is not a device"),
    # ---- info
    "info missing": (["info", "{tmp}/none.safetensors"], None, "does not exist"),
    "info empty file": (["info", BAD], lambda e: (e.tmp / "bad.safetensors").write_bytes(b""), "header too small"),
    "info garbage": (
        ["info", BAD],
        lambda e: (e.tmp / "bad.safetensors").write_bytes(os.urandom(300)),
        "not a readable .safetensors",
    ),
    "info huge header": (
        ["info", BAD],
        lambda e: (e.tmp / "bad.safetensors").write_bytes((2**62).to_bytes(8, "little") + b"{}"),
        "not a readable .safetensors",
    ),
    "info folder": (["info", "{tmp}"], None, "is a folder"),
    "info NaN weights": (
        ["info", BAD],
        bad_style("nan", tensors=with_value("lora_B", float("nan"))),
        "non-finite values",
    ),
    "info rank mismatch": (["info", BAD], bad_style("shape", tensors=reshaped_B), "malformed LoRA layer"),
    "info suffix not text": (["info", BAD], bad_style("suffix", style_suffix=["a"]), "style_suffix should be text"),
    "info alpha not finite": (["info", BAD], bad_style("alpha", alpha=float("inf")), "alpha should be a number"),
    "info damaged metadata": (
        ["info", BAD],
        bad_style("json", metadata={"paircustom": "[1, 2"}),
        "damaged paircustom metadata",
    ),
    # ---- demo
    "demo output dir is a file": (["demo", "--output-dir", "{content}", "--quiet"], None, "is a file, not a folder"),
    "demo output dir under a file": (["demo", "--output-dir", "{content}/demo", "--quiet"], None, "cannot be made"),
    "demo output dir read-only": (["demo", "--output-dir", "{ro}/demo", "--quiet"], "ro", "cannot write in"),
    "demo unknown option": (["demo", "--fast"], None, "unrecognized arguments"),
    # ---- issue 30: empty words, unknown versions, model folders, checkpoints, outputs, files that decide what runs
    "train subject empty": (train("--subject", ""), None, "--subject must name something"),
    "train subject blank": (train("--subject", "   "), None, "--subject must name something"),
    "train style empty": (train("--style", ""), None, "--style must name something"),
    "train style tab": (train("--style", "\t"), None, "--style must name something"),
    "train style escape": (train("--style", "art\x1b[2J"), None, "--style holds control characters"),
    "train token empty": (train("--token", ""), None, "--token must name something"),
    "train content prompt empty": (train("--content-prompt", " "), None, "--content-prompt must name something"),
    "train pair subject blank": (train("--pair", "{content}", "{style}", " "), None, "SUBJECT must name something"),
    "train threads 0": (train("--threads", "0"), None, "--threads must lie between 1"),
    "generate threads -1": (generate("--threads=-1"), None, "--threads must lie between 1"),
    "generate prompt empty": (
        ["generate", "", "-s", "{sf}", "--model", "{model}", "-o", "{png}"],
        None,
        "the prompt must name something",
    ),
    "generate prompt blank": (
        ["generate", "  ", "-s", "{sf}", "--model", "{model}", "-o", "{png}"],
        None,
        "the prompt must name something",
    ),
    "stylize prompt empty": (stylize("--prompt", ""), None, "the prompt must name something"),
    "generate format version 999": (generate(style=BAD), bad_style("v", format_version=999), "format version 999"),
    "info format version 2": (["info", BAD], bad_style("v", format_version=2), "format version 2"),
    "info escape in a key": (
        ["info", BAD],
        bad_style("esc", tensors=lambda d: {**d, "unet.\x1b[2Jevil.lora_A.weight": torch.zeros(2, 4)}),
        "\\x1b[2Jevil",
    ),
    "generate hub model not downloaded": (
        ["generate", "a cat", "-s", BAD, "-o", "{png}"],
        bad_style("hub", base_model="someone/their-model"),
        "not downloaded here",
    ),
    "generate recorded folder missing": (
        ["generate", "a cat", "-s", BAD, "-o", "{png}"],
        bad_style("dir", base_model="/nonexistent/model"),
        "give the model with --model",
    ),
    "train model settings not JSON": (
        train("--model", "{tmp}/m"),
        lambda e: model_copy(e.model, e.tmp / "m", settings="{oops"),
        "not readable JSON",
    ),
    "train model settings a list": (
        train("--model", "{tmp}/m"),
        lambda e: model_copy(e.model, e.tmp / "m", settings=[]),
        "hold list",
    ),
    "train model settings max_steps 0": (
        train("--model", "{tmp}/m"),
        lambda e: model_copy(e.model, e.tmp / "m", settings={"train_defaults": {"max_steps": 0}}),
        "train_defaults.max_steps to 0",
    ),
    "generate model settings not JSON": (
        generate("--model", "{tmp}/m"),
        lambda e: model_copy(e.model, e.tmp / "m", settings="nope"),
        "not readable JSON",
    ),
    "train model with only an index": (
        train("--model", "{tmp}/m"),
        lambda e: only_index(e.model, e.tmp / "m"),
        "nothing is downloaded",
    ),
    "generate model with only an index": (
        generate("--model", "{tmp}/m"),
        lambda e: only_index(e.model, e.tmp / "m"),
        "nothing is downloaded",
    ),
    "generate pickled text encoder": (
        generate("--model", "{tmp}/m"),
        lambda e: model_copy(e.model, e.tmp / "m", pickled="text_encoder"),
        "pickled weights",
    ),
    "train pickled vae": (
        train("--model", "{tmp}/m"),
        lambda e: model_copy(e.model, e.tmp / "m", pickled="vae"),
        "pickled weights",
    ),
    "train resume negative step": (
        train("--resume"),
        lambda e: (
            checkpoint_with(e, learning_rate=1e-2),
            edited_checkpoint(e.out.with_suffix(".checkpoint.safetensors"), header=set_key("step", -1)),
        ),
        "cannot resume from",
    ),
    "train resume history of text": (
        train("--resume"),
        lambda e: (
            checkpoint_with(e, learning_rate=1e-2),
            edited_checkpoint(e.out.with_suffix(".checkpoint.safetensors"), header=set_key("history", "x")),
        ),
        "cannot resume from",
    ),
    "train resume step disagrees": (
        train("--resume"),
        lambda e: (
            checkpoint_with(e, learning_rate=1e-2),
            edited_checkpoint(e.out.with_suffix(".checkpoint.safetensors"), header=set_key("step", 2)),
        ),
        "cannot resume from",
    ),
    "train earlier checkpoint, no resume": (
        train(),
        lambda e: checkpoint_with(e, learning_rate=1e-2),
        "checkpoint of an earlier run",
    ),
    "train earlier checkpoint, overwrite": (
        train("--overwrite"),
        lambda e: (checkpoint_with(e, learning_rate=1e-2), e.out.write_bytes(b"x")),
        "checkpoint of an earlier run",
    ),
    "train output is its content image": (
        ["train", "{tmp}/c.safetensors", "{style}", *train()[3:], "--output", "{tmp}/c.safetensors", "--overwrite"],
        lambda e: e.tmp.joinpath("c.safetensors").write_bytes(e.content.read_bytes()),
        "is the content image",
    ),
    "generate output is its style file": (
        generate("-o", "{tmp}/s.safetensors", "--overwrite", style="{tmp}/s.safetensors"),
        lambda e: e.tmp.joinpath("s.safetensors").write_bytes(e.sf.read_bytes()),
        "is the style file",
    ),
    "stylize output is its image": (stylize("-o", "{content}", "--overwrite"), None, "is the image"),
    "train output a FIFO": (train("--overwrite"), lambda e: fifo(e.out), "FIFO"),
    "generate output a FIFO": (generate("--overwrite"), lambda e: fifo(e.png), "FIFO"),
    "stylize output /dev/null": (stylize("--overwrite"), lambda e: link_to(e.png, "/dev/null"), "character device"),
    "export output a FIFO": (
        ["export", "{sf}", "-o", "{tmp}/k.safetensors", "--overwrite"],
        lambda e: fifo(e.tmp / "k.safetensors"),
        "FIFO",
    ),
    "train content a FIFO": (train(), lambda e: fifo(e.content), "is a FIFO"),
    "train style /dev/zero": (train(), lambda e: link_to(e.style, "/dev/zero"), "is a character device"),
    "info a FIFO": (["info", "{tmp}/f.safetensors"], lambda e: fifo(e.tmp / "f.safetensors"), "FIFO"),
}


def test_there_are_enough_cases():
    commands = [argv[0] for argv, _, _ in CASES.values()]
    names = ("train", "generate", "stylize", "info", "demo", "export", "ui")
    assert len(CASES) >= 60 and {c: commands.count(c) >= 3 for c in names} == dict.fromkeys(names, True), (
        f"{len(CASES)} cases: {set(commands)}"
    )


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_sentence_and_touches_nothing(name, saved, tmp_path, capsys, monkeypatch):
    argv, setup, match = CASES[name]
    content, style = write_pair(tmp_path)
    env = Env(
        tmp_path,
        saved / "model",
        saved / "controlnet",
        saved / "art.safetensors",
        content,
        style,
        tmp_path / "out.safetensors",
        tmp_path / "cat.png",
    )
    if setup == "ro":
        env.ro = read_only_folder(tmp_path)
    elif setup is not None:
        setup(env)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    before = snapshot(tmp_path, saved)
    with pytest.raises(SystemExit) as exit_info:
        main([part.format(**vars(env)) for part in argv])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2, f"exit {exit_info.value.code}; stderr: {err}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("paircustom: error: "), f"stderr is not one error line:\n{err}"
    assert "Traceback" not in err + out
    assert match in lines[0], f"refused for another reason than expected ({match!r}): {lines[0]}"
    after = snapshot(tmp_path, saved)
    assert after.keys() == before.keys(), (
        f"files created {after.keys() - before.keys()} or removed {before.keys() - after.keys()}"
    )
    assert [p for p in after if after[p] != before[p]] == [], "files changed"
