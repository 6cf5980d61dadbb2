"""The ComfyUI node pack inside a real ComfyUI (imported in this process): style guidance in ComfyUI equals
``StyleGuidedPipeline`` on the same model, sampler, steps, noise and style file, on the embedded shapes model and
on a tiny SD 1.5 that ComfyUI's own loader detects; scale 0 is ComfyUI's plain CFG guider bit for bit; bad style
files give one sentence.  Runs in ComfyUI's environment (integrations/comfyui/env.sh); skips elsewhere.
"""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
from comfyui_helpers import (
    PACK,
    build_workflows,
    comfy_model_of,
    import_comfyui,
    install_copy,
    random_style,
    require_comfyui,
    tiny_sd_pipeline,
    train_shapes_style,
    with_family,
)

require_comfyui()

TOLERANCE = 1e-3  # max |latent difference| between ComfyUI and StyleGuidedPipeline (the bound)
PROMPT = "a red circle on a black background"
NODES = (
    "PairCustomShapesModelLoader",
    "PairCustomStyleLoader",
    "PairCustomStylePrompt",
    "PairCustomStyleGuider",
    "PairCustomStyleSampler",
)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    torch.set_num_threads(1)  # tiny models on a shared CPU: one thread is fastest
    return import_comfyui(install_copy(tmp_path_factory.mktemp("comfyui")))


@pytest.fixture(scope="module")
def shapes(comfy, tmp_path_factory):
    """The shapes model in ComfyUI and in paircustom, and a quickly trained style of the bundled pair."""
    from diffusers import EulerDiscreteScheduler

    from paircustom import StyleGuidedPipeline

    style = train_shapes_style(tmp_path_factory.mktemp("style") / "demo.safetensors")
    model, clip, _ = comfy.NODE_CLASS_MAPPINGS["PairCustomShapesModelLoader"]().load()
    pipe = StyleGuidedPipeline.from_pretrained("shapes")
    pipe.pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.pipe.scheduler.config)  # ComfyUI's "euler"
    return {"model": model, "clip": clip, "pipe": pipe, "styles": [style], "size": (16, 16), "channels": 8}


@pytest.fixture(scope="module")
def tiny_sd(comfy, tmp_path_factory):
    """A tiny SD 1.5 ComfyUI detects, the same weights in paircustom, two random style files for it."""
    from paircustom import StyleGuidedPipeline

    pipe = tiny_sd_pipeline()
    model = comfy_model_of(pipe.unet)
    assert type(model.model.model_config).__name__ == "SD15", "ComfyUI should detect the tiny UNet as SD 1.5"
    folder = tmp_path_factory.mktemp("tiny-styles")
    styles = [random_style(pipe.unet, folder / f"style{seed}.safetensors", seed=seed) for seed in (1, 2)]
    return {
        "model": model,
        "clip": None,
        "pipe": StyleGuidedPipeline(pipe),
        "styles": styles,
        "size": (8, 8),
        "channels": 4,
    }


def styled_for(comfy, setup, prompt: str, styles):
    """The Style Prompt node's output: through ComfyUI's CLIP where the model has one, else from the pipeline's
    own text encoder (the tiny SD has no ComfyUI text encoder)."""
    prompt_node = comfy.NODE_CLASS_MAPPINGS["PairCustomStylePrompt"]
    Styled = sys.modules[prompt_node.__module__].Styled  # the pack's class, from the module ComfyUI loaded
    if setup["clip"] is not None:
        styled, _ = prompt_node().encode(setup["clip"], prompt, styles)
        negative = comfy.CLIPTextEncode().encode(setup["clip"], "")[0]
        return styled, negative
    pipe = setup["pipe"].pipe
    cond, uncond = pipe.encode_prompt([prompt], "cpu", 1, True, None)
    branches = tuple(
        (style, [[pipe.encode_prompt([prompt + style.suffix], "cpu", 1, False)[0], {}]]) for style in styles
    )
    return Styled([[cond, {}]], branches), [[uncond, {}]]


def comfy_sample(comfy, setup, guider, sigmas, seed: int):
    """SamplerCustomAdvanced with euler, the given sigmas and ComfyUI's seeded noise; latents in the model's
    scaled space (as the pipeline returns them with output_type="latent")."""
    import comfy.samplers
    from comfy_extras.nodes_custom_sampler import (
        Noise_RandomNoise,
        SamplerCustomAdvanced,
    )

    latent = {"samples": torch.zeros(1, setup["channels"], *setup["size"])}
    out = SamplerCustomAdvanced().sample(
        Noise_RandomNoise(seed), guider, comfy.samplers.sampler_object("euler"), sigmas, latent
    )[0]["samples"]
    return out * setup["model"].model.latent_format.scale_factor


