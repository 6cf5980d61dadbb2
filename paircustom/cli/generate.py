"""``paircustom generate`` and ``paircustom stylize``: their options, the checks made before the model loads, and
the images they write.  The sampling options are the fields of ``GenerateConfig``; the rest name inputs and
outputs.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

from .. import __version__, distributed
from ..config.generate import GENERATE_OPTIONS, STYLIZE_OPTIONS, GenerateConfig
from ..config.options import add_options, from_args
from ..errors import UserError

# What every pipeline call of ``generate`` passes on as it is (the style options go to style guidance only).
CALL = (
    "guidance_scale",
    "num_inference_steps",
    "negative_prompt",
    "height",
    "width",
    "prompt_2",
    "negative_prompt_2",
    "guidance_rescale",
)
STYLE = ("style_start_fraction", "style_end", "style_interval", "style_tolerance", "style_reuse")
FLOW_CALL = ("true_cfg_scale",)  # what only SD3 / Flux style guidance takes


def generate_parser(sub) -> None:
    p = sub.add_parser("generate", help="generate images with style guidance", description=run_generate.__doc__)
    p.add_argument("prompt", nargs="?", help='e.g. "a photo of a cat" (or --prompts-file)')
    p.add_argument(
        "--prompts-file",
        help="text file, one prompt per line (# comments): one image per prompt and "
        "seed, named <output>-<line>-<words>-s<seed>.png; split across processes "
        "under torchrun / accelerate launch",
    )
    p.add_argument(
        "--seeds", help="seeds, e.g. 0-3 or 0,5,9: one image per prompt and seed (batch naming as with --prompts-file)"
    )
    p.add_argument("--seed", type=int, help="seed (default: 0)")
    p.add_argument(
        "--lora-scale",
        type=float,
        help="instead of style guidance, the baseline: style LoRA at this scale with plain CFG",
    )
    p.add_argument(
        "--output", "-o", default="styled.png", help="image file; several get -0, -1, ... (default: %(default)s)"
    )
    p.add_argument("--compare", action="store_true", help="also write <output>-compare.png: base | styled, same seed")
    _inputs(p, GENERATE_OPTIONS)


def stylize_parser(sub) -> None:
    p = sub.add_parser("stylize", help="apply learned styles to an existing image", description=run_stylize.__doc__)
    p.add_argument("image", help="the image to stylise (PNG/JPEG)")
    p.add_argument("--prompt", help="what the image shows (default: the first style file's content prompt)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sdedit noise (default: %(default)s)")
    p.add_argument("--output", "-o", default="stylized.png", help="image file (default: %(default)s)")
    _inputs(p, STYLIZE_OPTIONS)


def _inputs(p, names: tuple[str, ...]) -> None:
    """What generate and stylize share: the style files, the config's options ``names``, ControlNet, output."""
    p.add_argument(
        "--style-file",
        "-s",
        action="append",
        default=[],
        metavar="FILE[=SCALE]",
        help="style file, optionally with its own scale; repeat to combine styles",
    )
    p.add_argument("--suffix", help='style prompt suffix for files without metadata, e.g. " in painting style"')
    p.add_argument(
        "--name",
        action="append",
        default=[],
        help="name of each --style-file, in order (default: the file's stem); needed when stems repeat",
    )
    add_options(p, GenerateConfig, names)
    p.add_argument("--controlnet", help="ControlNet folder or hub id, e.g. diffusers/controlnet-canny-sdxl-1.0")
    p.add_argument("--control-image", help="the ControlNet's conditioning image (edges, depth, pose, ...)")
    p.add_argument("--overwrite", action="store_true", help="replace existing images")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _parse_style(text: str, default: float) -> tuple[str, float]:
    path, _, scale = text.partition("=")
    try:
        return path, float(scale) if scale else default
    except ValueError:
        raise UserError(f"'{text}' is not FILE or FILE=SCALE with a number as scale; e.g. art.safetensors=3.") from None


def _first_repeat(items: list[str]) -> str:
    return next(item for i, item in enumerate(items) if item in items[:i])


