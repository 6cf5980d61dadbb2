"""Every bad input to the Python API (TrainConfig and train_pair, StyleGuidedPipeline's load_style, call, stylize,
lora_scale and from_pretrained), to the files a run reads (model folders, checkpoints, style files) and to the
outputs it writes: a ``UserError`` of one sentence that names what is wrong, raised before anything is written.

Together with the command-line table of ``test_bad_inputs`` this is the table of issue 30, by kind (KINDS)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from paircustom import StyleGuidedPipeline, TrainConfig, UserError, train_pair
from paircustom.tiny.unet import build_tiny_pipeline
from tests.conftest import RESOLUTION, write_pair
from tests.helpers_bad_inputs import (
    edited_checkpoint,
    edited_style,
    fifo,
    link_to,
    model_copy,
    only_index,
    set_key,
    set_tensor,
    snapshot,
)

LONG = " ".join(["painting"] * 80)  # past the 77-token limit of the tiny text encoder
DEFAULT = object()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny SD folder, a pair, a style file, a finished run's checkpoint and a pipeline with the style loaded."""
    root = tmp_path_factory.mktemp("bad-api")
    build_tiny_pipeline("sd").save_pretrained(root / "model")
    content, style = write_pair(root / "pair")
    train_pair(settings(root, root / "art.safetensors"))
    train_pair(settings(root, root / "ck.safetensors", checkpoint_every=1))
    guided = StyleGuidedPipeline.from_pretrained(str(root / "model"))
    guided.load_style(root / "art.safetensors", name="art")
    return root, guided


def settings(root: Path, output: Path, **overrides) -> TrainConfig:
    values = dict(
        content_image=str(root / "pair/content.png"),
        style_image=str(root / "pair/style.png"),
        subject="dog",
        style="art",
        output=str(output),
        model=str(root / "model"),
        rank=4,
        learning_rate=1e-2,
        max_steps=2,
        style_start_step=1,
        gradient_accumulation=1,
        resolution=RESOLUTION,
        progress=False,
    )
    return TrainConfig(**{**values, **overrides})


@dataclass
class Env:
    root: Path
    tmp: Path
    guided: StyleGuidedPipeline

    def config(self, **overrides) -> TrainConfig:
        return settings(self.root, overrides.pop("output", self.tmp / "out.safetensors"), **overrides)

    def train(self, **overrides):
        return train_pair(self.config(**overrides))

    def resume(self, header=None, tensors=None):
        """Resume from a copy of the finished run's checkpoint, edited."""
        checkpoint = self.tmp / "out.checkpoint.safetensors"
        shutil.copyfile(self.root / "ck.checkpoint.safetensors", checkpoint)
        edited_checkpoint(checkpoint, header, tensors)
        return self.train(resume=True, checkpoint_every=1)

    def call(self, *args, **kwargs):
        kwargs = {"num_inference_steps": 1, "height": 32, "width": 32, "seed": 0, "output_type": "latent", **kwargs}
        return self.guided(*args or ("a cat",), **kwargs)

    def stylize(self, image=DEFAULT, **kwargs):
        image = self.root / "pair/content.png" if image is DEFAULT else image
        return self.guided.stylize(image, **{"num_inference_steps": 2, "resolution": 32, **kwargs})

    def model(self, **edits) -> str:
        return str(model_copy(self.root / "model", self.tmp / "m", **edits))

    def style_file(self, **fields) -> Path:
        return edited_style(self.root / "art.safetensors", self.tmp / "edited.safetensors", **fields)


CASES: dict[str, tuple[str, object, str]] = {}  # name -> (kind, call(env), words the refusal must hold)


def case(kind: str, name: str, call, match: str) -> None:
    assert name not in CASES, name
    CASES[name] = (kind, call, match)


