"""Everything that defines a training run (``TrainConfig``), with the paper's defaults."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .adapters import DEFAULT_TARGETS
from .checks import check_training_numbers
from .errors import UserError
from .families import DTYPES, is_hub_id

# The paper's settings (SDXL); a model folder's paircustom.json "train_defaults" overrides them for that model.
PAPER_DEFAULTS = dict(learning_rate=1e-5, max_steps=750, style_start=250, rank=64, resolution=512,
                      gradient_accumulation=4)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. ``None`` means "the model's default, else the paper's"."""

    content_image: str                       # photo of the subject
    style_image: str                         # the same picture in the target style
    extra_pairs: tuple[tuple[str, str], ...] = ()   # more (content, style) pairs of the same style: one shared
                                             #   style LoRA, one content LoRA per pair, all pairs in every step
    subject: str = "object"                  # the subject word: "dog"
    style: str = "custom"                    # the style description: "digital art"
    model: str = "shapes"                    # hub id, diffusers folder, or "shapes" (embedded model)
    output: str = "style.safetensors"        # the style LoRA file written at the end
    token: str = "sbu"                       # rare token V* bound to the content
    content_prompt: str | None = None        # default "a photo of a {token} {subject}"
    style_prompt: str | None = None          # default content_prompt + " in {style} style"
    rank: int | None = None                  # content and style rank (paper 64) ...
    content_rank: int | None = None          # ... or each separately
    style_rank: int | None = None
    alpha: float | None = None               # LoRA alpha; None = rank (scale 1)
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    basis_seed: int = 0                      # seed of the orthonormal bases (saved in the file)
    learning_rate: float | None = None       # paper 1e-5
    scale_lr: bool = False                   # under N processes train with N x learning_rate (default: as given)
    weight_decay: float = 1e-4
    max_steps: int | None = None             # optimizer steps (paper 750)
    style_start: int | None = None           # first step with the style loss (paper 250 of 750; None keeps
                                             #   the default's share of max_steps, e.g. 1/3)
    gradient_accumulation: int | None = None  # draws of (eps, t) per step (paper 4)
    resolution: int | None = None            # square training size in pixels (paper 512)
    seed: int = 0                            # noise/timestep seed
    mixed_precision: str = "no"              # "no", "fp16" or "bf16" (GPU only)
    device: str | None = None                # "cuda", "cuda:1", "cpu", "mps"; None: cuda when there is one
    dtype: str = "fp32"                      # frozen base weights: fp32, fp16 or bf16 (adapters train in fp32)
    variant: str | None = None               # weight files to load, e.g. "fp16"
    vae: str | None = None                   # replacement VAE (folder or hub id), e.g. madebyollin/sdxl-vae-fp16-fix
    save_dtype: str | None = None            # style file tensors: fp32, fp16, bf16; None: fp16 for hub models, else fp32
    gradient_checkpointing: bool = False     # trade compute for memory
    use_8bit_adam: bool = False              # bitsandbytes AdamW8bit (GPU only)
    method: str = "pair"                     # "pair" (the paper), "style-only" (DreamBooth-LoRA baseline: one
                                             #   LoRA trained on the style image alone, from step 0) or "slider"
                                             #   (Concept Sliders visual slider: +Δs on the style image, -Δs on
                                             #   the content image, both under the content prompt, from step 0)
    orthogonal: bool = True                  # False: ordinary trainable random A's (ablation of Sec. 3.2)
    preview_every: int = 0                   # write a base-vs-styled preview every N steps (0: never)
    checkpoint_every: int = 0                # save a resumable checkpoint every N steps and at the end (0: never);
                                             #   kept, so --resume with more --steps extends a finished run
    keep_checkpoints: int = 1                # 1: one rolling checkpoint; N > 1: also the newest N numbered ones
    save_every: int = 0                      # also write <output stem>-step00250.safetensors every N steps (0: never)
    resume: bool = False                     # continue from the checkpoint beside the output
    save_content: bool = False               # also write the content LoRA (<output>-content.safetensors)
    overwrite: bool = False                  # replace an existing output file
    progress: bool = True                    # show a progress bar

    def resolved(self, model_defaults: dict) -> "TrainConfig":
        """Fill every ``None`` from the model's defaults, then the paper's; validate the result."""
        pick = lambda key, value: value if value is not None else model_defaults.get(key, PAPER_DEFAULTS[key])  # noqa: E731
        rank = pick("rank", self.rank)
        config = replace(
            self, content_rank=rank if self.content_rank is None else self.content_rank,
            style_rank=rank if self.style_rank is None else self.style_rank,
            learning_rate=pick("learning_rate", self.learning_rate), max_steps=pick("max_steps", self.max_steps),
            style_start=self.style_start if self.style_start is not None else
            round(pick("style_start", None) / pick("max_steps", None) * pick("max_steps", self.max_steps)),
            resolution=pick("resolution", self.resolution),
            gradient_accumulation=pick("gradient_accumulation", self.gradient_accumulation),
            content_prompt=self.content_prompt or f"a photo of a {self.token} {self.subject}",
        )
        # A slider is applied to the plain prompt at a LoRA scale, so its file carries no prompt suffix.
        default_style_prompt = config.content_prompt + ("" if self.method == "slider" else f" in {self.style} style")
        config = replace(config, style_prompt=config.style_prompt or default_style_prompt,
                         save_dtype=self.save_dtype or ("fp16" if is_hub_id(self.model) else "fp32"))
        config.validate()
        return config

    def validate(self) -> None:
        check_training_numbers(self)                 # types, finiteness and ranges first
        checks = [
            (self.content_rank >= 1 and self.style_rank >= 1, f"ranks must be at least 1 (got content "
             f"{self.content_rank}, style {self.style_rank}); use e.g. --rank 64"),
            (self.alpha is None or self.alpha > 0, f"alpha must be positive (got {self.alpha}); omit it to use the rank"),
            (self.learning_rate > 0, f"the learning rate must be a positive number (got {self.learning_rate})"),
            (self.max_steps >= 1, f"max_steps must be at least 1 (got {self.max_steps})"),
            (0 <= self.style_start < self.max_steps, f"style_start ({self.style_start}) must be at least 0 and below "
             f"max_steps ({self.max_steps}), or the style is never trained"),
            (min(self.preview_every, self.checkpoint_every, self.save_every) >= 0, "preview, checkpoint and save "
             "intervals must be 0 (never) or a number of steps"),
            (self.keep_checkpoints == 1 or self.checkpoint_every > 0, f"keeping {self.keep_checkpoints} checkpoints "
             "needs checkpoints: add --checkpoint-every N"),
            (self.gradient_accumulation >= 1, f"gradient_accumulation must be at least 1 (got {self.gradient_accumulation})"),
            (self.resolution >= 8 and self.resolution % 8 == 0, f"the resolution must be a multiple of 8 (got {self.resolution})"),
            (self.method in ("pair", "style-only", "slider"),
             f"method must be pair, style-only or slider (got {self.method!r})"),
            (self.mixed_precision in ("no", "fp16", "bf16"), f"mixed_precision must be no, fp16 or bf16 (got {self.mixed_precision!r})"),
            (self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)} (got {self.dtype!r})"),
            (self.save_dtype in DTYPES, f"save_dtype must be one of {', '.join(DTYPES)} (got {self.save_dtype!r})"),
            (self.style_prompt.startswith(self.content_prompt), "the style prompt must extend the content prompt "
             f"(got {self.style_prompt!r} for {self.content_prompt!r}) so its suffix can be reused at generation"),
            (str(self.output).endswith(".safetensors"), f"the output must be a .safetensors file (got {self.output})"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message + ".")

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Every (content image, style image) pair, the first one first."""
        return [(self.content_image, self.style_image), *map(tuple, self.extra_pairs)]

    def content_output(self, pair: int) -> Path:
        """The content LoRA file of ``pair`` (``save_content``): <stem>-content.safetensors, or with several
        pairs <stem>-content-1.safetensors, <stem>-content-2.safetensors, ..."""
        output = Path(self.output)
        number = f"-{pair + 1}" if self.extra_pairs else ""
        return output.with_name(f"{output.stem}-content{number}.safetensors")

    @property
    def style_suffix(self) -> str:
        return self.style_prompt[len(self.content_prompt):]

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
        return [output, self.checkpoint_path] + [self.content_output(k) for k in range(len(self.pairs))] * self.save_content
