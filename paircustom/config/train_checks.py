"""Every check of a ``TrainConfig``, in one place: the type of each field when the config is made
(``check_train_types``, from ``__post_init__``), and its values once the defaults are filled in
(``check_train_values``, from ``resolved``).  Refusals name the argument as the user gave it (``validate.arg``).
"""

from __future__ import annotations

import typing
from dataclasses import fields

from ..errors import UserError
from .checks import MAX_BASIS_SEED, MAX_SEED, MAX_SIDE, MAX_STEPS, check_number
from .model_names import DTYPE_NAMES
from .validate import arg, check_flag, check_path, check_words, show

MIXED_PRECISION = ("no", "fp16", "bf16")
METHODS = ("pair", "style-only", "slider")


def _field_kind(annotation):
    """(base type, optional) of a field annotation such as ``int | None``."""
    if typing.get_origin(annotation) is tuple:
        return tuple, False
    args = typing.get_args(annotation)
    optional = type(None) in args
    kinds = [a for a in args if a is not type(None)] or [annotation]
    return (tuple if typing.get_origin(kinds[0]) is tuple else kinds[0]), optional


PATH_FIELDS = ("content_image", "style_image", "output", "model")
WORD_FIELDS = ("subject", "style", "token")


def check_train_types(config) -> dict:
    """Every field of a TrainConfig has its declared type (before any default is filled in); returns the path
    fields as text, for the config to keep (``Path`` objects are welcome)."""
    hints = typing.get_type_hints(type(config))
    paths = {name: check_path(name, getattr(config, name)) for name in PATH_FIELDS}
    for name in WORD_FIELDS:
        check_words(name, getattr(config, name))
    for field in fields(config):
        name, value = field.name, getattr(config, field.name)
        kind, optional = _field_kind(hints[name])
        if name in PATH_FIELDS + WORD_FIELDS or (value is None and optional):
            continue
        if kind is bool:
            check_flag(name, value)
        elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise UserError(f"{arg(name)} must be a whole number (got {show(value)}).")
        elif kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UserError(f"{arg(name)} must be a number (got {show(value)}).")
        elif kind is str:
            check_words(name, value)
    _check_word_lists(config)
    return paths


def _check_word_lists(config) -> None:
    for name in ("content_prompt", "style_prompt"):
        check_words(name, getattr(config, name), optional=True)
    if config.target_modules is not None:
        if isinstance(config.target_modules, str) or not isinstance(config.target_modules, (tuple, list)):
            raise UserError(
                f"{arg('target_modules')} must be a list of layer names such as ('to_q', 'to_k') "
                f"(got {show(config.target_modules)})."
            )
        for target in config.target_modules:
            check_words("target_modules", target)
    if not isinstance(config.extra_pairs, (tuple, list)):
        raise UserError(
            f"{arg('extra_pairs')} must be a list of (content, style) image pairs (got {show(config.extra_pairs)})."
        )
    for pair in config.extra_pairs:
        if isinstance(pair, (str, bytes)) or not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise UserError(
                f"each of {arg('extra_pairs')} must be a (content, style) pair of image paths (got {show(pair)})."
            )
        for image in pair:
            check_path("extra_pairs", image)
    if isinstance(config.pair_subjects, str) or not isinstance(config.pair_subjects, (tuple, list)):
        raise UserError(f"{arg('pair_subjects')} must be a list of subject words (got {show(config.pair_subjects)}).")
    for subject in config.pair_subjects:
        check_words("pair_subjects", subject)


