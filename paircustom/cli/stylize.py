"""``paircustom stylize``: stylise an existing image with style guidance (SDEdit or DDIM inversion)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import __version__
from ..config.generate import STYLIZE_OPTIONS
from ..config.validate import check_prompts
from ..errors import UserError
from .common import check_family_options, inputs, inputs_of, open_pipeline, read_control, read_styles
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
    p.add_argument("--prompt", help="what the image shows (default: the first style file's content prompt)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sdedit noise (default: %(default)s)")
    p.add_argument("--output", "-o", default="stylized.png", help="image file (default: %(default)s)")
    inputs(p, STYLIZE_OPTIONS)


def run_stylize(args) -> None:
    """Stylise an image with style guidance: 'sdedit' noises it to --strength and denoises; 'inversion' inverts it
    by deterministic DDIM under the prompt first, which keeps the layout better. The image is resized and
    centre-cropped as in training."""
    from ..files.images import check_writable, open_rgb
    from ..files.safe_outputs import OutputLock, check_not_input
    from ..models.plan import check_generation
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
    prompt = args.prompt if args.prompt is not None else metadata[0].content_prompt if metadata[0] else None
    if prompt is None:
        raise UserError(f"'{styles[0][0]}' records no content prompt (a file from another tool); give --prompt.")
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
    check_not_input([output], inputs_of(args, styles))
    with OutputLock([output], lambda: check_writable(output, args.overwrite)), threads_for(args.threads, config.model):
        _stylize(args, config, styles, names, image, control_image, prompt, output)


def _stylize(args, config, styles, names, image, control_image, prompt: str, output: Path) -> None:
    """The drawing half of ``run_stylize``, under the lock of its output."""
    from ..files.images import save_image

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
    print(f"wrote {save_image(styled, output, args.overwrite, text=text)}")


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
