"""The methods the quality benchmark compares (see ``quality``): how each trains a style and applies it."""

from __future__ import annotations

from dataclasses import dataclass

from . import CHEAP_GUIDANCE


@dataclass(frozen=True)
class Method:
    """How a style is trained (TrainConfig overrides) and how it is applied at generation."""

    label: str
    train: tuple[tuple[str, object], ...]   # TrainConfig fields that differ from the defaults
    apply: str                              # "guidance" (style scale) or "lora" (LoRA scale)
    scales: tuple[float, ...] | None = None  # fixed scales instead of the config's sweep
    sample: tuple[tuple[str, object], ...] = ()   # StyleGuidedPipeline options (style_interval, ...) for guidance
    pairs: int = 1                          # training pairs: the benchmark's pair, then ``MORE_SCENES`` in order
    oracle: bool = False                    # no training: the style's oracle (``oracle``), applied by guidance


METHODS = {
    "prompt-only": Method("control: the style words alone (base model, style prompt, LoRA scale 0)", (), "lora",
                          (0.0,)),
    "oracle": Method("oracle: the best style term on this model (its own words, the mapped caption or, marked "
                     "'image', f on the current estimate; see paircustom.bench.oracle), style guidance", (), "guidance",
                     oracle=True),
    "pair-sg": Method("Pair Customization, style guidance", (), "guidance"),
    "pair-sg-word": Method("Pair Customization with the style word's embedding learned too (pivotal tuning, "
                           "issue 28), style guidance", (("learn_style_word", True),), "guidance"),
    "pair-lora": Method("Pair Customization, LoRA scale", (), "lora"),
    "no-orth-sg": Method("no orthogonality (ablation), style guidance", (("orthogonal", False),), "guidance"),
    "db-lora": Method("DreamBooth-LoRA (baseline), LoRA scale", (("method", "style-only"),), "lora"),
    "db-sg": Method("DreamBooth-LoRA (baseline), style guidance", (("method", "style-only"),), "guidance"),
    "pair-sg-3pairs": Method("Pair Customization from 3 pairs of the style (issue 13), style guidance", (),
                             "guidance", pairs=3),
    "slider": Method("Concept Sliders visual slider (baseline) on the same pair, LoRA scale",
                     (("method", "slider"),), "lora"),
    **{f"pair-sg-{key}": Method(f"Pair Customization, style guidance, {label} (issue 14)", (), "guidance",
                                sample=tuple(options.items())) for key, (label, options) in CHEAP_GUIDANCE.items()},
}
