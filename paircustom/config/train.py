"""Everything that defines a training run (``TrainConfig``): the only place its defaults are written.

Each field's ``setting`` holds its documentation, which is also its ``paircustom train`` option's help.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UserError
from .model_names import DTYPE_NAMES, is_hub_id, pipeline_settings, resolve_model
from .options import device_setting, setting, vae_setting, variant_setting
from .targets import DEFAULT_TARGETS, JOINT_TARGETS
from .train_checks import METHODS, MIXED_PRECISION, check_train_types, check_train_values

# The paper's settings (SDXL); a model folder's paircustom.json "train_defaults" overrides them for that model.
PAPER_DEFAULTS = dict(
    learning_rate=1e-5, max_steps=750, style_start_step=250, rank=64, resolution=512, gradient_accumulation=4
)


# Files keep the names that fields had when the files were first written (paircustom.json's "train_defaults",
# checkpoints, the style file's "training" metadata), so that files written before a rename still read.
FILE_NAMES = {"style_start_step": "style_start"}


def file_name(field: str) -> str:
    return FILE_NAMES.get(field, field)


def model_defaults(settings: dict) -> dict:
    """The training defaults of a model whose paircustom.json holds ``settings``: its own, else the paper's."""
    given = settings.get("train_defaults", {})
    return {name: given.get(file_name(name), value) for name, value in PAPER_DEFAULTS.items()}