# ---- 1. the API validates types and values as the command line does -------------------------------------------
WRONG_TYPES = {
    "content_image": [None, 3, b"dog.png", ["a.png"], "", "  "],
    "style_image": [None, 2.5, {"a": 1}],
    "output": [None, 5, ""],
    "model": [None, 7, ["shapes"]],
    "token": [None, "", 3],
    "max_steps": ["4", 4.0, True, [4]],
    "style_start_step": [1.5, "1", True],
    "rank": ["4", 4.5],
    "content_rank": ["2", 2.0],
    "style_rank": [[2], False],
    "alpha": ["1", [1]],
    "learning_rate": ["1e-3", True, [1e-3]],
    "weight_decay": [None, "0"],
    "gradient_accumulation": [1.0, "1"],
    "resolution": [32.0, "32"],
    "seed": [None, 1.5, "0"],
    "basis_seed": [None, "0"],
    "preview_every": ["1", 1.5],
    "checkpoint_every": ["2", 2.0],
    "keep_checkpoints": [0.5, "2"],
    "save_every": [1.5, None],
    "resume": [1, "true", None],
    "overwrite": ["yes", 0],
    "save_content": ["no"],
    "orthogonal": [1],
    "progress": ["no"],
    "scale_lr": [None],
    "gradient_checkpointing": ["on"],
    "target_modules": ["to_q", [3], ("",)],
    "extra_pairs": [("a.png", "b.png"), [("a.png",)], [(None, "b.png")], 5],
    "pair_subjects": ["dog", [3]],
    "content_prompt": ["", 3],
    "style_prompt": ["   ", ["x"]],
}
for field, values in WRONG_TYPES.items():
    for value in values:
        case("API types", f"TrainConfig {field}={value!r}", lambda e, f=field, v=value: e.train(**{f: v}), field)

BAD_VALUES = {
    "max_steps": [0, -4, 10**7],
    "style_start_step": [-1, 2, 5],
    "rank": [0, -2, 20],
    "content_rank": [0],
    "alpha": [0, -1.0, float("nan"), 1e30],
    "learning_rate": [0, -1e-3, float("inf"), 2.0],
    "weight_decay": [-1.0, float("nan")],
    "gradient_accumulation": [0, 2000],
    "resolution": [12, 0, 10**6],
    "seed": [-1, 2**64],
    "basis_seed": [2**40],
    "preview_every": [-1],
    "checkpoint_every": [-2],
    "keep_checkpoints": [0],
    "save_every": [-1],
    "mixed_precision": ["fp8", "", 3],
    "dtype": ["int8", None],
    "save_dtype": ["fp64"],
    "method": ["lora", None],
    "device": ["tpu", 3],
}
for field, values in BAD_VALUES.items():
    for value in values:
        words = "ranks" if field == "rank" and value == 20 else "device" if field == "device" else field
        words = "exceeds a layer's input width" if value == 20 else words
        case("API values", f"TrainConfig {field}={value!r}", lambda e, f=field, v=value: e.train(**{f: v}), words)

# ---- 2. empty words ------------------------------------------------------------------------------------------
for field in ("subject", "style"):
    for value in ("", " ", "\t\n", None, 3, "dog\x1b[2J"):
        case("empty words", f"TrainConfig {field}={value!r}", lambda e, f=field, v=value: e.train(**{f: v}), field)
case(
    "empty words",
    "pair subject ''",
    lambda e: e.train(extra_pairs=(("a.png", "b.png"),), pair_subjects=("",)),
    "pair_subjects",
)

# ---- 3. pipelines ---------------------------------------------------------------------------------------------
for value in (None, 3, [], [""], ["a cat", None], "", "   ", ("a", 3), {"a cat"}):
    case("API pipeline", f"pipe(prompt={value!r})", lambda e, v=value: e.call(v), "prompt")
for styles, words in (
    ("art", "styles must be"),
    ({"art": "3"}, "scale of style 'art' must be a number"),
    ({"art": None}, "scale of style 'art'"),
    ({"art": True}, "scale of style 'art'"),
    ({3: 1.0}, "names styles by text"),
    (3, "styles must be"),
    ({"nope": 1.0}, "no style named"),
    ({"art": float("nan")}, "scale of style 'art'"),
    ([None], "names styles by text"),
):
    case("API pipeline", f"pipe(styles={styles!r})", lambda e, s=styles: e.call(styles=s), words)
