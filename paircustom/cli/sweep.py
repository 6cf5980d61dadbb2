"""``paircustom sweep``: a strength sweep of one style (optionally above the LoRA-scale baseline) or a blend grid
of two or three styles, as a labelled PNG grid, a GIF (strength sweeps) and a JSON file with every setting.

    paircustom sweep "a photo of a cat" -s art.safetensors=0:6:4 --lora-scales 0:1.5:4
    paircustom sweep "a photo of a cat" -s art.safetensors=0,1.5,3 -s sketch.safetensors=0,1.5,3 --seeds 0,1
"""

from __future__ import annotations

from pathlib import Path

from ..config.generate import GENERATE, MODEL_OPTIONS, GenerateConfig
from ..config.options import add_options
from ..config.sweep import MAX_STYLES, parse_range
from ..errors import UserError
from .common import check_generation, naming, open_pipeline, read_styles
from .generate import CALL, STYLE

# The strengths of a style given without its own: 0 to twice the default style scale, five values.
DEFAULT_STRENGTHS = f"0:{2 * GENERATE.style_scale:g}:5"
SWEEP_OPTIONS = (
    *MODEL_OPTIONS,
    "guidance_scale",
    "style_start_fraction",
    "style_end",
    "style_interval",
    "style_tolerance",
    "style_reuse",
    "num_inference_steps",
    "negative_prompt",
    "height",
    "width",
    "guidance_rescale",
)


def sweep_parser(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="a strength sweep of one style, or a blend grid of two, with labelled axes",
        description=run_sweep.__doc__,
    )
    p.add_argument("prompt", nargs="?", help='e.g. "a photo of a cat" (or --prompts-file)')
    p.add_argument("--prompts-file", help="text file, one prompt per line (# comments): one grid panel each")
    p.add_argument(
        "--seeds",
        default="0",
        help="seeds, e.g. 0-3 or 0,5,9: one grid panel per prompt and seed (default: %(default)s)",
    )
    p.add_argument(
        "--style-file",
        "-s",
        action="append",
        default=[],
        metavar="FILE[=RANGE]",
        help="style file and its style guidance strengths, START:STOP:COUNT or A,B,C (default "
        f"{DEFAULT_STRENGTHS}); one file: a strength sweep, two or {MAX_STYLES}: a blend grid",
    )
    p.add_argument(
        "--lora-scales",
        metavar="RANGE",
        help="strength sweep: add the LoRA-scale baseline row at these scales (as many as the strengths), e.g. 0:1.5:5",
    )
    p.add_argument(
        "--cells-per-call",
        type=int,
        help="grid cells drawn by one batched call (default: a grid row; 1: cell by cell, least memory)",
    )
    naming(p, "the axis titles show it")
    add_options(p, GenerateConfig, SWEEP_OPTIONS)
    p.add_argument(
        "--output", "-o", default="sweep.png", help="grid PNG; the GIF and JSON get its stem (default: %(default)s)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _read_ranges(args) -> tuple[list[str], list[tuple[float, ...]], tuple[float, ...] | None]:
    """--style-file FILE[=RANGE] split and parsed: (files, strengths of each, LoRA scales or None)."""
    if not args.style_file:
        raise UserError("give one style with --style-file FILE[=RANGE] for a strength sweep, or two for a blend grid.")
    if len(args.style_file) > MAX_STYLES:
        raise UserError(f"a blend grid takes at most {MAX_STYLES} styles; got {len(args.style_file)} --style-file.")
    files, ranges = [], []
    for given in args.style_file:
        path, equals, text = given.partition("=")
        files.append(path)
        ranges.append(parse_range(text if equals else DEFAULT_STRENGTHS, f"the strengths of '{path}'"))
    lora = None if args.lora_scales is None else parse_range(args.lora_scales, "--lora-scales")
    return files, ranges, lora


def run_sweep(args) -> None:
    """Draw one style at several style guidance strengths (paper Eq. 10), optionally above the LoRA-scale baseline,
    or blend two or three styles over a grid of strengths (Eq. 11), from the same seed(s); write a labelled PNG
    grid, a GIF of a strength sweep and a JSON file with every setting."""
    from ..config.checks import check_number
    from ..config.sweep import MAX_CELLS, check_grid
    from ..files.sweep_files import check_outputs
    from .batch import parse_seeds, read_prompts

    files, ranges, lora = _read_ranges(args)
    check_grid(dict(enumerate(ranges)), lora)
    if (args.prompt is None) == (args.prompts_file is None):
        raise UserError(
            'give a prompt, e.g. paircustom sweep "a photo of a cat" -s style.safetensors, or '
            "--prompts-file FILE, not both."
        )
    prompts = [args.prompt] if args.prompts_file is None else read_prompts(args.prompts_file)
    seeds = parse_seeds(args.seeds)
    args.style_file, args.lora_scale, args.controlnet = files, None, None
    styles, names, _, config = read_styles(args)
    plan = check_generation(
        config.model,
        prompts,
        list(zip(files, ranges)),
        args.suffix,
        None,
        **config.values(STYLE),
        guidance_scale=config.guidance_scale,
        steps=config.num_inference_steps,
        height=config.height,
        width=config.width,
        seed=seeds[0],
        num_images=1,
    )
    if plan is not None and plan.family in ("sd3", "flux"):
        raise UserError("sweeps of SD3 and Flux models are not supported yet; use an SD or SDXL model.")
    check_number("--cells-per-call", args.cells_per_call, 1, MAX_CELLS, integer=True, hint="; 1 draws cell by cell")
    outputs = check_outputs(args.output, len(files) == 1, args.overwrite)  # before the model loads
    pipe, _, styles_used = open_pipeline(args, config, config.device, styles, names)
    call = config.values(tuple(name for name in CALL + STYLE if name not in ("prompt_2", "negative_prompt_2")))
    result = pipe.sweep(prompts, dict(zip(names, ranges)), seeds, lora, args.cells_per_call, **call)
    extra = {
        "model": config.model,
        "device": config.device,
        "dtype": config.dtype,
        "styles": {
            name: {"file": styles_used[name]["file"], "strengths": list(values)} for name, values in zip(names, ranges)
        },
    }
    for path in result.save(outputs["grid"], args.overwrite, extra):
        print(f"wrote {Path(path)}")
