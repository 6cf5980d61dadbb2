"""The styles loaded into a pipeline's denoiser as peft adapters: loading a style file, picking styles and
their guidance scales for a call, and switching the adapters on only inside our calls."""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from ..config.validate import check_path, check_prompts, check_scales, check_text
from ..errors import PairCustomWarning, UserError
from ..files.style_file import check_fits, read_style, require_suffix
from ..files.style_word import add_word, check_word, read_word


class LoadedStyles:
    """The style adapters of ``self.denoiser`` (a base of ``StyleGuidedPipeline``, which sets ``denoiser``,
    ``family``, ``suffixes`` and ``content_prompts``)."""

    def load_style(self, path: str | Path, name: str | None = None, suffix: str | None = None) -> str:
        """Load a style file as peft adapter ``name`` (default: the file's stem); return the name.

        Any layout diffusers' ``load_lora_weights`` reads works (peft, old diffusers, kohya; see ``layouts``).
        ``suffix`` (e.g. " in digital art style") replaces the file's own; it is
        required for files without paircustom metadata.
        """
        path = check_path("path", path)
        check_text("name", name)
        check_text("suffix", suffix)
        style = read_style(path, self.denoiser.config)
        tensors, metadata = style.tensors, style.metadata
        check_fits(path, tensors, metadata, self.family.name, self.denoiser)
        require_suffix(path, metadata, suffix)
        word = read_word(path, style.header, style.word)  # a learned style word (docs/style-word.md), checked first
        if word is not None:
            check_word(path, word, self.pipe)
        name = Path(path).stem if name is None else name
        if not name.strip() or "." in name or hasattr(torch.nn.ModuleDict, name):  # peft keeps adapters in ModuleDicts
            raise UserError(
                f"'{name}' cannot name a style (it is empty, has a '.' or is a torch module attribute); "
                "give another name (name=..., --name on the command line)."
            )
        if name in self.suffixes:
            raise UserError(f"a style named '{name}' is already loaded; give this one another name.")
        if style.ignored:
            warnings.warn(
                f"'{path}' also holds {style.ignored} text-encoder LoRA tensors; paircustom adapts only the "
                "denoiser, so they are ignored.",
                PairCustomWarning,
                stacklevel=2,
            )
        # The denoiser part of diffusers' load_lora_weights, on the file converted to the peft layout.
        with warnings.catch_warnings():  # peft warns that the model already holds adapters: that is the point
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            self.denoiser.load_lora_adapter(tensors, prefix=self.family.lora_prefix, adapter_name=name)
        self.suffixes[name] = suffix if suffix is not None else metadata.style_suffix
        if word is not None:  # its token here (<s0>, or <s1>, ... if taken) stands where the file's token stood
            self.suffixes[name] = self.suffixes[name].replace(word["token"], add_word(self.pipe, word))
        self.content_prompts[name] = metadata.content_prompt if metadata is not None else None
        if metadata is not None and metadata.adapter != "style":
            warnings.warn(
                f"'{path}' holds a {metadata.adapter} LoRA, not a style; the style file is the one "
                "without '-content' in its name.",
                PairCustomWarning,
                stacklevel=2,
            )
        self._set_weights({})
        self.denoiser.disable_lora()  # the wrapped pipeline, called directly, stays the base model
        return name

    def _scales(self, styles, style_scale: float, rows: int | None = None) -> dict[str, float | tuple[float, ...]]:
        """{name: scale} of the styles that act; with ``rows`` (prompts) a scale may be a list, one per prompt."""
        check_scales(styles, per_prompt=rows is not None)
        if styles is None:
            styles = list(self.suffixes)
        if not isinstance(styles, dict):
            styles = dict.fromkeys(styles, style_scale)
        scales = {}
        for name, scale in styles.items():
            if name not in self.suffixes:
                raise UserError(
                    f"no style named '{name}' is loaded (loaded: {', '.join(self.suffixes) or 'none'}); "
                    "call load_style first."
                )
            many = isinstance(scale, (list, tuple))
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (scale if many else [scale])):
                raise UserError(f"the scale of style '{name}' must be a number (got {scale!r}); e.g. 3.")
            if many and len(scale) != rows:
                raise UserError(
                    f"style '{name}' has {len(scale)} scales; give one number"
                    + (f", or one per prompt ({rows})." if rows else " (this call takes one per style).")
                )
            values = [float(value) for value in scale] if many else [float(scale)]
            if not all(map(math.isfinite, values)):
                raise UserError(f"the scale of style '{name}' is {scale}; give a finite number such as 3.")
            if any(values):  # a style at 0 everywhere drops out
                scales[name] = tuple(values) if len(set(values)) > 1 else values[0]
        return scales

    def _check_call(self, prompt, scales: dict[str, float], base_adapter: str | None) -> list[str]:
        """The prompts (text, none empty), each fitting every text encoder with each style's suffix (truncation
        would silently cut the style words off), and ``base_adapter`` a loaded style; returns the prompts."""
        from ..models.plan import TOKENIZERS, ModelPlan

        prompts = check_prompts(prompt)
        if base_adapter is not None and base_adapter not in self.suffixes:
            raise UserError(
                f"base_adapter must name a loaded style (loaded: {', '.join(self.suffixes) or 'none'}; "
                f"got {base_adapter!r}); or leave it None for the base model."
            )
        tokenizers = [t for t in (getattr(self.pipe, name, None) for name in TOKENIZERS) if t is not None]
        plan = ModelPlan(self.family.name, self.denoiser, tokenizers, 1, 1)
        for each in prompts:
            for suffix in {"", *(self.suffixes[name] for name in scales)}:
                plan.check_prompt(each, suffix)
        return prompts

    @contextmanager
    def _adapters_enabled(self):
        """Our loaded styles take part only inside our calls; outside them the pipeline is the base model."""
        if not self.suffixes:
            yield
            return
        self.denoiser.enable_lora()
        try:
            yield
        finally:
            self.denoiser.disable_lora()

    def _set_weights(self, weights: dict[str, float]) -> None:
        """LoRA strength of each loaded style: 1 (as trained) unless given; guidance scales do the weighting."""
        names = list(self.suffixes)
        self.denoiser.set_adapters(names, [weights.get(n, 1.0) for n in names])