CALL_VALUES = {
    "base_adapter": ["nope", 3],
    "guidance_scale": ["5", float("nan"), 1e30],  # None means the family's default
    "num_inference_steps": [0, 1.5, "2"],
    "height": [33, "32", 1.5, -8],
    "width": [0, [32]],
    "seed": [-1, "1", 1.5],
    "num_images_per_prompt": [0, "1", 100],
    "style_start_fraction": [1.5, "0.2"],
    "style_end": [0.0, "1", 2.0],
    "style_interval": [0, 1.5],
    "style_reuse": ["linear", 3],
    "guidance_rescale": [2.0, "0"],
    "style_tolerance": [-1.0, "0.1"],
    "negative_prompt": [3, [3]],
    "denoising_end": ["1"],
    "style_scale": ["3"],
}
for field, values in CALL_VALUES.items():
    for value in values:
        words = {"style_scale": "scale of style", "num_inference_steps": "num_inference_steps"}.get(field, field)
        case("API pipeline", f"pipe({field}={value!r})", lambda e, f=field, v=value: e.call(**{f: v}), words)
case("API pipeline", "pipe(prompt past the token limit)", lambda e: e.call("a cat " + LONG), "would be cut off")
case("API pipeline", "pipe(prompt_2 on SD)", lambda e: e.call(prompt_2="x"), "prompt_2")
for path, words in (
    (None, "path must be a file path"),
    (3, "path must be a file path"),
    (b"x", "path must be"),
    ("", "path must be"),
    ("/nonexistent.safetensors", "does not exist"),
):
    case("API pipeline", f"load_style({path!r})", lambda e, p=path: e.guided.load_style(p), words)
case("API pipeline", "load_style(a folder)", lambda e: e.guided.load_style(e.tmp), "is a folder")
case("API pipeline", "load_style(a FIFO)", lambda e: e.guided.load_style(fifo(e.tmp / "f.safetensors")), "FIFO")
case(
    "API pipeline",
    "load_style(/dev/zero)",
    lambda e: e.guided.load_style(link_to(e.tmp / "z.safetensors", "/dev/zero")),
    "character device",
)
for kwargs, words in (
    (dict(name=3), "name must be text"),
    (dict(name=""), "cannot name a style"),
    (dict(name="a.b"), "cannot name a style"),
    (dict(name="art"), "already loaded"),
    (dict(suffix=3), "suffix must be text"),
    (dict(name="to"), "cannot name a style"),
):
    case(
        "API pipeline",
        f"load_style({kwargs})",
        lambda e, k=kwargs: e.guided.load_style(e.root / "art.safetensors", **k),
        words,
    )
for style, scale, words in (
    ("nope", 1.0, "no style named"),
    (3, 1.0, "style must be text"),
    ("art", "1", "LoRA scale"),
    ("art", float("nan"), "LoRA scale"),
):
    case(
        "API pipeline",
        f"lora_scale({style!r}, {scale!r})",
        lambda e, s=style, c=scale: e.guided.lora_scale("a cat", s, c, num_inference_steps=1, height=32, width=32),
        words,
    )
for model, words in (
    (None, "model must be a model name or folder"),
    (3, "model must be a model name"),
    ("/nonexistent/model", "does not exist"),
):
    case(
        "API pipeline", f"from_pretrained({model!r})", lambda e, m=model: StyleGuidedPipeline.from_pretrained(m), words
    )
case(
    "API pipeline",
    "from_pretrained(device='tpu')",
    lambda e: StyleGuidedPipeline.from_pretrained(str(e.root / "model"), device="tpu"),
    "is not a device",
)
case(
    "API pipeline",
    "from_pretrained(device=3)",
    lambda e: StyleGuidedPipeline.from_pretrained(str(e.root / "model"), device=3),
    "device must be text",
)