def _read_styles(args):
    """The --style-file list and the config, checked before any model loads: ((path, scale) list, names, metadata,
    resolved ``GenerateConfig``: the model defaults to the first file's base model)."""
    from ..files.style_file import read_adapter, require_suffix

    config = from_args(GenerateConfig, args)
    styles = [_parse_style(s, config.style_scale) for s in args.style_file]
    if not styles:
        raise UserError("give at least one style with --style-file FILE (written by 'paircustom train').")
    if getattr(args, "lora_scale", None) is not None and len(styles) != 1:
        raise UserError("--lora-scale applies one style; give exactly one --style-file.")
    if args.name and len(args.name) != len(styles):
        raise UserError(f"give one --name per --style-file ({len(styles)}), or none; got {len(args.name)}.")
    names = args.name or [Path(path).stem for path, _ in styles]
    if len(set(names)) != len(names):
        raise UserError(f"two styles would share the name '{_first_repeat(names)}'; name each with --name.")
    metadata = [read_adapter(path)[1] for path, _ in styles]  # every file checked before the model loads
    for (path, _), meta in zip(styles, metadata):
        require_suffix(path, meta, args.suffix)
    return styles, names, metadata, config.resolved(metadata[0].base_model if metadata[0] else None)


def _read_control(args, config: GenerateConfig):
    """--controlnet and --control-image, both or neither; the image opened (and the folder checked) now."""
    from ..config.checks import check_number
    from ..config.model_names import folder_or_hub_id
    from ..files.images import open_rgb

    if (args.controlnet is None) != (args.control_image is None):
        raise UserError(
            "--controlnet and --control-image go together: give the ControlNet model and its "
            "conditioning image, or neither."
        )
    if args.controlnet is None:
        return None
    check_number(
        "the ControlNet conditioning scale",
        config.controlnet_conditioning_scale,
        0,
        100,
        hint="; 1 is diffusers' default",
    )
    folder_or_hub_id(args.controlnet, "ControlNet", "config.json")
    return open_rgb(args.control_image, "control image")


def _open_pipeline(args, config: GenerateConfig, device: str, styles, names):
    """The model (with --controlnet) on ``device`` with every style loaded: (pipeline, {name: scale}, files)."""
    from ..models.registry import DTYPES
    from ..sampling.pipeline import from_pretrained

    pipe = from_pretrained(
        config.model, DTYPES[config.dtype], device, variant=config.variant, vae=config.vae, controlnet=args.controlnet
    )
    pipe.pipe.set_progress_bar_config(disable=args.quiet or not distributed.is_main())
    scales = {pipe.load_style(path, name=name, suffix=args.suffix): scale for (path, scale), name in zip(styles, names)}
    files = {name: {"file": str(Path(path).resolve()), "scale": scale} for (path, scale), name in zip(styles, names)}
    return pipe, scales, files


