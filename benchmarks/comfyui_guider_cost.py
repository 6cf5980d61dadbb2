"""What style guidance costs in ComfyUI, against plain CFG, and against paircustom's own batched pipeline.

    python -m benchmarks.comfyui_guider_cost [--comfyui ../shared/comfyui] [--steps 20] [--repeats 5]
                                             [--out benchmarks/results]        (in ComfyUI's environment)

On the embedded shapes model, one CPU thread, 64x64 images: the median wall time of one whole sampling run
with ComfyUI's CFGGuider and with the Style Guider at 1 and 2 styles (SamplerCustomAdvanced, euler, "simple"),
and the same three settings in ``StyleGuidedPipeline`` (Euler, one batched UNet call per step): the UNet calls
and rows of one run (counted, so independent of the machine's load) and the time, also as a ratio to its own
side's plain CFG, from one run.  The styles are quick 20-step trainings of the
demo's bundled pair (their strength does not change the cost).  Writes ``comfyui-guider-cost.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a red circle on a black background"


def _measure(run, unet, repeats: int) -> tuple[float, int, int]:
    """(median seconds, UNet calls, UNet rows) of one sampling run; calls and rows counted on the first run."""
    counts = [0, 0]

    def count(module, args, kwargs):
        counts[0] += 1
        counts[1] += len(args[0] if args else kwargs["sample"])

    hook = unet.register_forward_pre_hook(count, with_kwargs=True)
    times = []
    for repeat in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        if repeat == 0:
            hook.remove()
    return statistics.median(times), counts[0], counts[1]


def train_example(output: Path, steps: int = 20, seed: int = 0) -> Path:
    """A quick style of the demo's bundled pair on the shapes model: pair training as 'paircustom demo' runs it,
    cut to ``steps`` (the ComfyUI tests use it too)."""
    from paircustom import train_pair
    from paircustom.demo import DemoConfig
    from paircustom.shapes.examples import example_config

    torch.set_num_threads(1)  # the tiny model trains fastest on one thread of a shared CPU
    config = example_config(DemoConfig().example, output, max_steps=steps, style_start_step=steps // 4, seed=seed,
                            overwrite=True, progress=False)  # fmt: skip
    return train_pair(config)


def comfy_times(comfyui: str, styles: list[Path], steps: int, repeats: int) -> dict[int, float]:
    sys.dont_write_bytecode = True  # leave the ComfyUI folder as it is
    sys.path.insert(0, comfyui)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.samplers
    import comfy.utils
    import nodes
    from comfy_extras.nodes_custom_sampler import (
        CFGGuider,
        Noise_RandomNoise,
        SamplerCustomAdvanced,
    )

    comfy.utils.PROGRESS_BAR_ENABLED = False
    assert asyncio.run(nodes.load_custom_node(str(ROOT / "integrations" / "comfyui")))
    mapping = nodes.NODE_CLASS_MAPPINGS
    model, clip, _ = mapping["PairCustomShapesModelLoader"]().load()
    negative = nodes.CLIPTextEncode().encode(clip, "")[0]
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", steps).cpu()
    sampler = comfy.samplers.sampler_object("euler")
    times = {}
    for count in (0, 1, 2):
        chain = ()
        for path in styles[:count]:
            chain = mapping["PairCustomStyleLoader"]().load(model, str(path), 3.0, "", chain)[0]
        if count == 0:
            guider = CFGGuider().get_guider(model, nodes.CLIPTextEncode().encode(clip, PROMPT)[0], negative, 5.0)[0]
        else:
            styled, _ = mapping["PairCustomStylePrompt"]().encode(clip, PROMPT, chain)
            guider = mapping["PairCustomStyleGuider"]().get_guider(model, styled, negative, 5.0, 0.2, 1.0)[0]
        latent = {"samples": torch.zeros(1, 8, 16, 16)}
        times[count] = _measure(
            lambda g=guider, x=latent: SamplerCustomAdvanced().sample(Noise_RandomNoise(0), g, sampler, sigmas, x),
            model.model.diffusion_model.unet,
            repeats,
        )
    return times


def pipeline_times(styles: list[Path], steps: int, repeats: int) -> dict[int, float]:
    from diffusers import EulerDiscreteScheduler

    from paircustom import StyleGuidedPipeline

    pipe = StyleGuidedPipeline.from_pretrained("shapes")
    pipe.pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.pipe.scheduler.config)
    pipe.pipe.set_progress_bar_config(disable=True)
    names = [pipe.load_style(path, name=f"style{i}") for i, path in enumerate(styles)]
    return {
        count: _measure(
            lambda c=count: pipe(
                PROMPT, styles=dict.fromkeys(names[:c], 3.0), seed=0, num_inference_steps=steps, output_type="latent"
            ),
            pipe.pipe.unet,
            repeats,
        )
        for count in (0, 1, 2)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--comfyui", default=str(ROOT.parent / "shared" / "comfyui"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        styles = [train_example(Path(folder) / f"style{seed}.safetensors", seed=seed) for seed in (0, 1)]
        comfy, ours = (
            comfy_times(args.comfyui, styles, args.steps, args.repeats),
            pipeline_times(styles, args.steps, args.repeats),
        )
    rows = [
        (
            "| guidance | ComfyUI: UNet calls / rows | ComfyUI: s (ratio to its CFG) | StyleGuidedPipeline: "
            "UNet calls / rows | StyleGuidedPipeline: s (ratio to its CFG) |"
        ),
        "|---|---|---|---|---|",
    ]
    for count, label in ((0, "plain CFG"), (1, "1 style"), (2, "2 styles")):
        (c_time, c_calls, c_rows), (o_time, o_calls, o_rows) = comfy[count], ours[count]
        rows.append(
            f"| {label} | {c_calls} / {c_rows} | {c_time:.2f} ({c_time / comfy[0][0]:.2f}) | "
            f"{o_calls} / {o_rows} | {o_time:.2f} ({o_time / ours[0][0]:.2f}) |"
        )
    report = "\n".join(
        [
            "# Style guidance cost in ComfyUI",
            "",
            (
                f"Shapes model, 64x64, {args.steps} steps (style terms on the last 80%), one CPU thread, median of "
                f"{args.repeats} runs; `python -m benchmarks.comfyui_guider_cost --steps {args.steps} --repeats "
                f"{args.repeats}`."
            ),
            "",
            *rows,
            "",
        ]
    )
    print(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comfyui-guider-cost.md").write_text(report)


if __name__ == "__main__":
    main()
