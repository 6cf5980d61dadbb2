"""Command line: a thin layer over ``train_pair`` and ``StyleGuidedPipeline``.

    paircustom train CONTENT STYLE_IMAGE --subject dog --style "digital art"
    paircustom train --pair c1.png s1.png --pair c2.png s2.png --subject dog --style "digital art"
    paircustom generate "a photo of a cat" --style-file dog-digital-art.safetensors --compare
    paircustom stylize photo.png -s dog-digital-art.safetensors=3 -o photo-art.png
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
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path

from . import distributed
from .checks import check_folder_writable
from .errors import PairCustomWarning, UserError

# Optional-dependency notices (e.g. "requires torchvision") are noise on a command line.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

PAPER = "paper: {}"


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="learn a style from a content/style image pair",
                       description="Train a content LoRA and an orthogonal style LoRA on one image pair and write "
                                   "the style LoRA as a .safetensors file (paper Sec. 3). Options left out take the "
                                   "model's own defaults (the embedded 'shapes' model has small, fast ones), else "
                                   "the paper's.")
    p.add_argument("content_image", nargs="?", help="photo of the subject (PNG/JPEG); or give pairs with --pair")
    p.add_argument("style_image", nargs="?", help="the same picture in the target style, same aspect ratio")
    p.add_argument("--pair", nargs=2, action="append", default=[], metavar=("CONTENT", "STYLE"),
                   help="a (content, style) pair; repeat for several pairs of one style: one shared style LoRA, one "
                        "content LoRA per pair, all pairs in every step (after the positional pair, if given)")
    p.add_argument("--subject", required=True, help='the subject word, e.g. "dog"')
    p.add_argument("--style", required=True, help='the style description, e.g. "digital art"')
    p.add_argument("--model", default="shapes", help="hub id, diffusers folder, or 'shapes' (embedded; default)")
    p.add_argument("--output", "-o", default="style.safetensors", help="style LoRA file to write (default: %(default)s)")
    p.add_argument("--token", default="sbu", help="rare token bound to the content (default: %(default)s)")
    p.add_argument("--content-prompt", help='default: "a photo of a <token> <subject>"')
    p.add_argument("--style-prompt", help='default: content prompt + " in <style> style"')
    p.add_argument("--rank", type=int, help="rank of both adapters (" + PAPER.format(64) + ")")
    p.add_argument("--content-rank", type=int, help="content rank, overrides --rank")
    p.add_argument("--style-rank", type=int, help="style rank, overrides --rank")
    p.add_argument("--alpha", type=float, help="LoRA alpha (default: the rank, i.e. scale 1)")
    p.add_argument("--targets", default="to_q,to_k,to_v,to_out.0", help="attention projections to adapt (default: %(default)s)")
    p.add_argument("--basis-seed", type=int, default=0, help="seed of the orthonormal bases (default: %(default)s)")
    p.add_argument("--lr", type=float, help="AdamW learning rate (" + PAPER.format("1e-5") + ")")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay (default: %(default)s)")
    p.add_argument("--steps", type=int, help="optimizer steps (" + PAPER.format(750) + ")")
    p.add_argument("--style-start", type=int, help="first step with the style loss (" + PAPER.format(250) + ")")
    p.add_argument("--accumulation", type=int, help="gradient accumulation (" + PAPER.format(4) + ")")
    p.add_argument("--resolution", type=int, help="square training size in pixels (" + PAPER.format(512) + ")")
    p.add_argument("--seed", type=int, default=0, help="noise/timestep seed (default: %(default)s)")
    p.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no", help="GPU mixed precision")
    _model_options(p, dtype_default="fp32", dtype_help="dtype of the frozen base weights (adapters train in fp32)")
    p.add_argument("--save-dtype", choices=("fp32", "fp16", "bf16"),
                   help="dtype of the saved style file (default: fp16 for hub models, else fp32)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="save memory at the cost of compute")
    p.add_argument("--use-8bit-adam", action="store_true", help="bitsandbytes AdamW8bit (GPU)")
    p.add_argument("--preview-every", type=int, default=0, help="write a base-vs-styled preview PNG every N steps")
    p.add_argument("--checkpoint-every", type=int, default=0, help="save a resumable checkpoint every N steps and at "
                                                                   "the end (kept: --resume with more --steps extends)")
    p.add_argument("--keep-checkpoints", type=int, default=1, help="with --checkpoint-every: also keep the newest N "
                   "checkpoints as <output>.checkpoint-step00250.safetensors (default 1: the rolling one only)")
    p.add_argument("--save-every", type=int, default=0, help="also write <output>-step00250.safetensors every N steps")
    p.add_argument("--scale-lr", action="store_true", help="under N processes train with N x --lr (default: --lr as "
                                                           "given; each step averages N x --accumulation draws)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint beside --output")
    p.add_argument("--save-content", action="store_true", help="also write the content LoRA (<output>-content.safetensors)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _generate_parser(sub) -> None:
    p = sub.add_parser("generate", help="generate images with style guidance",
                       description="Generate with style guidance (paper Eq. 10-11): base CFG plus, for each style, "
                                   "scale x (styled prediction - base prediction).")
    p.add_argument("prompt", nargs="?", help='e.g. "a photo of a cat" (or --prompts-file)')
    p.add_argument("--prompts-file", help="text file, one prompt per line (# comments): one image per prompt and "
                                          "seed, named <output>-<line>-<words>-s<seed>.png; split across processes "
                                          "under torchrun / accelerate launch")
    p.add_argument("--seeds", help="seeds, e.g. 0-3 or 0,5,9: one image per prompt and seed (batch naming as "
                                   "with --prompts-file)")
    _style_options(p)
    p.add_argument("--style-end", type=float, help="fraction of steps after which style guidance stops (default: 1, "
                                                   "the last step)")
    p.add_argument("--style-interval", type=int, default=1, metavar="K",
                   help="recompute the style terms every K steps and reuse them in between, where only the CFG "
                        "rows are computed (default: %(default)s, every step; see README 'Cheaper style guidance')")
    p.add_argument("--style-tolerance", type=float, metavar="T",
                   help="also recompute the style terms once the base prediction has changed by more than T "
                        "(relative L1) since they were computed; K is then the longest reuse, e.g. K=8, T=0.1")
    p.add_argument("--lora-scale", type=float, help="instead of style guidance, the baseline: style LoRA at this "
                                                    "scale with plain CFG")
    p.add_argument("--steps", type=int, default=50, help="denoising steps (default: %(default)s)")
    p.add_argument("--negative-prompt", help="negative prompt")
    p.add_argument("--prompt-2", help="SDXL: prompt for the second text encoder (default: the prompt)")
    p.add_argument("--negative-prompt-2", help="SDXL: negative prompt for the second text encoder")
    p.add_argument("--guidance-rescale", type=float, default=0.0, help="rescale the guided prediction towards the "
                                                                        "conditional one's std, 0-1 (default: 0)")
    p.add_argument("--height", type=int, help="default: the model's size")
    p.add_argument("--width", type=int, help="default: the model's size")
    p.add_argument("--seed", type=int, help="seed (default: 0)")
    p.add_argument("--num-images", type=int, default=1, help="images per prompt (default: %(default)s)")
    p.add_argument("--output", "-o", default="styled.png", help="image file; several get -0, -1, ... (default: %(default)s)")
    p.add_argument("--name", action="append", default=[], help="name of each --style-file, in order (default: the "
                                                                   "file's stem); needed when stems repeat")
    p.add_argument("--compare", action="store_true", help="also write <output>-compare.png: base | styled, same seed")
    _control_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing images")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _stylize_parser(sub) -> None:
    p = sub.add_parser("stylize", help="apply learned styles to an existing image",
                       description="Stylise an image with style guidance: 'sdedit' noises it to --strength and "
                                   "denoises; 'inversion' inverts it by deterministic DDIM under the prompt first, "
                                   "which keeps the layout better. The image is resized and centre-cropped as in "
                                   "training.")
    p.add_argument("image", help="the image to stylise (PNG/JPEG)")
    p.add_argument("--prompt", help="what the image shows (default: the first style file's content prompt)")
    p.add_argument("--strength", type=float, default=0.6, help="share of the denoising steps redone, 0-1 "
                                                                "(default: %(default)s)")
    p.add_argument("--method", choices=("sdedit", "inversion"), default="sdedit", help="default: %(default)s")
    p.add_argument("--inversion-refine", type=int, default=0, help="inversion: fixed-point iterations per step "
                                                                    "(default: %(default)s)")
    _style_options(p)
    p.add_argument("--steps", type=int, default=50, help="denoising steps at strength 1 (default: %(default)s)")
    p.add_argument("--negative-prompt", help="negative prompt")
    p.add_argument("--resolution", type=int, help="square size in pixels (default: the model's size)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sdedit noise (default: %(default)s)")
    p.add_argument("--name", action="append", default=[], help="name of each --style-file, in order")
    p.add_argument("--output", "-o", default="stylized.png", help="image file (default: %(default)s)")
    _control_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing image")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _style_options(p) -> None:
    """The options generate and stylize share: style files, model, guidance."""
    p.add_argument("--style-file", "-s", action="append", default=[], metavar="FILE[=SCALE]",
                   help="style file, optionally with its own scale; repeat to combine styles")
    p.add_argument("--suffix", help='style prompt suffix for files without metadata, e.g. " in painting style"')
    p.add_argument("--model", help="base model (default: the first style file's base model, else 'shapes')")
    _model_options(p, dtype_default=None, dtype_help="dtype of the model (default: fp16 on a GPU, else fp32)")
    p.add_argument("--guidance-scale", type=float, default=5.0, help="CFG scale (default: %(default)s)")
    p.add_argument("--style-scale", type=float, default=3.0, help="style guidance scale (default: %(default)s)")
    p.add_argument("--style-start", type=float, default=0.2, help="fraction of the (denoising) steps before style guidance starts "
                                                                  "(default: %(default)s)")


def _control_options(p) -> None:
    p.add_argument("--controlnet", help="ControlNet folder or hub id, e.g. diffusers/controlnet-canny-sdxl-1.0")
    p.add_argument("--control-image", help="the ControlNet's conditioning image (edges, depth, pose, ...)")
    p.add_argument("--controlnet-scale", type=float, default=1.0, help="ControlNet conditioning scale "
                                                                       "(default: %(default)s)")


def _model_options(p, dtype_default, dtype_help) -> None:
    p.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: cuda when there is one)")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default=dtype_default, help=dtype_help)
    p.add_argument("--variant", help='weight files to load, e.g. "fp16" (the hub models\' half-size files)')
    p.add_argument("--vae", help="replacement VAE, folder or hub id, e.g. madebyollin/sdxl-vae-fp16-fix (SDXL in fp16)")


class _Parser(argparse.ArgumentParser):
    """argparse's own refusals (unknown option, not a number) as our one line, without the usage block."""

    def error(self, message):
        print(f"paircustom: error: {' '.join(message.split())}; see '{self.prog} --help'.", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="paircustom", description="Pair Customization: learn a style from one "
                                     "content/style image pair and apply it with style guidance.")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _generate_parser(sub)
    _stylize_parser(sub)
    info = sub.add_parser("info", help="print a style file's metadata")
    info.add_argument("file", help="a .safetensors style file")
    export = sub.add_parser("export", help="write a style file in another tool's LoRA layout",
                            description="Write a style file as a kohya LoRA (lora_unet_* keys with lora_down, lora_up "
                                        "and alpha, ss_* metadata) for ComfyUI and Automatic1111. Those tools apply "
                                        "the style LoRA at a scale (the LoRA-scale baseline); style guidance itself "
                                        "needs paircustom's pipeline.")
    export.add_argument("file", help="a style file (any layout 'generate' reads)")
    export.add_argument("--format", choices=("kohya",), default="kohya", help="layout to write (default: %(default)s)")
    export.add_argument("--output", "-o", required=True, help="the .safetensors file to write")
    export.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    ui = sub.add_parser("ui", help="the web app: train and apply styles in a browser (needs the ui extra)",
                        description="Serve a Gradio page: upload a content/style pair or pick an example, train a "
                                    "style with live progress, load style files and generate with style guidance.")
    ui.add_argument("--model", default="shapes", help="hub id, diffusers folder, or 'shapes' (embedded; default)")
    ui.add_argument("--host", default="127.0.0.1", help="address to serve on (default: %(default)s, this machine only)")
    ui.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    ui.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: cuda when there is one)")
    ui.add_argument("--workdir", help="folder for trained styles and previews (default: a new temporary folder)")
    demo = sub.add_parser("demo", help="train a style on the embedded model and write a comparison grid")
    demo.add_argument("--output-dir", default="paircustom-demo", help="folder for the style file and grid "
                                                                      "(default: %(default)s)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def run_train(args) -> None:
    from .training import TrainConfig, train_pair

    if (args.content_image is None) != (args.style_image is None):
        raise UserError("give the style image after the content image, or give pairs with --pair CONTENT STYLE.")
    pairs = ([(args.content_image, args.style_image)] if args.content_image else []) + [tuple(p) for p in args.pair]
    if not pairs:
        raise UserError("give a content and a style image, e.g. paircustom train dog.png dog_art.png, or pairs with "
                        "--pair CONTENT STYLE.")
    config = TrainConfig(
        content_image=pairs[0][0], style_image=pairs[0][1], extra_pairs=tuple(pairs[1:]), subject=args.subject,
        style=args.style,
        model=args.model, output=args.output, token=args.token, content_prompt=args.content_prompt,
        style_prompt=args.style_prompt, rank=args.rank, content_rank=args.content_rank, style_rank=args.style_rank,
        alpha=args.alpha, target_modules=tuple(t.strip() for t in args.targets.split(",") if t.strip()),
        basis_seed=args.basis_seed, learning_rate=args.lr, weight_decay=args.weight_decay, max_steps=args.steps,
        style_start=args.style_start, gradient_accumulation=args.accumulation, resolution=args.resolution,
        seed=args.seed, mixed_precision=args.mixed_precision, device=args.device, dtype=args.dtype,
        variant=args.variant, vae=args.vae, save_dtype=args.save_dtype, gradient_checkpointing=args.gradient_checkpointing,
        use_8bit_adam=args.use_8bit_adam, preview_every=args.preview_every, checkpoint_every=args.checkpoint_every,
        save_every=args.save_every, keep_checkpoints=args.keep_checkpoints, scale_lr=args.scale_lr,
        resume=args.resume, save_content=args.save_content, overwrite=args.overwrite, progress=not args.quiet,
    )
    path = train_pair(config)
    if distributed.is_main():
        print(f"wrote {path}")


def _parse_style(text: str, default: float) -> tuple[str, float]:
    path, _, scale = text.partition("=")
    try:
        return path, float(scale) if scale else default
    except ValueError:
        raise UserError(f"'{text}' is not FILE or FILE=SCALE with a number as scale; e.g. art.safetensors=3.") from None


def _read_styles(args):
    """The --style-file list, checked before any model loads: ((path, scale) list, names, metadata, model)."""
    from .families import resolve_model
    from .formats import read_adapter, require_suffix

    styles = [_parse_style(s, args.style_scale) for s in args.style_file]
    if not styles:
        raise UserError("give at least one style with --style-file FILE (written by 'paircustom train').")
    if getattr(args, "lora_scale", None) is not None and len(styles) != 1:
        raise UserError("--lora-scale applies one style; give exactly one --style-file.")
    if args.name and len(args.name) != len(styles):
        raise UserError(f"give one --name per --style-file ({len(styles)}), or none; got {len(args.name)}.")
    names = args.name or [Path(path).stem for path, _ in styles]
    if len(set(names)) != len(names):
        raise UserError(f"two styles would share the name '{_first_repeat(names)}'; name each with --name.")
    metadata = [read_adapter(path)[1] for path, _ in styles]       # every file checked before the model loads
    for (path, _), meta in zip(styles, metadata):
        require_suffix(path, meta, args.suffix)
    model = args.model
    if model is None:
        model = metadata[0].base_model if metadata[0] else "shapes"
    resolve_model(model)
    return styles, names, metadata, model


def _read_control(args):
    """--controlnet and --control-image, both or neither; the image opened (and the folder checked) now."""
    from .families import _folder_or_hub_id
    from .images import open_rgb

    if (args.controlnet is None) != (args.control_image is None):
        raise UserError("--controlnet and --control-image go together: give the ControlNet model and its "
                        "conditioning image, or neither.")
    if args.controlnet is None:
        return None
    from .checks import check_number

    check_number("the ControlNet conditioning scale", args.controlnet_scale, 0, 100, hint="; 1 is diffusers' default")
    _folder_or_hub_id(args.controlnet, "ControlNet", "config.json")
    return open_rgb(args.control_image, "control image")


def _open_pipeline(args, model: str, device: str, styles, names):
    """The model (with --controlnet) on ``device`` with every style loaded: (pipeline, {name: scale}, files)."""
    from .families import DTYPES
    from .guidance import StyleGuidedPipeline

    dtype = args.dtype or ("fp16" if device.startswith("cuda") else "fp32")
    pipe = StyleGuidedPipeline.from_pretrained(model, DTYPES[dtype], device, variant=args.variant, vae=args.vae,
                                               controlnet=args.controlnet)
    pipe.pipe.set_progress_bar_config(disable=args.quiet or not distributed.is_main())
    scales = {pipe.load_style(path, name=name, suffix=args.suffix): scale for (path, scale), name in zip(styles, names)}
    files = {name: {"file": str(Path(path).resolve()), "scale": scale} for (path, scale), name in zip(styles, names)}
    return pipe, scales, files


def run_generate(args) -> None:
    from .families import check_device
    from .images import check_writable
    from .preflight import check_generation

    styles, names, metadata, model = _read_styles(args)
    if (args.prompt_2 or args.negative_prompt_2) and {m.family for m in metadata if m} == {"sd"}:
        raise UserError("--prompt-2 and --negative-prompt-2 feed SDXL's second text encoder; these styles are for "
                        "an SD model with one text encoder, so drop them.")
    if not 0.0 <= args.guidance_rescale <= 1.0:
        raise UserError(f"--guidance-rescale must lie in [0, 1]; got {args.guidance_rescale}.")
    control_image = _read_control(args)
    work = _generation_jobs(args)                      # None: one prompt, --num-images images
    prompts = [args.prompt] if work is None else list(dict.fromkeys(job.prompt for job in work))
    check_generation(model, prompts, styles, args.suffix, args.lora_scale, guidance_scale=args.guidance_scale,
                     style_start=args.style_start, style_end=args.style_end, style_interval=args.style_interval,
                     style_tolerance=args.style_tolerance, steps=args.steps, height=args.height, width=args.width,
                     seed=args.seed, num_images=args.num_images)
    device = distributed.process_device(check_device(args.device))
    output = Path(args.output)
    if work is None:
        paths = [output] if args.num_images == 1 else [output.with_name(f"{output.stem}-{i}{output.suffix}")
                                                       for i in range(args.num_images)]
        compares = [output.with_name(f"{output.stem}-compare{output.suffix}")]
    else:
        paths, compares = [job.path for job in work], [job.compare for job in work]
    for path in paths + (compares if args.compare else []):
        check_writable(path, args.overwrite)     # refuse before any work is done
    state = None
    if distributed.world_size() > 1:
        from accelerate import PartialState

        state = PartialState(cpu=device == "cpu")
        state.wait_for_everyone()                # every process has checked the outputs before any is written

    pipe, scales, files = _open_pipeline(args, model, device, styles, names)
    common = dict(guidance_scale=args.guidance_scale, num_inference_steps=args.steps, negative_prompt=args.negative_prompt,
                  height=args.height, width=args.width, prompt_2=args.prompt_2, negative_prompt_2=args.negative_prompt_2,
                  guidance_rescale=args.guidance_rescale)
    if control_image is not None:
        common.update(control_image=control_image, controlnet_conditioning_scale=args.controlnet_scale)
    seed = 0 if args.seed is None else args.seed
    if work is None:
        text = png_text(args, model, files, args.prompt, seed)
        texts = [{**text, "image_index": str(index)} for index in range(args.num_images)]
        _draw(pipe, args, scales, args.prompt, dict(common, seed=seed, num_images_per_prompt=args.num_images),
              paths, compares[0], texts)
        return
    with nullcontext(work) if state is None else state.split_between_processes(work) as mine:
        for job in mine:               # this process's share: a contiguous slice of the jobs
            text = {**png_text(args, model, files, job.prompt, job.seed), "prompt_index": str(job.index)}
            _draw(pipe, args, scales, job.prompt, dict(common, seed=job.seed), [job.path], job.compare, [text])
    if state is not None:
        state.wait_for_everyone()                # the run is over when every process's images are written


def run_stylize(args) -> None:
    from .families import check_device
    from .images import check_writable, open_rgb, save_image
    from .preflight import check_generation
    from .stylize import check_stylize

    styles, names, metadata, model = _read_styles(args)
    check_stylize(args.strength, args.method, args.inversion_refine)
    image = open_rgb(args.image, "image")
    control_image = _read_control(args)
    prompt = args.prompt if args.prompt is not None else metadata[0].content_prompt if metadata[0] else None
    if prompt is None:
        raise UserError(f"'{styles[0][0]}' records no content prompt (a file from another tool); give --prompt.")
    check_generation(model, [prompt], styles, args.suffix, None, guidance_scale=args.guidance_scale,
                     style_start=args.style_start, steps=args.steps, height=args.resolution, width=args.resolution,
                     seed=args.seed, num_images=1)
    output = check_writable(args.output, args.overwrite)
    device = check_device(args.device)
    pipe, scales, files = _open_pipeline(args, model, device, styles, names)
    styled = pipe.stylize(image, prompt, scales, args.strength, args.method, guidance_scale=args.guidance_scale,
                          style_start=args.style_start, num_inference_steps=args.steps, seed=args.seed,
                          negative_prompt=args.negative_prompt, resolution=args.resolution, control_image=control_image,
                          controlnet_conditioning_scale=args.controlnet_scale,
                          inversion_refine=args.inversion_refine).images[0]
    from . import __version__

    text = {"image": str(Path(args.image).resolve()), "prompt": prompt, "method": f"stylize {args.method}",
            "strength": str(args.strength), "seed": str(args.seed), "model": model, "styles": json.dumps(files),
            "steps": str(args.steps), "guidance_scale": str(args.guidance_scale), "style_start": str(args.style_start),
            "software": f"paircustom {__version__}"}
    print(f"wrote {save_image(styled, output, args.overwrite, text=text)}")


def _draw(pipe, args, scales: dict, prompt: str, call: dict, paths: list[Path], compare: Path, texts: list[dict]):
    """Generate ``prompt`` (as many images as ``paths``), write them, and with --compare the base | styled sheet."""
    from .images import grid, save_image

    if args.lora_scale is not None:
        styled = pipe.lora_scale(prompt, next(iter(scales)), args.lora_scale, **call).images
    else:
        styled = pipe(prompt, styles=scales, style_start=args.style_start, style_end=args.style_end,
                      style_interval=args.style_interval, style_tolerance=args.style_tolerance, **call).images
    for image, path, text in zip(styled, paths, texts):
        print(f"wrote {save_image(image, path, args.overwrite, text=text)}")
    if args.compare:
        base = pipe(prompt, styles={}, **call).images
        styled_label = "LoRA x %g" % args.lora_scale if args.lora_scale is not None else "styled"
        sheet = grid([[b, s] for b, s in zip(base, styled)], labels=["base", styled_label])
        text = {key: value for key, value in texts[0].items() if key != "image_index"}
        print(f"wrote {save_image(sheet, compare, args.overwrite, text={**text, 'layout': 'base | styled'})}")


def _generation_jobs(args):
    """The (prompt, seed) jobs of --prompts-file / --seeds, or None for a single prompt."""
    from .batch import jobs, parse_seeds, read_prompts

    if args.prompts_file is not None and args.prompt is not None:
        raise UserError("give either a prompt or --prompts-file, not both.")
    if args.prompts_file is None and args.prompt is None:
        raise UserError('give a prompt, e.g. paircustom generate "a photo of a cat" -s style.safetensors, or '
                        "--prompts-file FILE.")
    if args.prompts_file is None and args.seeds is None:
        return None
    if args.seeds is not None and args.seed is not None:
        raise UserError("give either --seed or --seeds, not both.")
    if args.num_images != 1:
        raise UserError("--num-images makes several images of one prompt and seed; with --prompts-file or --seeds "
                        "give the seeds instead, e.g. --seeds 0-3.")
    prompts = read_prompts(args.prompts_file) if args.prompts_file is not None else [args.prompt]
    seeds = parse_seeds(args.seeds) if args.seeds is not None else [0 if args.seed is None else args.seed]
    return jobs(prompts, seeds, args.output)


def png_text(args, model: str, styles: dict, prompt: str, seed: int) -> dict[str, str]:
    """What made an image, for PNG text chunks (shown by image viewers and other diffusion tools)."""
    from . import __version__

    text = {"prompt": prompt, "seed": str(seed), "model": model, "styles": json.dumps(styles),
            "steps": str(args.steps), "guidance_scale": str(args.guidance_scale), "software": f"paircustom {__version__}"}
    if args.lora_scale is not None:
        text["method"] = f"lora-scale {args.lora_scale}"
    else:
        text["method"], text["style_start"] = "style guidance", str(args.style_start)
        for key in ("style_end", "style_tolerance"):
            if getattr(args, key) is not None:
                text[key] = str(getattr(args, key))
        if args.style_interval != 1:
            text["style_interval"] = str(args.style_interval)
    for key in ("negative_prompt", "prompt_2", "negative_prompt_2", "guidance_rescale"):
        if getattr(args, key):
            text[key] = str(getattr(args, key))
    return text


def _first_repeat(items: list[str]) -> str:
    return next(item for i, item in enumerate(items) if item in items[:i])


def run_info(args) -> None:
    from .formats import read_style

    style = read_style(args.file)
    metadata = style.metadata
    layers = sum(key.endswith("lora_A.weight") for key in style.tensors)
    print(f"{args.file}: {layers} UNet LoRA layers, {style.layout} layout"
          + (f", {style.ignored} text-encoder tensors (ignored)" if style.ignored else ""))
    if metadata is None:
        print("no paircustom metadata (made by another tool); pass --suffix when generating")
    else:
        print(json.dumps(asdict(metadata), indent=2))


def run_export(args) -> None:
    from safetensors.torch import save_file

    from .formats import read_style
    from .images import atomic_write, check_writable
    from .layouts import to_kohya

    output = check_writable(args.output, args.overwrite)     # before any work
    if Path(args.file).resolve() == output.resolve():
        raise UserError(f"the output '{output}' is the style file itself; write the export to another file.")
    style = read_style(args.file)
    tensors, header = to_kohya(style.tensors, style.metadata, style.header)
    print(f"wrote {atomic_write(output, lambda temp: save_file(tensors, temp, metadata=header))}")


def run_ui(args) -> None:
    from .checks import check_number
    from .families import check_device, resolve_model

    check_number("--port", args.port, 1, 65535, integer=True, hint="; use e.g. 7860")
    device = check_device(args.device)
    resolve_model(args.model)
    if args.workdir:
        check_folder_writable(args.workdir, "work folder")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError("the web app needs Gradio; install it with pip install 'paircustom[ui]'.") from None
    from .ui.app import launch
    from .ui.studio import Studio

    studio = Studio(args.model, args.workdir, device)
    if args.model == "shapes":     # as in the demo: one thread is fastest for the embedded model
        import torch

        torch.set_num_threads(1)
    print(f"paircustom ui: {studio.model} on http://{args.host}:{args.port} (work folder {studio.workdir}); "
          "Ctrl+C stops it", flush=True)
    launch(studio, args.host, args.port)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Our own warnings as one line (no source line), from process 0 only; everyone else's as Python prints them."""
    if issubclass(category, PairCustomWarning):
        if distributed.is_main():
            print(f"paircustom: warning: {message}", file=file or sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


@contextmanager
def _loading_bars(enabled: bool):
    """--quiet also hides diffusers' and transformers' model-loading bars (as they were, afterwards)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    libraries = [diffusers_logging, transformers_logging]
    before = [library.is_progress_bar_enabled() for library in libraries]
    for library in libraries:
        library.enable_progress_bar() if enabled else library.disable_progress_bar()
    try:
        yield
    finally:
        for library, was in zip(libraries, before):
            library.enable_progress_bar() if was else library.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    distributed.die_with_launcher()
    commands = {"train": run_train, "generate": run_generate, "stylize": run_stylize, "info": run_info,
                "export": run_export, "ui": run_ui}
    if args.command == "demo":
        from .demo import run_demo

        def command(args):
            check_folder_writable(args.output_dir)      # before the demo trains for a minute
            run_demo(args)
    else:
        command = commands[args.command]
    try:
        if args.command in ("train", "generate"):
            distributed.relaunch_if_accelerate_dropped_processes()
        with _loading_bars(enabled=not getattr(args, "quiet", False)):
            command(args)
    except UserError as error:
        if distributed.prints_errors():      # one line, always; under N processes from the first of each machine
            print(f"paircustom: error: {' '.join(str(error).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    return 0
