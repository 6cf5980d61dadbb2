"""One validation layer for the Python API and the command line: types and words, named as the user wrote them.

Every refusal is a ``UserError`` whose sentence starts with the argument: its parameter name in the API
(``max_steps must be at least 1 (got 0)``) and its option on the command line (``--steps must be at least 1
(got 0)``).  ``cli_names()`` switches to option names; the command line runs every command inside it.
Nothing here imports torch or diffusers.
"""

from __future__ import annotations

import contextvars
import os
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError

_CLI = contextvars.ContextVar("paircustom_cli_names", default=False)
# Arguments that are not fields of TrainConfig / GenerateConfig, or are positional on the command line.
CLI_ONLY_NAMES = {
    "content_image": "CONTENT_IMAGE",
    "style_image": "STYLE_IMAGE",
    "styles": "--style-file",
    "style_scales": "--style-file FILE=SCALE",
    "lora_scale": "--lora-scale",
    "seed": "--seed",
    "prompt": "the prompt",
    "image": "IMAGE",
    "path": "--style-file",
    "name": "--name",
    "suffix": "--suffix",
    "extra_pairs": "--pair",
    "pair_subjects": "--pair ... SUBJECT",
    "threads": "--threads",
}
_flags: dict[str, str] = {}


@contextmanager
def cli_names():
    """Within it, refusals name command-line options (``--steps``) instead of parameters (``max_steps``)."""
    token = _CLI.set(True)
    try:
        yield
    finally:
        _CLI.reset(token)


def register_flag(name: str, flag: str) -> None:
    """The command line's option for the parameter ``name`` (``options.add_options`` registers every one)."""
    _flags[name] = flag


def arg(name: str) -> str:
    """How the user gave the argument ``name``: its option on the command line, else the parameter name."""
    if not _CLI.get():
        return name
    return CLI_ONLY_NAMES.get(name) or _flags.get(name) or "--" + name.replace("_", "-")


def show(value, width: int = 60) -> str:
    """A value as it appears in a refusal: repr on one line (an array's rows joined), shortened."""
    text = " ".join(repr(value).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def check_words(name: str, value, *, optional: bool = False) -> None:
    """Text with at least one visible character (a subject, a style, a token, a prompt)."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise UserError(f"{arg(name)} must be text (got {show(value)}).")
    if not value.strip():
        raise UserError(f"{arg(name)} must name something (got {show(value)}); give a word such as 'dog'.")
    if any(ord(c) < 32 and c not in "\t" or ord(c) == 127 for c in value):
        raise UserError(f"{arg(name)} holds control characters (got {show(value)}); give plain text.")


def check_text(name: str, value, *, optional: bool = True) -> None:
    """Text, possibly empty (a prompt suffix, a negative prompt); None when ``optional``."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise UserError(f"{arg(name)} must be text (got {show(value)}).")


EXAMPLES = {
    "model": ("a model name or folder", "'shapes'"),
    "output": ("a file path", "'style.safetensors'"),
    "path": ("a file path", "'art.safetensors'"),
}


def check_path(name: str, value, *, optional: bool = False) -> str | None:
    """A file or folder name: text or a path object (not empty); returned as text."""
    what, example = EXAMPLES.get(name, ("a file path", "'dog.png'"))
    if value is None and optional:
        return None
    if isinstance(value, Path) or (isinstance(value, os.PathLike) and isinstance(os.fspath(value), str)):
        value = os.fspath(value)
    if not isinstance(value, str):
        kind = type(value).__name__
        raise UserError(f"{arg(name)} must be {what} (got {kind} {show(value, 40)}); e.g. {example}.")
    if not value.strip() or "\0" in value:
        raise UserError(f"{arg(name)} must be {what} (got {show(value)}); e.g. {example}.")
    return value


def check_texts(name: str, value) -> None:
    """None, text, or a list of texts (one per prompt), as diffusers takes negative prompts."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if value is not None and not all(isinstance(item, str) for item in items):
        raise UserError(f"{arg(name)} must be text or a list of texts (got {show(value)}).")


def check_flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise UserError(f"{arg(name)} must be True or False (got {show(value)}).")


def check_choice(name: str, value, choices) -> None:
    if not isinstance(value, str) or value not in choices:
        raise UserError(f"{arg(name)} must be one of {', '.join(map(str, choices))} (got {show(value)}).")


def check_prompts(prompt, name: str = "prompt") -> list[str]:
    """One prompt or a non-empty list of them, each text with something in it."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise UserError(f"{arg(name)} must be text or a non-empty list of texts (got {show(prompt)}).")
    for each in prompts:
        check_words(name, each)
    return list(prompts)


def check_scales(styles, per_prompt: bool = False) -> None:
    """``styles`` of a pipeline call: None, a list of names, or {name: scale} with numbers as scales (with
    ``per_prompt``, a scale may also be a list of numbers, one per prompt: ``pipe.sweep``'s rows)."""
    if styles is None:
        return
    if isinstance(styles, str) or not isinstance(styles, (dict, list, tuple)):
        raise UserError(
            f"{arg('styles')} must be a list of style names or a {{name: scale}} mapping "
            f"(got {show(styles)}); e.g. styles={{'art': 3}}."
        )
    for name in styles:
        if not isinstance(name, str):
            raise UserError(f"{arg('styles')} names styles by text (got {show(name)}).")
    if isinstance(styles, dict):
        for name, scale in styles.items():
            values = scale if per_prompt and isinstance(scale, (list, tuple)) else [scale]
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
                raise UserError(f"the scale of style '{name}' must be a number (got {show(scale)}); e.g. 3.")


def check_image_arg(name: str, image):
    """A PIL image or a path; anything else (a numpy array, a tensor, None) refused in one sentence."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (str, Path, os.PathLike)):
        return check_path(name, image)
    hint = " (convert it with PIL.Image.fromarray)" if type(image).__module__.startswith(("numpy", "torch")) else ""
    raise UserError(
        f"{arg(name)} must be a PIL image or the path of a PNG or JPEG file (got {type(image).__name__}){hint}."
    )


def special_file(path: str | Path) -> str | None:
    """What a path that exists but is no regular file is ("a FIFO", "a device", ...), else None."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return None


def check_input_file(path: Path, role: str, wanted: str) -> None:
    """An input that must be a regular file: a folder, a FIFO, a device or a missing path refused by what it is."""
    if path.is_dir():
        raise UserError(f"the {role} '{path}' is a folder; give the path of {wanted}.")
    kind = special_file(path)
    if kind:
        raise UserError(f"the {role} '{path}' is {kind}, not a regular file; give the path of {wanted}.")
    if not path.is_file():
        raise UserError(f"the {role} '{path}' does not exist; give the path of {wanted}.")
