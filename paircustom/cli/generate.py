"""``paircustom generate``: its options, the checks made before the model loads, and the images it writes.
The sampling options are the fields of ``GenerateConfig``; the rest name inputs and
outputs.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

from .. import __version__, distributed
from ..config.generate import GENERATE_OPTIONS, GenerateConfig
from ..config.validate import check_prompts
from ..errors import UserError
from .common import check_family_options, check_generation, inputs, inputs_of, open_pipeline, read_control, read_styles
from .provenance import model_record
from .threads import threads_for

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
    inputs(p, GENERATE_OPTIONS)


def run_generate(args) -> None:
    """Generate with style guidance (paper Eq. 10-11): base CFG plus, for each style, scale x (styled prediction -
    base prediction)."""
    from ..files.images import check_writable
    from ..files.safe_outputs import OutputLock, check_not_input

    styles, names, metadata, config = read_styles(args)
    control_image = read_control(args, config)
    work = _generation_jobs(args, config)  # None: one prompt, --num-images images
    prompts = check_prompts([args.prompt] if work is None else list(dict.fromkeys(job.prompt for job in work)))
    plan = _checked_inputs(args, config, styles, metadata, prompts)
    flow = check_family_options(args, config, plan, metadata)
    device = distributed.process_device(config.device)
    paths, compares = _output_paths(args, config, work)
    written = paths + (compares if args.compare else [])
    for path in written:
        check_writable(path, args.overwrite)  # refuse before any work is done
    check_not_input(written, inputs_of(args, styles))
    state = None
    if distributed.world_size() > 1:
        from accelerate import PartialState

        state = PartialState(cpu=device == "cpu")
        state.wait_for_everyone()  # every process has checked the outputs before any is written
    recheck = lambda: [check_writable(path, args.overwrite) for path in written]  # under the lock
    # one run, one lock: under several processes the main process holds it for all of them
    lock = OutputLock(written, recheck) if state is None or state.is_main_process else nullcontext()
    with lock, threads_for(args.threads, config.model):
        if state is not None:
            state.wait_for_everyone()  # the lock is held before any process writes
        _generate(args, config, device, styles, names, flow, control_image, work, paths, compares, state)


def _generate(args, config, device, styles, names, flow, control_image, work, paths, compares, state) -> None:
    """The drawing half of ``run_generate``, under the lock of its outputs."""
    pipe, scales, files = open_pipeline(args, config, device, styles, names)
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


def _checked_inputs(args, config: GenerateConfig, styles, metadata, prompts: list[str]):
    """The settings checked against each other and the model's config files, before it loads; the model's plan."""
    if (config.prompt_2 or config.negative_prompt_2) and {m.family for m in metadata if m} == {"sd"}:
        raise UserError(
            "--prompt-2 and --negative-prompt-2 feed SDXL's second text encoder; these styles are for "
            "an SD model with one text encoder, so drop them."
        )
    if not 0.0 <= config.guidance_rescale <= 1.0:
        raise UserError(f"--guidance-rescale must lie in [0, 1]; got {config.guidance_rescale}.")
    return check_generation(
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


def _output_paths(args, config: GenerateConfig, work) -> tuple[list[Path], list[Path]]:
    """(the images, the comparison sheets) a generate run writes: one per job, or --num-images of one prompt."""
    if work is not None:
        return [job.path for job in work], [job.compare for job in work]
    output, count = Path(args.output), config.num_images_per_prompt
    paths = [output] if count == 1 else [output.with_name(f"{output.stem}-{i}{output.suffix}") for i in range(count)]
    return paths, [output.with_name(f"{output.stem}-compare{output.suffix}")]


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
        "model": model_record(config.model, args.record_paths),
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
