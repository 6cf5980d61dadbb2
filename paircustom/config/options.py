"""Config fields that are also command-line options: the field's metadata holds the option's help text.

    rank: int | None = setting(None, "rank of both adapters", default_text="the model's; paper 64")

``add_options(parser, Config, names)`` adds ``--rank`` for such a field (``flag`` gives another name, ``short``
a one-letter one such as ``-o``); its type comes from
the annotation, its default from the field, so the config stays the only place that states it.
``from_args(Config, args)`` builds the config back from what was parsed.
"""

from __future__ import annotations

import types
import typing
from dataclasses import Field, field, fields


def setting(
    default,
    help: str,
    *,
    flag: str | None = None,
    short: str | None = None,
    choices=None,
    metavar: str | None = None,
    default_text: str | None = None,
    required: bool = False,
    cli: bool = True,
):
    """A dataclass field with its documentation; with ``cli`` also a command-line option.

    ``default_text`` says what the default means where the value alone does not (None: "the model's").
    """
    return field(
        default=default,
        metadata=dict(
            help=help,
            flag=flag,
            short=short,
            choices=choices,
            metavar=metavar,
            default_text=default_text,
            required=required,
            cli=cli,
        ),
    )


def device_setting():
    return setting(None, "cpu, cuda, cuda:1 or mps", default_text="cuda when there is one")


def variant_setting():
    return setting(None, 'weight files to load, e.g. "fp16" (the hub models\' half-size files)')


def vae_setting():
    return setting(None, "replacement VAE, folder or hub id, e.g. madebyollin/sdxl-vae-fp16-fix (SDXL in fp16)")


def options(config_class, names=None) -> list[Field]:
    """The fields of ``config_class`` that are command-line options (those in ``names``, if given)."""
    return [f for f in fields(config_class) if f.metadata.get("cli") and (names is None or f.name in names)]


def comma_list(text: str) -> tuple[str, ...]:
    """ "to_q, to_k" -> ("to_q", "to_k")"""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def flag_of(option: Field) -> str:
    return option.metadata["flag"] or "--" + option.name.replace("_", "-")


def _value_type(annotation):
    """int for ``int | None``; bool, str, float as they are; ``comma_list`` for a tuple of strings."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(kind for kind in typing.get_args(annotation) if kind is not type(None))
    return comma_list if typing.get_origin(annotation) is tuple else annotation


def _help(option: Field) -> str:
    meta, default = option.metadata, option.default
    if isinstance(default, bool) or (default is None and meta["default_text"] is None):
        shown = None
    elif meta["default_text"] is not None:
        shown = meta["default_text"]
    elif isinstance(default, tuple):
        shown = ",".join(default)
    else:
        shown = default
    text = meta["help"] + ("" if shown is None or meta["required"] else f" (default: {shown})")
    return text.replace("%", "%%")  # argparse formats help texts with %


def add_options(parser, config_class, names=None) -> None:
    """One option per field of ``config_class`` (in ``names``, if given) that is marked as one."""
    from .validate import register_flag  # deferred: options stays on the lowest import floor

    hints = typing.get_type_hints(config_class)
    for option in options(config_class, names):
        meta, kind = option.metadata, _value_type(hints[option.name])
        flags = [flag_of(option)] + ([meta["short"]] if meta["short"] else [])
        register_flag(option.name, flags[0])  # refusals name the option (validate.arg)
        if kind is bool:  # a switch: it turns the default around
            parser.add_argument(
                *flags, dest=option.name, action="store_false" if option.default else "store_true", help=_help(option)
            )
            continue
        typed = dict(type=kind, choices=meta["choices"], metavar=meta["metavar"])
        parser.add_argument(
            *flags, dest=option.name, default=option.default, required=meta["required"], help=_help(option), **typed
        )


def from_args(config_class, args, **given):
    """``config_class`` from the parsed options it has; ``given`` fills the rest (what has no option) and
    overrides parsed values."""
    parsed = {f.name: getattr(args, f.name) for f in options(config_class) if hasattr(args, f.name)}
    return config_class(**{**parsed, **given})