# ---- 4. stylize: images judged alike, whatever their form ------------------------------------------------------
IMAGES = {
    "a numpy array": (lambda e: np.zeros((32, 32, 3), np.uint8), "PIL.Image.fromarray"),
    "a tensor": (lambda e: torch.zeros(3, 32, 32), "PIL.Image.fromarray"),
    "None": (lambda e: None, "must be a PIL image or the path"),
    "a number": (lambda e: 3, "must be a PIL image or the path"),
    "bytes": (lambda e: b"\x89PNG", "must be a PIL image or the path"),
    "a missing file": (lambda e: e.tmp / "none.png", "does not exist"),
    "a 2000x2 PIL image": (lambda e: Image.new("RGB", (2000, 2)), "times as long as it is wide"),
    "a 2x2000 PIL image": (lambda e: Image.new("RGB", (2, 2000)), "times as long as it is wide"),
    "a FIFO": (lambda e: fifo(e.tmp / "in.png"), "FIFO"),
    "a folder": (lambda e: e.tmp, "is a folder"),
    "text as an image file": (lambda e: (e.tmp / "t.png").write_text("hi") and e.tmp / "t.png", "not a readable"),
}
for name, (image, words) in IMAGES.items():
    case("images", f"stylize({name})", lambda e, i=image: e.stylize(i(e)), words)
for kwargs, words in (
    (dict(strength="0.5"), "strength"),
    (dict(strength=1.5), "strength"),
    (dict(strength=float("nan")), "strength"),
    (dict(method="ddpm"), "method"),
    (dict(method=3), "method"),
    (dict(prompt=3), "prompt"),
    (dict(prompt=""), "prompt"),
    (dict(inversion_refine=1.5), "inversion_refine"),
    (dict(resolution=33), "multiples of"),
    (dict(resolution="32"), "resolution must be a whole number"),
    (dict(styles={"art": "2"}), "scale of style 'art'"),
):
    case("images", f"stylize({kwargs})", lambda e, k=kwargs: e.stylize(**k), words)

# ---- 5. style files: unknown versions and hand-made metadata -----------------------------------------------------
for fields, words in (
    (dict(format_version=999), "format version 999"),
    (dict(format_version=0), "format version 0"),
    (dict(format_version="1"), "format_version should be"),
    (dict(style_suffix=None), "style_suffix"),
    (dict(family=3), "family should be text"),
    (dict(base_model=["x"]), "base_model should be"),
):
    case(
        "style files",
        f"load_style(metadata {fields})",
        lambda e, f=fields: e.guided.load_style(e.style_file(**f), name="edited"),
        words,
    )

# ---- 6. model folders ------------------------------------------------------------------------------------------
FOLDERS = {
    "paircustom.json not JSON": (dict(settings="{oops"), "is not readable JSON"),
    "paircustom.json a list": (dict(settings=[1, 2]), "hold list where a JSON object"),
    "paircustom.json a number": (dict(settings=3), "hold int where a JSON object"),
    "paircustom.json not UTF-8": (dict(settings=b"\xff\xfe{}"), "is not readable JSON"),
    "train_defaults a list": (dict(settings={"train_defaults": [1]}), "train_defaults as [1]"),
    "max_steps 0": (dict(settings={"train_defaults": {"max_steps": 0}}), "train_defaults.max_steps to 0"),
    "max_steps text": (dict(settings={"train_defaults": {"max_steps": "300"}}), "train_defaults.max_steps to '300'"),
    "max_steps 1.5": (dict(settings={"train_defaults": {"max_steps": 1.5}}), "train_defaults.max_steps"),
    "rank -1": (dict(settings={"train_defaults": {"rank": -1}}), "train_defaults.rank"),
    "learning_rate true": (dict(settings={"train_defaults": {"learning_rate": True}}), "learning_rate to True"),
    "resolution huge": (dict(settings={"train_defaults": {"resolution": 10**6}}), "train_defaults.resolution"),
    "style_start past max_steps": (
        dict(settings={"train_defaults": {"style_start": 9, "max_steps": 9}}),
        "at or past max_steps",
    ),
    "unknown default": (dict(settings={"train_defaults": {"epochs": 3}}), "unknown training default 'epochs'"),
    "family not text": (dict(settings={"family": 3}), "give family as 3"),
    "no unet folder": (dict(drop=("unet",)), "lacks unet/"),
    "no vae and no tokenizer": (dict(drop=("vae", "tokenizer")), "lacks tokenizer/, vae/"),
    "pickled text encoder": (dict(pickled="text_encoder"), "pickled weights"),
    "pickled unet": (dict(pickled="unet"), "pickled weights"),
}
for name, (edits, words) in FOLDERS.items():
    case("model folders", f"train on a folder: {name}", lambda e, d=edits: e.train(model=e.model(**d)), words)
    case(
        "model folders",
        f"from_pretrained a folder: {name}",
        lambda e, d=edits: StyleGuidedPipeline.from_pretrained(e.model(**d)),
        words,
    )