def check_train_values(config) -> None:
    """A resolved TrainConfig (every default filled in): its numbers, then the rules between its fields."""
    _check_numbers(config)  # types, finiteness and ranges first
    rank = "content_rank" if config.content_rank < 1 else "style_rank"
    rank = "rank" if config.content_rank == config.style_rank else rank
    checks = [
        (
            config.content_rank >= 1 and config.style_rank >= 1,
            f"{arg(rank)} must be at least 1 (ranks got content {config.content_rank}, style {config.style_rank}); "
            f"use e.g. {arg('rank')} 64",
        ),
        (config.alpha is None or config.alpha > 0, f"{arg('alpha')} must be positive (got {config.alpha})"),
        (config.learning_rate > 0, f"{arg('learning_rate')} must be a positive number (got {config.learning_rate})"),
        (config.max_steps >= 1, f"{arg('max_steps')} must be at least 1 (got {config.max_steps})"),
        (
            0 <= config.style_start_step < config.max_steps,
            f"{arg('style_start_step')} ({config.style_start_step}) must be at least 0 and below "
            f"{arg('max_steps')} ({config.max_steps}), or the style is never trained",
        ),
        (
            config.keep_checkpoints == 1 or config.checkpoint_every > 0,
            f"keeping {config.keep_checkpoints} checkpoints needs checkpoints: add {arg('checkpoint_every')} N",
        ),
        (
            config.gradient_accumulation >= 1,
            f"{arg('gradient_accumulation')} must be at least 1 (got {config.gradient_accumulation})",
        ),
        (
            config.resolution >= 8 and config.resolution % 8 == 0,
            f"{arg('resolution')} must be a multiple of 8 (got {config.resolution})",
        ),
        (config.method in METHODS, f"{arg('method')} must be pair, style-only or slider (got {config.method!r})"),
        (
            config.mixed_precision in MIXED_PRECISION,
            f"{arg('mixed_precision')} must be no, fp16 or bf16 (got {config.mixed_precision!r})",
        ),
        (config.dtype in DTYPE_NAMES, f"{arg('dtype')} must be one of {', '.join(DTYPE_NAMES)} (got {config.dtype!r})"),
        (
            config.save_dtype in DTYPE_NAMES,
            f"{arg('save_dtype')} must be one of {', '.join(DTYPE_NAMES)} (got {config.save_dtype!r})",
        ),
        (
            config.style_prompt.startswith(config.content_prompt),
            f"{arg('style_prompt')} must extend the content prompt "
            f"(got {config.style_prompt!r} for {config.content_prompt!r}) so its suffix can be reused at generation",
        ),
        (
            str(config.output).endswith(".safetensors"),
            f"{arg('output')} must be a .safetensors file (got {config.output})",
        ),
        (
            len(config.pair_subjects) in (0, len(config.extra_pairs)),
            f"give one subject per extra pair ({len(config.extra_pairs)}) or none (got {len(config.pair_subjects)})",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message + ".")


def _check_numbers(config) -> None:
    """Types, finiteness and ranges of the numbers of a resolved TrainConfig."""
    check_number(arg("alpha"), config.alpha, 1e-6, 1e4, hint="; omit it to use the rank")
    check_number(arg("learning_rate"), config.learning_rate, 0, 1, hint="; the paper uses 1e-5")
    if config.style_word_lr is not None:
        check_number(
            "the style word learning rate (--style-word-lr)", config.style_word_lr, 0, 1, hint="; omit it to use --lr"
        )
    check_number(arg("weight_decay"), config.weight_decay, 0, 1, hint="; omit it for the default")
    for name, high in (
        ("content_rank", 100_000),
        ("style_rank", 100_000),
        ("max_steps", MAX_STEPS),
        ("style_start_step", MAX_STEPS),
        ("gradient_accumulation", 1024),
        ("resolution", MAX_SIDE),  # multiple of 8: beside it
        ("seed", MAX_SEED),
        ("basis_seed", MAX_BASIS_SEED),
        ("preview_every", 2**63 - 1),  # past max_steps: never
        ("checkpoint_every", 2**63 - 1),
        ("save_every", 2**63 - 1),
    ):
        check_number(arg(name), getattr(config, name), 0, high, integer=True)
    keep_hint = "; 1 keeps the rolling checkpoint only"
    check_number(arg("keep_checkpoints"), config.keep_checkpoints, 1, 10_000, integer=True, hint=keep_hint)
