"""``paircustom stylize``: stylise an existing image with style guidance (SDEdit or DDIM inversion)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import __version__
from ..config.generate import STYLIZE_OPTIONS
from ..config.validate import check_prompts
from ..errors import UserError
from .common import check_family_options, check_generation, inputs, inputs_of, open_pipeline, read_control, read_styles
from .provenance import file_record, model_record
from .threads import threads_for

# the settings handed to StyleGuidedPipeline.stylize
STYLIZE_CALL = (
    "strength",
    "method",
    "guidance_scale",
    "style_start_fraction",
    "num_inference_steps",
    "negative_prompt",
    "resolution",
    "controlnet_conditioning_scale",
    "inversion_refine",
    "negative_prompt_inversion",
)


def stylize_parser(sub) -> None:
    p = sub.add_parser("stylize", help="apply learned styles to an existing image", description=run_stylize.__doc__)
    p.add_argument("image", help="the image to stylise (PNG/JPEG)")
    p.add_argument(
        "--prompt",
        help="what the image shows (default: on the embedded shapes model, the scene the image shows, read by its "
        "analyzer; else the first style file's content prompt)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sdedit noise (default: %(default)s)")
    p.add_argument("--output", "-o", default="stylized.png", help="image file (default: %(default)s)")
    p.add_argument("--compare", action="store_true", help="also write <output>-compare.png: input | stylised, labelled")
    inputs(p, STYLIZE_OPTIONS)


def run_stylize(args) -> None:
    """Stylise an image with style guidance: 'sdedit' noises it to --strength and denoises; 'inversion' inverts it
    by deterministic DDIM under the prompt first, which keeps the layout better. The image is resized and
    centre-cropped as in training."""
    from ..files.images import check_writable, open_rgb
    from ..files.safe_outputs import OutputLock, check_not_input
    from ..sampling.stylize import check_stylize

    styles, names, metadata, config = read_styles(args)
    check_stylize(
        config.strength,
        config.method,
        config.inversion_refine,
        config.negative_prompt_inversion,
        config.negative_prompt,
    )
    image = open_rgb(args.image, "image")
    control_image = read_control(args, config)
    prompt, note = (
        (args.prompt, None) if args.prompt is not None else default_prompt(image, config.model, styles, metadata)
    )
    check_prompts(prompt)
    plan = check_generation(
        config.model,
        [prompt],
        styles,
        args.suffix,
        None,
        guidance_scale=config.guidance_scale,
        style_start_fraction=config.style_start_fraction,
        steps=config.num_inference_steps,
        height=config.resolution,
        width=config.resolution,
        seed=args.seed,
        num_images=1,
    )
    if check_family_options(args, config, plan, metadata):
        raise UserError(
            "stylising an existing image is not supported for SD3 and Flux models yet; use 'paircustom generate'."
        )
    output = check_writable(args.output, args.overwrite)
    written = [output] + ([check_writable(_compare_path(output), args.overwrite)] if args.compare else [])
    check_not_input(written, inputs_of(args, styles))
    if note is not None:
        print(note)  # after every refusal: nothing is printed before one
    recheck = lambda: [check_writable(path, args.overwrite) for path in written]  # under the lock
    with OutputLock(written, recheck), threads_for(args.threads, config.model):
        _stylize(args, config, styles, names, image, control_image, prompt, written)


def _compare_path(output: Path) -> Path:
    """Where --compare writes its sheet: <output>-compare.png beside the output."""
    return output.with_name(f"{output.stem}-compare{output.suffix}")


def _stylize(args, config, styles, names, image, control_image, prompt: str, written: list[Path]) -> None:
    """The drawing half of ``run_stylize``, under the lock of its outputs (the image, then its --compare sheet)."""
    from ..files.images import grid, save_image

    pipe, scales, files = open_pipeline(args, config, config.device, styles, names)
    styled = pipe.stylize(
        image,
        prompt,
        scales,
        seed=args.seed,
        control_image=control_image,
        **config.values(STYLIZE_CALL),
    ).images[0]
    text = _png_text(args, config, prompt, files)
    print(f"wrote {save_image(styled, written[0], args.overwrite, text=text)}")
    if args.compare:
        sheet = grid([[_as_stylised(image, styled.size), styled]], labels=["input", "stylised"])
        print(f"wrote {save_image(sheet, written[1], args.overwrite, text={**text, 'layout': 'input | stylised'})}")


def default_prompt(image, model: str, styles, metadata) -> tuple[str, str]:
    """The prompt when --prompt is not given and the one line that says so: on the shapes model the caption the
    analyzer reads from the image; else the first style file's content prompt (its training prompt, which may name
    other things than the image shows)."""
    from ..config.model_names import resolve_model
    from ..shapes.caption import caption_of, is_shapes_model

    caption = caption_of(image) if is_shapes_model(resolve_model(model)[1]) else None
    if caption is not None:
        return caption, f'prompt: "{caption}" (read from the image; give --prompt to describe it otherwise)'
    if metadata[0] is None or not metadata[0].content_prompt:
        raise UserError(f"'{styles[0][0]}' records no content prompt (a file from another tool); give --prompt.")
    prompt = metadata[0].content_prompt
    why = "the style's training prompt; give --prompt saying what the image shows to keep its objects"
    return prompt, f'prompt: "{prompt}" ({why})'


def _as_stylised(image, size: tuple[int, int]):
    """The input as stylising sees it: its centre square at the stylised image's size."""
    from PIL import Image, ImageOps

    return ImageOps.fit(image, size, Image.Resampling.BICUBIC)


def _png_text(args, config, prompt: str, files) -> dict[str, str]:
    """What the stylised PNG records about how it was made."""
    return {
        "image": json.dumps(file_record(args.image, args.record_paths)),
        "prompt": prompt,
        "method": f"stylize {config.method}"
        + (" (negative-prompt inversion)" if config.negative_prompt_inversion else ""),
        "strength": str(config.strength),
        "seed": str(args.seed),
        "model": model_record(config.model, args.record_paths),
        "styles": json.dumps(files),
        "steps": str(config.num_inference_steps),
        "guidance_scale": str(config.guidance_scale),
        "style_start": str(config.style_start_fraction),
        "software": f"paircustom {__version__}",
    }