case(
    "model folders",
    "only model_index.json",
    lambda e: e.train(model=str(only_index(e.root / "model", e.tmp / "m"))),
    "nothing is downloaded",
)
case(
    "model folders",
    "from_pretrained only model_index.json",
    lambda e: StyleGuidedPipeline.from_pretrained(str(only_index(e.root / "model", e.tmp / "m"))),
    "nothing is downloaded",
)

# ---- 7. checkpoints --------------------------------------------------------------------------------------------
HEADERS = {
    "negative step": set_key("step", -1),
    "fractional step": set_key("step", 1.5),
    "step as text": set_key("step", "2"),
    "step true": set_key("step", True),
    "step past the history": set_key("step", 9),
    "history as text": set_key("history", "x"),
    "history rows of 2": lambda s: {**s, "history": [r[:2] for r in s["history"]]},
    "history out of order": lambda s: {**s, "history": s["history"][::-1]},
    "history with text losses": lambda s: {**s, "history": [[r[0], "low", None] for r in s["history"]]},
    "history with NaN": lambda s: {**s, "history": [[r[0], float("nan"), r[2]] for r in s["history"]]},
    "history of nothing but None": lambda s: {**s, "history": [[r[0], None, None] for r in s["history"]]},
    "optimizer scalar text": set_key("optimizer_scalars", {"0.step": "x"}),
    "optimizer scalar key": set_key("optimizer_scalars", {"x": 1}),
    "optimizer scalars a list": set_key("optimizer_scalars", [1]),
    "num_processes 0": set_key("num_processes", 0),
    "num_processes text": set_key("num_processes", "1"),
    "version 2": set_key("version", 2),
    "settings text": set_key("settings", "x"),
    "unknown entry": set_key("evil", 1),
    "max_steps text": lambda s: {**s, "settings": {**s["settings"], "max_steps": "2"}},
    "style start past max_steps": lambda s: {**s, "settings": {**s["settings"], "style_start": 5}},
    "not a mapping": lambda s: [s],
}
for name, header in HEADERS.items():
    case("checkpoints", f"checkpoint: {name}", lambda e, h=header: e.resume(header=h), "cannot resume from")
TENSORS = {
    "NaN parameter": set_tensor("param.", lambda t: torch.full_like(t, float("nan"))),
    "integer parameter": set_tensor("param.", lambda t: t.to(torch.int32)),
    "parameter of another shape": set_tensor("param.", lambda t: torch.zeros(t.shape[0] + 1, t.shape[1])),
    "exp_avg of another shape": set_tensor("optimizer.0.exp_avg", lambda t: torch.zeros(3)),
    "negative exp_avg_sq": set_tensor("optimizer.0.exp_avg_sq", lambda t: -torch.ones_like(t)),
    "AdamW step disagrees": set_tensor("optimizer.0.step", lambda t: torch.tensor(7.0)),
    "AdamW step a vector": set_tensor("optimizer.0.step", lambda t: torch.zeros(2)),
    "AdamW step integer": set_tensor("optimizer.0.step", lambda t: torch.tensor(2)),
    "generator too short": set_tensor("generator", lambda t: t[:100]),
    "generator float": set_tensor("generator", lambda t: t.float()),
    "no generator": lambda d: {k: v for k, v in d.items() if k != "generator"},
    "no parameters": lambda d: {k: v for k, v in d.items() if not k.startswith("param.")},
    "a parameter missing": lambda d: {k: v for k, v in d.items() if k != "param.0"},
    "an unknown tensor": lambda d: {**d, "evil": torch.zeros(1)},
    "optimizer state of no parameter": lambda d: {**d, "optimizer.999.exp_avg": torch.zeros(1)},
}
for name, tensors in TENSORS.items():
    case("checkpoints", f"checkpoint: {name}", lambda e, t=tensors: e.resume(tensors=t), "cannot resume from")