def run_generate(args) -> None:
    """Generate with style guidance (paper Eq. 10-11): base CFG plus, for each style, scale x (styled prediction -
    base prediction)."""
    from ..files.images import check_writable
    from ..models.plan import check_generation

    styles, names, metadata, config = _read_styles(args)
    if (config.prompt_2 or config.negative_prompt_2) and {m.family for m in metadata if m} == {"sd"}:
        raise UserError(
            "--prompt-2 and --negative-prompt-2 feed SDXL's second text encoder; these styles are for "
            "an SD model with one text encoder, so drop them."
        )
    if not 0.0 <= config.guidance_rescale <= 1.0:
        raise UserError(f"--guidance-rescale must lie in [0, 1]; got {config.guidance_rescale}.")
    control_image = _read_control(args, config)
    work = _generation_jobs(args, config)  # None: one prompt, --num-images images
    prompts = [args.prompt] if work is None else list(dict.fromkeys(job.prompt for job in work))
    plan = check_generation(
        config.model,
        prompts,
        styles,
        args.suffix,
        args.lora_scale,
        **config.values(STYLE),
        guidance_scale=config.guidance_scale,
        steps=config.num_inference_steps,
        height=config.height,
        width=config.width,
        seed=args.seed,
        num_images=config.num_images_per_prompt,
    )
    flow = _check_family_options(args, config, plan, metadata)
    device = distributed.process_device(config.device)
    output = Path(args.output)
    if work is None:
        paths = (
            [output]
            if config.num_images_per_prompt == 1
            else [output.with_name(f"{output.stem}-{i}{output.suffix}") for i in range(config.num_images_per_prompt)]
        )
        compares = [output.with_name(f"{output.stem}-compare{output.suffix}")]
    else:
        paths, compares = [job.path for job in work], [job.compare for job in work]
    for path in paths + (compares if args.compare else []):
        check_writable(path, args.overwrite)  # refuse before any work is done
    state = None
    if distributed.world_size() > 1:
        from accelerate import PartialState

        state = PartialState(cpu=device == "cpu")
        state.wait_for_everyone()  # every process has checked the outputs before any is written

    pipe, scales, files = _open_pipeline(args, config, device, styles, names)
    common = config.values(CALL + FLOW_CALL * flow)
    if control_image is not None:
        common.update(control_image=control_image, controlnet_conditioning_scale=config.controlnet_conditioning_scale)
    seed = 0 if args.seed is None else args.seed
    if work is None:
        text = png_text(args, config, files, args.prompt, seed)
        texts = [{**text, "image_index": str(index)} for index in range(config.num_images_per_prompt)]
        _draw(
            pipe,
            args,
            config,
            scales,
            args.prompt,
            dict(common, seed=seed, num_images_per_prompt=config.num_images_per_prompt),
            paths,
            compares[0],
            texts,
        )
        return
    with nullcontext(work) if state is None else state.split_between_processes(work) as mine:
        for job in mine:  # this process's share: a contiguous slice of the jobs
            text = {**png_text(args, config, files, job.prompt, job.seed), "prompt_index": str(job.index)}
            _draw(pipe, args, config, scales, job.prompt, dict(common, seed=job.seed), [job.path], job.compare, [text])
    if state is not None:
        state.wait_for_everyone()  # the run is over when every process's images are written