def pipeline_sample(setup, scheduler_sigmas, seed: int, **kwargs):
    """StyleGuidedPipeline from ComfyUI's initial latent: noise · sqrt(1 + σ0²) where ComfyUI starts at the
    model's largest noise level (its "max_denoise"), diffusers starts from latents · σ0."""
    from comfy_extras.nodes_custom_sampler import Noise_RandomNoise

    noise = Noise_RandomNoise(seed).generate_noise({"samples": torch.zeros(1, setup["channels"], *setup["size"])})
    sigma_0 = float(scheduler_sigmas[0])
    sigma_max = float(setup["model"].get_model_object("model_sampling").sigma_max)
    start = noise * math.sqrt(1 + sigma_0**2) if math.isclose(sigma_max, sigma_0, rel_tol=1e-5) else noise * sigma_0
    return setup["pipe"](PROMPT, latents=start / sigma_0, output_type="latent", **kwargs).images


def diffusers_sigmas(setup, steps: int):
    scheduler = setup["pipe"].pipe.scheduler.__class__.from_config(setup["pipe"].pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    return scheduler.sigmas.float()


# model, styles (file index -> scale), CFG, style window, steps, seed
PARITY_CASES = [
    pytest.param("shapes", {0: 3.0}, 5.0, (0.2, 1.0), 10, 0, id="shapes-one-style"),
    pytest.param("tiny_sd", {0: 3.0}, 5.0, (0.2, 1.0), 6, 1, id="sd15-one-style"),
    pytest.param("tiny_sd", {0: 2.0, 1: -1.0}, 7.5, (0.0, 0.5), 6, 2, id="sd15-two-styles-window"),
]


@pytest.mark.parametrize("which, scales, cfg, window, steps, seed", PARITY_CASES)
def test_guider_matches_pipeline(request, record_property, comfy, which, scales, cfg, window, steps, seed):
    setup = request.getfixturevalue(which)
    loader = comfy.NODE_CLASS_MAPPINGS["PairCustomStyleLoader"]()
    styles = ()
    for index, scale in scales.items():
        styles = loader.load(setup["model"], str(setup["styles"][index]), scale, "", styles)[0]
    styled, negative = styled_for(comfy, setup, PROMPT, styles)
    guider = comfy.NODE_CLASS_MAPPINGS["PairCustomStyleGuider"]().get_guider(
        setup["model"], styled, negative, cfg, *window
    )[0]
    sigmas = diffusers_sigmas(setup, steps)
    ours = comfy_sample(comfy, setup, guider, sigmas, seed)

    pipe = setup["pipe"]
    for index, style in zip(scales, styles):
        if style.name not in pipe.suffixes:
            pipe.load_style(setup["styles"][index], name=style.name)
    reference = pipeline_sample(
        setup,
        sigmas,
        seed,
        styles={s.name: s.scale for s in styles},
        guidance_scale=cfg,
        style_start_fraction=window[0],
        style_end=window[1],
        num_inference_steps=steps,
    )
    plain = pipeline_sample(setup, sigmas, seed, styles={}, guidance_scale=cfg, num_inference_steps=steps)
    difference = (ours - reference).abs().max().item()
    assert difference <= TOLERANCE, f"ComfyUI's style guidance differs from StyleGuidedPipeline by {difference:.2e}"
    effect = (reference - plain).abs().max().item()
    record_property("max_latent_difference", difference)  # pytest --junitxml=... keeps the numbers
    record_property("max_style_effect", effect)
    assert effect > 100 * TOLERANCE, f"the style terms move the latents by only {effect:.2e}; the check is too weak"


@pytest.mark.parametrize("which", ["shapes", "tiny_sd"])
def test_scale_zero_is_comfyui_cfg(request, comfy, which):
    """Scale 0 drops the style term: the result is ComfyUI's own CFGGuider's, exactly."""
    setup = request.getfixturevalue(which)
    styles = comfy.NODE_CLASS_MAPPINGS["PairCustomStyleLoader"]().load(
        setup["model"], str(setup["styles"][0]), 0.0, ""
    )[0]
    styled, negative = styled_for(comfy, setup, PROMPT, styles)
    ours = comfy.NODE_CLASS_MAPPINGS["PairCustomStyleGuider"]().get_guider(
        setup["model"], styled, negative, 5.0, 0.0, 1.0
    )[0]
    from comfy_extras.nodes_custom_sampler import CFGGuider

    plain = CFGGuider().get_guider(setup["model"], styled.positive, negative, 5.0)[0]
    sigmas = diffusers_sigmas(setup, 5)
    assert torch.equal(comfy_sample(comfy, setup, ours, sigmas, 3), comfy_sample(comfy, setup, plain, sigmas, 3))


def test_pack_registers_its_nodes(comfy):
    for name in NODES:
        node = comfy.NODE_CLASS_MAPPINGS[name]
        assert node.DESCRIPTION and name in comfy.NODE_DISPLAY_NAME_MAPPINGS, f"{name} lacks a description or a title"
        node.INPUT_TYPES()


def test_bad_style_files_give_one_sentence(comfy, shapes, tiny_sd, tmp_path):
    """A missing file fails ComfyUI's input validation; a file of another family, or of the same family but
    another model, fails the load; each with a sentence that names the problem and the fix."""
    from paircustom import UserError

    loader = comfy.NODE_CLASS_MAPPINGS["PairCustomStyleLoader"]
    missing = loader.VALIDATE_INPUTS(str(tmp_path / "nope.safetensors"), "")
    assert "does not exist" in missing and "paircustom train" in missing, missing
    assert loader.VALIDATE_INPUTS(str(shapes["styles"][0]), "") is True
    sdxl = with_family(shapes["styles"][0], tmp_path / "sdxl.safetensors", "sdxl")
    with pytest.raises(UserError, match=r"trained on a SDXL model .* but this model is SD 1.x/2.x"):
        loader().load(shapes["model"], str(sdxl), 3.0, "")
    other_model = r"does not fit this SD 1.x/2.x model: its layer \S+ is 320 -> 320 but the model's is .*; use the base"
    with pytest.raises(UserError, match=other_model):
        loader().load(shapes["model"], str(tiny_sd["styles"][0]), 3.0, "")


def test_example_workflows_are_current_and_complete(comfy):
    """The committed workflows are what build_workflows.py makes, and every node gets all its required inputs."""
    from comfy_extras import nodes_custom_sampler

    build = build_workflows()
    node_classes = {**comfy.NODE_CLASS_MAPPINGS, **nodes_custom_sampler.NODE_CLASS_MAPPINGS}
    for name, content in build.workflows(node_classes).items():
        assert json.loads((PACK / name).read_text()) == content, f"{name} is stale: run {PACK / 'build_workflows.py'}"
        if name.startswith("api_workflows/"):
            for node_id, node in content.items():
                required = node_classes[node["class_type"]].INPUT_TYPES().get("required", {})
                assert set(required) <= set(node["inputs"]), (
                    f"{name} node {node_id} lacks {set(required) - set(node['inputs'])}"
                )


def test_a_kohya_file_with_a_suffix_guides_as_our_file(comfy, tiny_sd, tmp_path):
    """Another tool's layout (kohya, as A1111 and ComfyUI write it) loads through the same reader as
    ``load_style``; without paircustom's metadata it needs the suffix, and then it guides exactly as our file."""
    from safetensors.torch import save_file

    from paircustom.files.layouts import to_kohya
    from paircustom.files.style_file import read_style

    ours = tiny_sd["styles"][0]
    tensors, header = to_kohya(read_style(ours).tensors, None, {})
    kohya = tmp_path / "kohya.safetensors"
    save_file(tensors, str(kohya), metadata=header)
    loader = comfy.NODE_CLASS_MAPPINGS["PairCustomStyleLoader"]
    assert "suffix=' in <style> style'" in loader.VALIDATE_INPUTS(str(kohya), "")
    suffix = read_style(ours).metadata.style_suffix
    sigmas = diffusers_sigmas(tiny_sd, 4)
    samples = []
    for path in (ours, kohya):
        styles = loader().load(tiny_sd["model"], str(path), 3.0, suffix)[0]
        assert styles[0].layers == len(tensors) // 3, "every LoRA layer of the file should patch the model"
        styled, negative = styled_for(comfy, tiny_sd, PROMPT, styles)
        guider = comfy.NODE_CLASS_MAPPINGS["PairCustomStyleGuider"]().get_guider(
            tiny_sd["model"], styled, negative, 5.0, 0.0, 1.0
        )[0]
        samples.append(comfy_sample(comfy, tiny_sd, guider, sigmas, 4))
    difference = (samples[0] - samples[1]).abs().max().item()
    assert difference <= 1e-5, f"the kohya copy guides differently from our file (by {difference:.2e})"
