"""What ``paircustom generate`` and ``paircustom stylize`` share: the style-file and model options, reading the
styles and the control image, the checks made before the model loads (``check_generation``, also ``sweep``'s, and
a model family's options), opening the pipeline."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .. import distributed
from ..config.generate import GenerateConfig
from ..config.options import add_options, from_args
from ..errors import UserError
from .threads import add_threads_option


def inputs(p, names: tuple[str, ...]) -> None:
    """What generate and stylize share: the style files, the config's options ``names``, ControlNet, output."""
    p.add_argument(
        "--style-file",
        "-s",
        action="append",
        default=[],
        metavar="FILE[=SCALE]",
        help="style file, optionally with its own scale; repeat to combine styles",
    )
    naming(p, "needed when stems repeat")
    add_options(p, GenerateConfig, names)
    p.add_argument("--controlnet", help="ControlNet folder or hub id, e.g. diffusers/controlnet-canny-sdxl-1.0")
    p.add_argument("--control-image", help="the ControlNet's conditioning image (edges, depth, pose, ...)")
    p.add_argument("--overwrite", action="store_true", help="replace existing images")
    p.add_argument(
        "--record-paths",
        action="store_true",
        help="record the absolute paths of the model and input files in the PNG text (default: names and SHA-256)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_option(p)


def naming(p, use: str) -> None:
    """--suffix and --name: what a style file without metadata is called in prompts, and each file's name."""
    p.add_argument("--suffix", help='style prompt suffix for files without metadata, e.g. " in painting style"')
    p.add_argument(
        "--name",
        action="append",
        default=[],
        help=f"name of each --style-file, in order (default: the file's stem); {use}",
    )


def _parse_style(text: str, default: float) -> tuple[str, float]:
    path, _, scale = text.partition("=")
    try:
        return path, float(scale) if scale else default
    except ValueError:
        raise UserError(f"'{text}' is not FILE or FILE=SCALE with a number as scale; e.g. art.safetensors=3.") from None


def _first_repeat(items: list[str]) -> str:
    return next(item for i, item in enumerate(items) if item in items[:i])


def read_styles(args):
    """The --style-file list and the config, checked before any model loads: ((path, scale) list, names, metadata,
    resolved ``GenerateConfig``: the model defaults to the first file's base model)."""
    from ..files.style_file import read_adapter, require_suffix
    from .model_policy import announce, choose_model

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
    recorded = next(((path, meta.base_model) for (path, _), meta in zip(styles, metadata) if meta), (None, None))
    model, why = choose_model(config.model, recorded[1], recorded[0])  # the policy of model_policy
    config = replace(config, model=model).resolved()
    announce(config.model, why)
    return styles, names, metadata, config


def read_control(args, config: GenerateConfig):
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


def open_pipeline(args, config: GenerateConfig, device: str, styles, names):
    """The model (with --controlnet) on ``device`` with every style loaded: (pipeline, {name: scale}, files)."""
    from ..models.registry import DTYPES
    from ..sampling.pipeline import from_pretrained
    from .provenance import file_record

    pipe = from_pretrained(
        config.model, DTYPES[config.dtype], device, variant=config.variant, vae=config.vae, controlnet=args.controlnet
    )
    pipe.pipe.set_progress_bar_config(disable=args.quiet or not distributed.is_main())
    scales = {pipe.load_style(path, name=name, suffix=args.suffix): scale for (path, scale), name in zip(styles, names)}
    records = [file_record(path, getattr(args, "record_paths", False)) for path, _ in styles]
    files = {name: {**record, "scale": scale} for (_, scale), name, record in zip(styles, names, records)}
    return pipe, scales, files


def inputs_of(args, styles) -> list[tuple[str, str]]:
    """The files a generate or stylize run reads, as (role, path): none of them may be an output."""
    files = [("style file", path) for path, _ in styles] + [("control image", args.control_image)]
    return files + [("prompts file", getattr(args, "prompts_file", None)), ("image", getattr(args, "image", None))]


def check_generation(
    model: str,
    prompt: str | list[str],
    styles: list[tuple[str, float]],
    suffix: str | None,
    lora_scale: float | None,
    **sampling,
):
    """Everything ``paircustom generate`` is given (one prompt or a list), against the model's configs;
    ``sampling`` as ``check_sampling``.  Returns the model's plan (None: a hub id whose configs did not download)."""
    from ..config.checks import check_sampling
    from ..files.style_file import check_fits, read_adapter
    from ..models.plan import ModelPlan

    plan = ModelPlan.of_model(model)
    limits = dict(factor=plan.pixel_multiple, max_steps=plan.train_timesteps) if plan else {}
    check_sampling(style_scales=dict(styles), lora_scale=lora_scale, **sampling, **limits)
    for path, _ in styles:
        tensors, metadata = read_adapter(path, plan.denoiser.config if plan else None)
        if plan is not None:
            check_fits(path, tensors, metadata, plan.family, plan.denoiser)
            style_suffix = suffix if suffix is not None else metadata.style_suffix if metadata else ""
            for each in [prompt] if isinstance(prompt, str) else prompt:
                plan.check_prompt(each, style_suffix)
    return plan


def check_family_options(args, config: GenerateConfig, plan, metadata) -> bool:
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