def _default(name: str) -> str:
    return f"the model's; paper: {PAPER_DEFAULTS[name]:g}"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. ``None`` means "the model's default, else the paper's"."""

    content_image: str  # photo of the subject
    style_image: str  # the same picture in the target style
    extra_pairs: tuple[tuple[str, str], ...] = ()  # more (content, style) pairs of the same style: one shared
    #   style LoRA, one content LoRA per pair, all pairs in every step
    pair_subjects: tuple[str, ...] = ()  # the subject of each extra pair, in order (none: all share ``subject``)
    subject: str = setting("object", 'the subject word, e.g. "dog"', required=True)
    style: str = setting(
        "custom",
        'the style description, e.g. "digital art"; on the shapes model, words it already '
        'ties to the look did far better (docs/results.md, "What limits it")',
        required=True,
    )
    model: str = setting("shapes", "hub id, diffusers folder, or 'shapes' (the embedded model)")
    output: str = setting("style.safetensors", "the style LoRA file written at the end", short="-o")
    token: str = setting("sbu", "rare token V* bound to the content")
    content_prompt: str | None = setting(None, "the content prompt", default_text='"a photo of a <token> <subject>"')
    style_prompt: str | None = setting(
        None, "the style prompt", default_text='the content prompt + " in <style> style"'
    )
    rank: int | None = setting(None, "rank of both adapters", default_text=_default("rank"))
    content_rank: int | None = setting(None, "content rank, overrides --rank")
    style_rank: int | None = setting(None, "style rank, overrides --rank")
    alpha: float | None = setting(None, "LoRA alpha", default_text="the rank, i.e. scale 1")
    target_modules: tuple[str, ...] | None = setting(
        None,
        "attention projections to adapt, comma-separated",
        flag="--targets",
        default_text="the model family's: " + ",".join(DEFAULT_TARGETS) + " for a UNet, with the joint blocks' "
        "text projections (" + ",".join(JOINT_TARGETS) + ") for SD3 and Flux",
    )
    basis_seed: int = setting(0, "seed of the orthonormal bases (saved in the file)")
    learning_rate: float | None = setting(
        None, "AdamW learning rate", flag="--lr", default_text=_default("learning_rate")
    )
    scale_lr: bool = setting(
        False, "under N processes train with N x --lr (else --lr as given; each step averages N x --accumulation draws)"
    )
    weight_decay: float = setting(1e-4, "AdamW weight decay")
    max_steps: int | None = setting(None, "optimizer steps", flag="--steps", default_text=_default("max_steps"))
    style_start_step: int | None = setting(
        None,
        "first optimizer step with the style loss",
        default_text=(
            f"the model's share of --steps; paper: {PAPER_DEFAULTS['style_start_step']} of "
            f"{PAPER_DEFAULTS['max_steps']}"
        ),
    )
    gradient_accumulation: int | None = setting(
        None,
        "draws of (eps, t) per step (gradient accumulation)",
        flag="--accumulation",
        default_text=_default("gradient_accumulation"),
    )
    resolution: int | None = setting(None, "square training size in pixels", default_text=_default("resolution"))
    seed: int = setting(0, "noise/timestep seed")
    mixed_precision: str = setting("no", "GPU mixed precision", choices=MIXED_PRECISION)
    device: str | None = device_setting()
    dtype: str = setting("fp32", "dtype of the frozen base weights (the adapters train in fp32)", choices=DTYPE_NAMES)
    variant: str | None = variant_setting()
    vae: str | None = vae_setting()
    save_dtype: str | None = setting(
        None, "dtype of the saved style file", choices=DTYPE_NAMES, default_text="fp16 for hub models, else fp32"
    )
    gradient_checkpointing: bool = setting(False, "save memory at the cost of compute")
    use_8bit_adam: bool = setting(False, "bitsandbytes AdamW8bit (GPU only)")
    method: str = setting(
        "pair",
        '"pair" (the paper), "style-only" (DreamBooth-LoRA baseline: one LoRA trained on '
        'the style image alone, from step 0) or "slider" (Concept Sliders visual slider: +Δs on the '
        "style image, -Δs on the content image, both under the content prompt, from step 0)",
        choices=METHODS,
        cli=False,
    )
    orthogonal: bool = setting(True, "False: ordinary trainable random A's (ablation of Sec. 3.2)", cli=False)
    learn_style_word: bool = setting(False, "also train the style words' embedding (docs/style-word.md)")
    style_word_lr: float | None = setting(None, "learning rate of the learned style word", default_text="--lr")
    preview_every: int = setting(0, "write a base-vs-styled preview PNG every N steps (0: never)")
    checkpoint_every: int = setting(
        0,
        "save a resumable checkpoint every N steps and at the end (0: never); kept, "
        "so --resume with more --steps extends a finished run",
    )
    keep_checkpoints: int = setting(
        1,
        "with --checkpoint-every: also keep the newest N checkpoints as "
        "<output>.checkpoint-step00250.safetensors (1: the rolling one only)",
    )
    save_every: int = setting(0, "also write <output>-step00250.safetensors every N steps (0: never)")
    resume: bool = setting(False, "continue from the checkpoint beside the output")
    save_content: bool = setting(False, "also write the content LoRA (<output>-content.safetensors)")
    overwrite: bool = setting(False, "replace an existing output file")
    progress: bool = True  # show a progress bar (the command line's --quiet: none)

    def __post_init__(self):
        """Types first (``train_checks.check_train_types``): a wrong type is refused here, naming the argument."""
        for name, path in check_train_types(self).items():
            object.__setattr__(self, name, path)  # Path objects are kept as text

    def with_targets(self, family_targets: tuple[str, ...]) -> TrainConfig:
        """The config with ``target_modules`` given, else the model family's (``family.lora_targets``)."""
        return self if self.target_modules is not None else replace(self, target_modules=tuple(family_targets))

    def resolved(self, pipe=None) -> TrainConfig:
        """Fill every ``None`` from the model's defaults, then the paper's; validate the result.

        The model's defaults are those of its paircustom.json: of ``model`` (then stored as found: an absolute
        folder or a hub id, so the style file works anywhere), or, when training runs on a ``pipe`` passed in,
        of the folder that pipeline was loaded from (none for one built in code)."""
        config = self
        if pipe is None:
            path, settings = resolve_model(self.model)
            config = replace(self, model=self.model if self.model == "shapes" else path)
        else:
            settings = pipeline_settings(pipe)
        defaults = model_defaults(settings)
        pick = lambda key, value: defaults[key] if value is None else value  # noqa: E731
        rank = pick("rank", self.rank)
        max_steps = pick("max_steps", self.max_steps)
        if self.pair_subjects and (self.content_prompt or self.style_prompt):
            raise UserError(
                "pair subjects make each pair's prompts 'a photo of a <token> <subject>' + the style "
                "suffix; drop --content-prompt/--style-prompt, or the subjects given with --pair."
            )
        content_prompt = self.content_prompt or f"a photo of a {self.token} {self.subject}"
        # A slider is applied to the plain prompt at a LoRA scale, so its file carries no prompt suffix.
        default_style_prompt = content_prompt + ("" if self.method == "slider" else f" in {self.style} style")
        config = replace(
            config,
            content_rank=rank if self.content_rank is None else self.content_rank,
            style_rank=rank if self.style_rank is None else self.style_rank,
            learning_rate=pick("learning_rate", self.learning_rate),
            max_steps=max_steps,
            # None keeps the default's share of the steps (paper: 250 of 750, a third)
            style_start_step=self.style_start_step
            if self.style_start_step is not None
            else round(defaults["style_start_step"] / defaults["max_steps"] * max_steps),
            resolution=pick("resolution", self.resolution),
            gradient_accumulation=pick("gradient_accumulation", self.gradient_accumulation),
            content_prompt=content_prompt,
            style_prompt=self.style_prompt or default_style_prompt,
            save_dtype=self.save_dtype or ("fp16" if is_hub_id(self.model) else "fp32"),
        )
        config.validate()
        return config

    @property
    def content_alpha(self) -> float:
        """The content LoRA's alpha: ``alpha``, or its rank (scale 1)."""
        return self.alpha or self.content_rank

    @property
    def style_alpha(self) -> float:
        return self.alpha or self.style_rank

    def validate(self) -> None:
        """Values after resolution (``train_checks.check_train_values``)."""
        check_train_values(self)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Every (content image, style image) pair, the first one first."""
        return [(self.content_image, self.style_image), *map(tuple, self.extra_pairs)]

    @property
    def pair_prompts(self) -> list[tuple[str, str]]:
        """(content prompt, style prompt) of every pair: the first pair's, then each extra pair's, made from its
        subject in ``pair_subjects`` (without subjects every pair has the first pair's prompts)."""
        extra = [f"a photo of a {self.token} {subject}" for subject in self.pair_subjects]
        contents = [self.content_prompt, *(extra or [self.content_prompt] * len(self.extra_pairs))]
        return [(content, content + self.style_suffix) for content in contents]

    def content_output(self, pair: int) -> Path:
        """The content LoRA file of ``pair`` (``save_content``): <stem>-content.safetensors, or with several
        pairs <stem>-content-1.safetensors, <stem>-content-2.safetensors, ..."""
        output = Path(self.output)
        number = f"-{pair + 1}" if self.extra_pairs else ""
        return output.with_name(f"{output.stem}-content{number}.safetensors")

    @property
    def style_suffix(self) -> str:
        return self.style_prompt[len(self.content_prompt) :]

    def step_output(self, step: int) -> Path:
        """The intermediate style file of ``step``: style.safetensors -> style-step00250.safetensors."""
        output = Path(self.output)
        return output.with_name(f"{output.stem}-step{step:05d}{output.suffix}")

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.output).with_suffix(".checkpoint.safetensors")

    def outputs(self) -> list[Path]:
        """Every file this run may write (previews and temporary files aside)."""
        output = Path(self.output)
        return [output, self.checkpoint_path] + [
            self.content_output(k) for k in range(len(self.pairs))
        ] * self.save_content
