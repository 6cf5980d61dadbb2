"""Command line: a thin layer over ``train_pair`` and ``StyleGuidedPipeline``.

    paircustom train CONTENT STYLE_IMAGE --subject dog --style "digital art"
    paircustom train --pair c1.png s1.png --pair c2.png s2.png --subject dog --style "digital art"
    paircustom generate "a photo of a cat" --style-file dog-digital-art.safetensors --compare
    paircustom stylize photo.png -s dog-digital-art.safetensors=3 -o photo-art.png
    paircustom sweep "a photo of a cat" -s dog-digital-art.safetensors=0:6:4 --lora-scales 0:1.5:4
    paircustom info dog-digital-art.safetensors
    paircustom export dog-digital-art.safetensors --format kohya -o dog-digital-art-kohya.safetensors
    paircustom demo
    paircustom ui

Mistakes in the input print one sentence and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

from .. import distributed
from ..config.checks import check_folder_writable
from ..config.options import add_options, from_args
from ..config.train import TrainConfig
from ..config.validate import cli_names
from ..errors import PairCustomWarning, UserError, printable
from ..models.loading_bars import loading_bars
from . import interrupt
from .examples import EXAMPLES
from .generate import generate_parser, run_generate
from .stylize import run_stylize, stylize_parser
from .sweep import run_sweep, sweep_parser
from .threads import add_threads_option, threads_for

# Optional-dependency notices (e.g. "requires torchvision") are noise on a command line.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="learn a style from a content/style image pair",
        description=run_train.__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("content_image", nargs="?", help="photo of the subject (PNG/JPEG); or give pairs with --pair")
    p.add_argument("style_image", nargs="?", help="the same picture in the target style, same aspect ratio")
    p.add_argument(
        "--pair",
        nargs="+",
        action="append",
        default=[],
        metavar="CONTENT STYLE [SUBJECT]",
        help="a (content, style) pair, optionally with its own subject (default --subject); repeat for "
        "several pairs of one style: one shared style LoRA, one content LoRA per pair, all pairs in "
        "every step (after the positional pair, if given)",
    )
    add_options(p, TrainConfig)
    add_threads_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


class _Parser(argparse.ArgumentParser):
    """argparse's own refusals (unknown option, not a number) as our one line, without the usage block."""

    def error(self, message):
        print(f"paircustom: error: {' '.join(message.split())}; see '{self.prog} --help'.", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="paircustom",
        description="Pair Customization: learn a style from one "
        "content/style image pair and apply it with style guidance.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    generate_parser(sub)
    stylize_parser(sub)
    sweep_parser(sub)
    info = sub.add_parser("info", help="print a style file's metadata")
    info.add_argument("file", help="a .safetensors style file")
    export = sub.add_parser(
        "export",
        help="write a style file in another tool's LoRA layout",
        description="Write a style file as a kohya LoRA (lora_unet_* keys with lora_down, lora_up "
        "and alpha, ss_* metadata) for ComfyUI and Automatic1111. Those tools apply "
        "the style LoRA at a scale (the LoRA-scale baseline); style guidance itself "
        "needs paircustom's pipeline.",
    )
    export.add_argument("file", help="a style file (any layout 'generate' reads)")
    export.add_argument("--format", choices=("kohya",), default="kohya", help="layout to write (default: %(default)s)")
    export.add_argument("--output", "-o", required=True, help="the .safetensors file to write")
    export.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    ui = sub.add_parser(
        "ui",
        help="the web app: train and apply styles in a browser (needs the ui extra)",
        description="Serve a Gradio page: upload a content/style pair or pick an example, train a "
        "style with live progress, load style files and generate with style guidance.",
    )
    ui.add_argument("--model", default="shapes", help="hub id, diffusers folder, or 'shapes' (embedded; default)")
    ui.add_argument("--host", default="127.0.0.1", help="address to serve on (default: %(default)s, this machine only)")
    ui.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    ui.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: cuda when there is one)")
    ui.add_argument("--workdir", help="folder for trained styles and previews (default: a new temporary folder)")
    demo = sub.add_parser("demo", help="train a style on the embedded model and write a comparison grid")
    demo.add_argument(
        "--output-dir", default="paircustom-demo", help="folder for the style file and grid (default: %(default)s)"
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def train_config_of(args) -> TrainConfig:
    """The ``TrainConfig`` of parsed ``paircustom train`` options."""
    if (args.content_image is None) != (args.style_image is None):
        raise UserError("give the style image after the content image, or give pairs with --pair CONTENT STYLE.")
    for given in args.pair:
        if len(given) not in (2, 3):
            raise UserError(
                f"--pair takes a content image, a style image and optionally a subject (got "
                f"{len(given)} values: {' '.join(given)})."
            )
    pairs = ([(args.content_image, args.style_image)] if args.content_image else []) + [tuple(p) for p in args.pair]
    if not pairs:
        raise UserError(
            "give a content and a style image, e.g. paircustom train dog.png dog_art.png, or pairs with "
            "--pair CONTENT STYLE."
        )
    subjects = [pair[2] if len(pair) == 3 else args.subject for pair in pairs]
    return from_args(
        TrainConfig,
        args,
        content_image=pairs[0][0],
        style_image=pairs[0][1],
        subject=subjects[0],
        extra_pairs=tuple(pair[:2] for pair in pairs[1:]),
        pair_subjects=tuple(subjects[1:]) if any(len(pair) == 3 for pair in pairs) else (),
        progress=not args.quiet,
    )


def run_train(args) -> None:
    """Train a content LoRA and an orthogonal style LoRA on one image pair and write the style LoRA as a
    .safetensors file (paper Sec. 3). Options left out take the model's own defaults (the embedded 'shapes' model
    has small, fast ones), else the paper's."""
    from ..training.trainer import train_pair

    def note_step(trainer):
        interrupt.note_training_step(trainer.step, trainer.config.max_steps, trainer.config.checkpoint_every)

    config = train_config_of(args)
    with threads_for(args.threads, config.model):
        path = train_pair(config, on_step=note_step)
    if distributed.is_main():
        print(f"wrote {path}")


def run_info(args) -> None:
    from ..files.style_file import read_style

    style = read_style(args.file)
    metadata = style.metadata
    layers = sum(key.endswith("lora_A.weight") for key in style.tensors)
    denoiser = "transformer" if any(key.startswith("transformer.") for key in style.tensors) else "UNet"
    print(
        f"{args.file}: {layers} {denoiser} LoRA layers, {style.layout} layout"
        + (f", {style.ignored} text-encoder tensors (ignored)" if style.ignored else "")
    )
    if metadata is None:
        print("no paircustom metadata (made by another tool); pass --suffix when generating")
    else:
        print(printable(json.dumps(asdict(metadata), indent=2)))
    if style.word:  # a learned style word (docs/style-word.md)
        from ..files.style_word import read_word

        word = read_word(args.file, style.header, style.word)
        shapes = ", ".join(f"{name} {len(v)} x {v.shape[1]}" for name, v in word["vectors"].items())
        print(printable(f"learned style word {word['token']} ({shapes})"))


def run_export(args) -> None:
    from ..files.images import atomic_write, check_writable
    from ..files.layouts import to_kohya
    from ..files.safe_outputs import OutputLock, saver
    from ..files.style_file import read_style
    from ..files.style_word import WORD_HEADER

    output = check_writable(args.output, args.overwrite)  # before any work
    if Path(args.file).resolve() == output.resolve():
        raise UserError(f"the output '{output}' is the style file itself; write the export to another file.")
    style = read_style(args.file)
    header = {key: value for key, value in style.header.items() if key != WORD_HEADER}
    tensors, header = to_kohya(style.tensors, style.metadata, header)
    with OutputLock([output], recheck=lambda: check_writable(output, args.overwrite)):
        print(f"wrote {atomic_write(output, saver(tensors, header))}")
    if style.word:
        print("the learned style word stays in the style file: load it from there (docs/style-word.md)")


def run_ui(args) -> None:
    from ..config.checks import check_number
    from ..config.model_names import resolve_model

    check_number("--port", args.port, 1, 65535, integer=True, hint="; use e.g. 7860")
    device = distributed.check_device(args.device)
    resolve_model(args.model)
    if args.workdir:
        check_folder_writable(args.workdir, "work folder")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError("the web app needs Gradio; install it with pip install 'paircustom[ui]'.") from None
    from ..ui.app import launch
    from ..ui.studio import Studio

    studio = Studio(args.model, args.workdir, device)
    if args.model == "shapes":  # as in the demo: one thread is fastest for the embedded model
        import torch

        torch.set_num_threads(1)
    print(
        f"paircustom ui: {studio.model} on http://{args.host}:{args.port} (work folder {studio.workdir}); "
        "Ctrl+C stops it",
        flush=True,
    )
    launch(studio, args.host, args.port)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Our own warnings as one line (no source line), from process 0 only; everyone else's as Python prints them."""
    if issubclass(category, PairCustomWarning):
        if distributed.is_main():
            print(f"paircustom: warning: {printable(' '.join(str(message).split()))}", file=file or sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    with interrupt.handling():  # Ctrl-C: exit 130 with one line, whatever is running
        _run(argv)
    return 0


def _run(argv: list[str] | None) -> None:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    distributed.die_with_launcher()
    commands = {
        "train": run_train,
        "generate": run_generate,
        "stylize": run_stylize,
        "info": run_info,
        "export": run_export,
        "ui": run_ui,
        "sweep": run_sweep,
    }
    if args.command == "demo":
        from ..demo import run_demo

        def command(args):
            check_folder_writable(args.output_dir)  # before the demo trains for a minute
            run_demo(args)
    else:
        command = commands[args.command]
    try:
        if args.command in ("train", "generate"):
            distributed.relaunch_if_accelerate_dropped_processes()
        with cli_names(), loading_bars(enabled=not getattr(args, "quiet", False)):
            command(args)
    except UserError as error:
        if distributed.prints_errors():  # one line, always; under N processes from the first of each machine
            print(f"paircustom: error: {printable(str(error))}", file=sys.stderr)
        raise SystemExit(2) from None