def run_stylize(args) -> None:
    """Stylise an image with style guidance: 'sdedit' noises it to --strength and denoises; 'inversion' inverts it
    by deterministic DDIM under the prompt first, which keeps the layout better. The image is resized and
    centre-cropped as in training."""
    from ..files.images import check_writable, open_rgb, save_image
    from ..models.plan import check_generation
    from ..sampling.stylize import check_stylize

    styles, names, metadata, config = _read_styles(args)
    check_stylize(
        config.strength,
        config.method,
        config.inversion_refine,
        config.negative_prompt_inversion,
        config.negative_prompt,
    )
    image = open_rgb(args.image, "image")
    control_image = _read_control(args, config)
    prompt = args.prompt if args.prompt is not None else metadata[0].content_prompt if metadata[0] else None
    if prompt is None:
        raise UserError(f"'{styles[0][0]}' records no content prompt (a file from another tool); give --prompt.")
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
    if _check_family_options(args, config, plan, metadata):
        raise UserError(
            "stylising an existing image is not supported for SD3 and Flux models yet; use 'paircustom generate'."
        )
    output = check_writable(args.output, args.overwrite)
    pipe, scales, files = _open_pipeline(args, config, config.device, styles, names)
    styled = pipe.stylize(
        image,
        prompt,
        scales,
        seed=args.seed,
        control_image=control_image,
        **config.values(
            (
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
        ),
    ).images[0]
    method = f"stylize {config.method}" + (" (negative-prompt inversion)" if config.negative_prompt_inversion else "")
    text = {
        "image": str(Path(args.image).resolve()),
        "prompt": prompt,
        "method": method,
        "strength": str(config.strength),
        "seed": str(args.seed),
        "model": config.model,
        "styles": json.dumps(files),
        "steps": str(config.num_inference_steps),
        "guidance_scale": str(config.guidance_scale),
        "style_start": str(config.style_start_fraction),
        "software": f"paircustom {__version__}",
    }
    print(f"wrote {save_image(styled, output, args.overwrite, text=text)}")


def _draw(
    pipe,
    args,
    config: GenerateConfig,
    scales: dict,
    prompt: str,
    call: dict,
    paths: list[Path],
    compare: Path,
    texts: list[dict],
):
    """Generate ``prompt`` (as many images as ``paths``), write them, and with --compare the base | styled sheet."""
    from ..files.images import grid, save_image

    if args.lora_scale is not None:
        styled = pipe.lora_scale(prompt, next(iter(scales)), args.lora_scale, **call).images
    else:
        styled = pipe(prompt, styles=scales, **config.values(STYLE), **call).images
    for image, path, text in zip(styled, paths, texts):
        print(f"wrote {save_image(image, path, args.overwrite, text=text)}")
    if args.compare:
        base = pipe(prompt, styles={}, **call).images
        styled_label = "LoRA x %g" % args.lora_scale if args.lora_scale is not None else "styled"
        sheet = grid([[b, s] for b, s in zip(base, styled)], labels=["base", styled_label])
        text = {key: value for key, value in texts[0].items() if key != "image_index"}
        print(f"wrote {save_image(sheet, compare, args.overwrite, text={**text, 'layout': 'base | styled'})}")


def _check_family_options(args, config: GenerateConfig, plan, metadata) -> bool:
    """Refuse options the model's family does not take, before it loads; return whether it is SD3 / Flux."""
    from ..files.style_file import FAMILY_WORDS
    from ..models.registry import FAMILIES
    from ..sampling.pipeline import check_flow_options

    flow = plan.flow if plan is not None else any(m is not None and FAMILIES[m.family].flow for m in metadata)
    if flow:
        check_flow_options(
            controlnet=getattr(args, "controlnet", None),
            prompt_2=config.prompt_2,
            negative_prompt_2=config.negative_prompt_2,
            guidance_rescale=config.guidance_rescale,
        )
    elif config.true_cfg_scale != GenerateConfig.true_cfg_scale:
        raise UserError(
            f"--true-cfg-scale applies to Flux; {FAMILY_WORDS.get(plan.family if plan else '', 'this')} "
            "models take --guidance-scale for CFG, so drop it."
        )
    return flow


def _generation_jobs(args, config: GenerateConfig):
    """The (prompt, seed) jobs of --prompts-file / --seeds, or None for a single prompt."""
    from .batch import jobs, parse_seeds, read_prompts

    if args.prompts_file is not None and args.prompt is not None:
        raise UserError("give either a prompt or --prompts-file, not both.")
    if args.prompts_file is None and args.prompt is None:
        raise UserError(
            'give a prompt, e.g. paircustom generate "a photo of a cat" -s style.safetensors, or --prompts-file FILE.'
        )
    if args.prompts_file is None and args.seeds is None:
        return None
    if args.seeds is not None and args.seed is not None:
        raise UserError("give either --seed or --seeds, not both.")
    if config.num_images_per_prompt != 1:
        raise UserError(
            "--num-images makes several images of one prompt and seed; with --prompts-file or --seeds "
            "give the seeds instead, e.g. --seeds 0-3."
        )
    prompts = read_prompts(args.prompts_file) if args.prompts_file is not None else [args.prompt]
    seeds = parse_seeds(args.seeds) if args.seeds is not None else [0 if args.seed is None else args.seed]
    return jobs(prompts, seeds, args.output)


def png_text(args, config: GenerateConfig, styles: dict, prompt: str, seed: int) -> dict[str, str]:
    """What made an image, for PNG text chunks (shown by image viewers and other diffusion tools).

    The key "style_start" holds ``style_start_fraction``, as in images written before the field was renamed."""
    text = {
        "prompt": prompt,
        "seed": str(seed),
        "model": config.model,
        "styles": json.dumps(styles),
        "steps": str(config.num_inference_steps),
        "guidance_scale": str(config.guidance_scale),
        "software": f"paircustom {__version__}",
    }
    if args.lora_scale is not None:
        text["method"] = f"lora-scale {args.lora_scale}"
    else:
        text["method"], text["style_start"] = "style guidance", str(config.style_start_fraction)
        for key in ("style_end", "style_tolerance"):
            if getattr(config, key) is not None:
                text[key] = str(getattr(config, key))
        if config.style_interval != 1:
            text["style_interval"], text["style_reuse"] = str(config.style_interval), config.style_reuse
    for key in ("negative_prompt", "prompt_2", "negative_prompt_2", "guidance_rescale"):
        if getattr(config, key):
            text[key] = str(getattr(config, key))
    return text