# ---- 8. outputs ------------------------------------------------------------------------------------------------
case(
    "outputs",
    "train onto its content image",
    lambda e: train_pair(
        TrainConfig(
            str(shutil.copyfile(e.root / "pair/content.png", e.tmp / "c.safetensors")),
            str(e.root / "pair/style.png"),
            output=str(e.tmp / "c.safetensors"),
            overwrite=True,
            model=str(e.root / "model"),
            rank=4,
            max_steps=2,
            style_start_step=1,
            resolution=RESOLUTION,
            progress=False,
        )
    ),
    "is the content image",
)
case(
    "outputs", "train onto a FIFO", lambda e: e.train(output=str(fifo(e.tmp / "o.safetensors")), overwrite=True), "FIFO"
)
case(
    "outputs",
    "train onto /dev/null",
    lambda e: e.train(output=str(link_to(e.tmp / "o.safetensors", "/dev/null")), overwrite=True),
    "character device",
)
case(
    "outputs",
    "earlier checkpoint, no resume",
    lambda e: (
        shutil.copyfile(e.root / "ck.checkpoint.safetensors", e.tmp / "out.checkpoint.safetensors"),
        e.train(overwrite=True),
    ),
    "checkpoint of an earlier run",
)

KINDS = (
    "API types",
    "API values",
    "empty words",
    "API pipeline",
    "images",
    "style files",
    "model folders",
    "checkpoints",
    "outputs",
)


def test_the_table_covers_every_kind():
    from tests.test_bad_inputs import CASES as CLI_CASES

    counts = {kind: sum(k == kind for k, _, _ in CASES.values()) for kind in KINDS}
    assert all(count >= 4 for count in counts.values()), counts
    assert len(CASES) + len(CLI_CASES) >= 250, f"{len(CASES)} API + {len(CLI_CASES)} command-line cases"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_api_input_is_one_user_error(name, world, tmp_path):
    kind, call, match = CASES[name]
    root, guided = world
    env = Env(root, tmp_path, guided)
    before_root = snapshot(root)
    with pytest.raises(UserError) as refusal:
        call(env)
    message = str(refusal.value)
    assert "\n" not in message and message.endswith("."), f"not one sentence: {message!r}"
    assert match in message, f"refused for another reason than expected ({match!r}): {message}"
    assert snapshot(root) == before_root, "a shared file changed"
    assert not list(tmp_path.glob(".*")), f"left behind: {list(tmp_path.glob('.*'))}"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"strength": np.zeros((2, 2))}, "strength must be a finite number"),
        ({"method": np.zeros((2, 2))}, "must be sdedit or inversion"),
        ({"resolution": np.zeros((2, 2))}, "resolution must be a whole number"),
    ],
)
def test_an_array_where_a_setting_goes_is_refused_in_one_line(kwargs, words):
    """An array's repr spans lines; the refusal that shows it must not (found by test_fuzz_api)."""
    guided = StyleGuidedPipeline(build_tiny_pipeline("sd"))
    with pytest.raises(UserError) as refused:
        guided.stylize(Image.new("RGB", (16, 16)), prompt="a dog", num_inference_steps=2, **kwargs)
    message = str(refused.value)
    assert words in message and "\n" not in message, message
