"""Style guidance (paper Eqs. 9-11): identities, batching, composition, and loading style files."""

import copy

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

from paircustom.adapters.layers import peft_routing
from paircustom.bench.reference import per_term
from paircustom.errors import UserError
from paircustom.sampling.pipeline import StyleGuidedPipeline
from paircustom.tiny.unet import build_tiny_pipeline
from tests.conftest import same_state

STEPS = 4
SIZE = dict(height=32, width=32)
TOLERANCE = 1e-4


def _guided(family, style_files, names=("art",)):
    pipe = StyleGuidedPipeline(build_tiny_pipeline(family))
    for name in names:
        pipe.load_style(style_files[family], name=name)
    return pipe


@pytest.mark.parametrize(
    "family, scheduler", [("sd", None), ("sdxl", None), ("sd", "sd1-pndm"), ("sdxl", "sdxl-euler")]
)
def test_style_scale_zero_reproduces_the_base_pipeline(family, scheduler, style_files):
    base = build_tiny_pipeline(family, scheduler=scheduler)
    base.set_progress_bar_config(disable=True)
    expected = base(
        "a photo of a cat",
        num_inference_steps=STEPS,
        guidance_scale=5.0,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
        **SIZE,
    ).images
    guided = StyleGuidedPipeline(base)
    guided.load_style(style_files[family], name="art")
    got = guided(
        "a photo of a cat", styles={"art": 0.0}, num_inference_steps=STEPS, output_type="np", seed=0, **SIZE
    ).images
    assert abs(got - expected).max() < TOLERANCE, f"max pixel difference {abs(got - expected).max()}"


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_default_size_is_the_wrapped_pipelines(family):
    """Without height and width both draw unet.sample_size * vae_scale_factor pixels, diffusers' default."""
    base = build_tiny_pipeline(family)
    base.set_progress_bar_config(disable=True)
    expected = base("a photo of a cat", num_inference_steps=1, output_type="np").images
    got = StyleGuidedPipeline(base)("a photo of a cat", styles={}, num_inference_steps=1, output_type="np").images
    assert got.shape == expected.shape, f"{family}: default image {got.shape}, diffusers draws {expected.shape}"


@pytest.mark.parametrize(
    "options, refused",
    [
        (dict(guidance_rescale=1.0), False),
        (dict(guidance_rescale=1.01), True),
        (dict(guidance_rescale=-0.01), True),
        (dict(denoising_end=1.0), False),
        (dict(denoising_end=0.0), True),
        (dict(denoising_end=1.01), True),
    ],
)
def test_rescale_and_denoising_end_bounds(options, refused, style_files):
    """guidance_rescale in [0, 1] and denoising_end in (0, 1], the ends included or not as diffusers has them."""
    guided = _guided("sd", style_files)
    call = lambda: guided(
        "a cat",
        styles={"art": 1.0},
        num_inference_steps=2,
        output_type="latent",  # noqa: E731
        seed=0,
        **SIZE,
        **options,
    )
    if refused:
        with pytest.raises(UserError, match="guidance_rescale must lie in"):
            call()
    else:
        assert torch.isfinite(call().images).all()


# 4 Euler steps run at t = 751, 501, 251, 1: denoising_end 0.499 cuts at t = round(1000 - 499) = 501, which
# diffusers keeps (t >= the cut-off)
@pytest.mark.parametrize(
    "extra",
    [
        dict(guidance_scale=7.0, guidance_rescale=0.7),
        dict(denoising_end=0.6),
        dict(denoising_end=0.499),
        dict(prompt_2="an oil painting", negative_prompt="blurry", negative_prompt_2="dark"),
    ],
    ids=["rescale", "denoising_end", "denoising_end_at_a_step", "prompt_2"],
)
def test_diffusers_call_arguments_match_the_sdxl_pipeline(extra, style_files):
    """With no style term, our call reproduces StableDiffusionXLPipeline given the same diffusers arguments."""
    base = build_tiny_pipeline("sdxl", scheduler="sdxl-euler")
    base.set_progress_bar_config(disable=True)
    args = dict(num_inference_steps=STEPS, output_type="latent", **SIZE, **extra)
    expected = base("a photo of a cat", generator=torch.Generator().manual_seed(0), **args).images
    guided = StyleGuidedPipeline(base)
    guided.load_style(style_files["sdxl"], name="art")
    got = guided("a photo of a cat", styles={"art": 0.0}, seed=0, **args).images
    assert (got - expected).abs().max() < TOLERANCE, f"{extra}: max latent difference {(got - expected).abs().max()}"
    plain = guided(
        "a photo of a cat", styles={}, seed=0, num_inference_steps=STEPS, output_type="latent", **SIZE
    ).images
    assert (got - plain).abs().max() > 1e-3, f"{extra} changed nothing"


def test_callback_on_step_end_sees_every_step_and_may_replace_latents(style_files):
    guided = _guided("sd", style_files)
    seen = []

    def callback(pipe, i, t, tensors):
        seen.append(i)
        return {"latents": torch.zeros_like(tensors["latents"])} if i == STEPS - 1 else {}

    out = guided(
        "a cat",
        styles={"art": 2.0},
        num_inference_steps=STEPS,
        output_type="latent",
        seed=0,
        callback_on_step_end=callback,
        **SIZE,
    ).images
    assert seen == list(range(STEPS)) and out.abs().max() == 0


def test_prompt_2_is_refused_on_sd(style_files):
    from paircustom.errors import UserError

    with pytest.raises(UserError, match="second text encoder"):
        _guided("sd", style_files)("a cat", prompt_2="a dog", num_inference_steps=1, **SIZE)


@pytest.mark.parametrize("scheduler", ["sd1-pndm", "sdxl-euler"])
def test_generation_leaves_the_pipelines_own_scheduler_alone(scheduler, style_files):
    """Guided calls sample on a private copy: a preview inside training, or a notebook, keeps the user's state."""
    family = "sdxl" if scheduler.startswith("sdxl") else "sd"
    guided = StyleGuidedPipeline(build_tiny_pipeline(family, scheduler=scheduler))
    guided.pipe.set_progress_bar_config(disable=True)
    guided.load_style(style_files[family], name="art")
    before = copy.deepcopy(vars(guided.pipe.scheduler))
    guided("a photo of a cat", styles={"art": 2.0}, num_inference_steps=3, output_type="latent", seed=0, **SIZE)
    after = vars(guided.pipe.scheduler)
    changed = [key for key in before if not same_state(before[key], after[key])]
    assert not changed, f"generation changed the pipeline's {scheduler} scheduler state {changed}"


def _reference_cfg(pipe, prompt, uncond_adapter, cond_adapter, cond_prompt, scale, seed=0):
    """Plain CFG written out: e_u(∅) on one adapter, e_c(cond_prompt) on another (SD only)."""
    pipe.unet.enable_lora()  # StyleGuidedPipeline keeps loaded styles off outside its own calls
    pipe.scheduler.set_timesteps(STEPS)
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(seed))
    uncond = pipe.encode_prompt([""], "cpu", 1, False)[0]
    cond = pipe.encode_prompt([cond_prompt], "cpu", 1, False)[0]
    for t in pipe.scheduler.timesteps:
        with peft_routing(pipe.unet, [uncond_adapter]):
            e_u = pipe.unet(latents, t, uncond).sample
        with peft_routing(pipe.unet, [cond_adapter]):
            e_c = pipe.unet(latents, t, cond).sample
        latents = pipe.scheduler.step(e_u + scale * (e_c - e_u), t, latents).prev_sample
    pipe.unet.disable_lora()
    return latents


def test_style_scale_equal_to_cfg_is_cfg_towards_the_styled_prediction(style_files):
    """Appendix identity: with λ_s = λ_cfg, eps = e0(∅) + λ (e_s(c_s) − e0(∅))."""
    guided = _guided("sd", style_files)
    scale = 4.0
    got = guided(
        "a photo of a cat",
        styles={"art": scale},
        guidance_scale=scale,
        style_start_fraction=0.0,
        num_inference_steps=STEPS,
        output_type="latent",
        seed=0,
        **SIZE,
    ).images
    expected = _reference_cfg(
        guided.pipe, "a photo of a cat", None, "art", "a photo of a cat" + guided.suffixes["art"], scale
    )
    assert (got - expected).abs().max() < TOLERANCE


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_batched_equals_one_call_per_term(family, style_files):
    guided = _guided(family, style_files, names=("a", "b"))
    args = dict(
        styles={"a": 3.0, "b": -1.5},
        num_inference_steps=STEPS,
        output_type="latent",
        seed=0,
        num_images_per_prompt=2,
        **SIZE,
    )
    batched = guided(["a photo of a cat", "a dog"], **args).images
    separate = per_term(guided)(["a photo of a cat", "a dog"], **args).images  # the benchmark's reference
    assert batched.shape == (4, 4, 16, 16)
    assert (batched - separate).abs().max() < TOLERANCE


def test_several_styles_compose_as_a_sum(style_files):
    """One DDIM step is linear in eps, so the style terms' effects on it add up (Eq. 11)."""
    guided = _guided("sd", style_files, names=("a", "b"))
    one_step = lambda styles: (
        guided(
            "a photo of a cat",
            styles=styles,
            style_start_fraction=0.0,
            num_inference_steps=1,  # noqa: E731
            output_type="latent",
            seed=0,
            **SIZE,
        ).images
    )
    none, a, b, both = one_step({}), one_step({"a": 2.0}), one_step({"b": -1.0}), one_step({"a": 2.0, "b": -1.0})
    assert (a - none).abs().max() > 1e-3, "the style term had no effect"
    assert ((both - none) - ((a - none) + (b - none))).abs().max() < TOLERANCE


def test_style_start_delays_the_style_term(style_files):
    guided = _guided("sd", style_files)
    args = dict(num_inference_steps=STEPS, output_type="latent", seed=0, **SIZE)
    base = guided("a photo of a cat", styles={}, **args).images
    never = guided("a photo of a cat", styles={"art": 3.0}, style_start_fraction=1.0, **args).images
    early = guided("a photo of a cat", styles={"art": 3.0}, style_start_fraction=0.0, **args).images
    assert (never - base).abs().max() < TOLERANCE
    assert (early - base).abs().max() > 1e-3


def test_the_wrapped_pipeline_stays_the_base_model_outside_our_calls(style_files):
    base = build_tiny_pipeline("sd")
    base.set_progress_bar_config(disable=True)

    def plain():
        return base(
            "a cat", num_inference_steps=2, output_type="latent", generator=torch.Generator().manual_seed(0), **SIZE
        ).images

    before = plain()
    guided = StyleGuidedPipeline(base)
    guided.load_style(style_files["sd"], name="art")
    assert torch.equal(plain(), before), "after load_style the user's own pipeline runs with the style"
    args = dict(num_inference_steps=2, output_type="latent", seed=0, style_start_fraction=0.0, **SIZE)
    styled, unstyled = guided("a cat", styles={"art": 3.0}, **args).images, guided("a cat", styles={}, **args).images
    assert (styled - unstyled).abs().max() > 1e-3, "inside our call the style must act"
    guided.lora_scale("a cat", "art", 1.0, num_inference_steps=2, output_type="latent", seed=0, **SIZE)
    assert torch.equal(plain(), before), "after a guided call the user's own pipeline runs with the style"


def test_style_file_loads_with_plain_diffusers(style_files):
    pipe = build_tiny_pipeline("sd")
    before = pipe(
        "a cat", num_inference_steps=2, output_type="latent", generator=torch.Generator().manual_seed(0), **SIZE
    ).images
    pipe.load_lora_weights(str(style_files["sd"]), adapter_name="art")
    after = pipe(
        "a cat", num_inference_steps=2, output_type="latent", generator=torch.Generator().manual_seed(0), **SIZE
    ).images
    assert (after - before).abs().max() > 1e-4, "loading the LoRA changed nothing"
    tensors = load_file(str(style_files["sd"]))
    key = next(k for k in tensors if k.endswith("attn2.to_k.lora_B.weight"))
    layer = pipe.unet.get_submodule(key[len("unet.") : -len(".lora_B.weight")])
    assert torch.allclose(layer.lora_B["art"].weight, tensors[key])
    assert layer.scaling["art"] == 1.0


def test_lora_scale_baseline_zero_is_base_model_with_style_prompt(style_files):
    guided = _guided("sd", style_files)
    args = dict(num_inference_steps=STEPS, output_type="latent", seed=0, **SIZE)
    baseline = guided.lora_scale("a photo of a cat", "art", 0.0, **args).images
    plain = guided("a photo of a cat" + guided.suffixes["art"], styles={}, **args).images
    assert (baseline - plain).abs().max() < TOLERANCE
    full = guided.lora_scale("a photo of a cat", "art", 1.0, **args).images
    assert (full - plain).abs().max() > 1e-3


def test_output_types_match_the_wrapped_pipeline(style_files):
    guided = _guided("sd", style_files)
    out = guided("a cat", num_inference_steps=2, seed=0, **SIZE)
    assert type(out).__name__ == "StableDiffusionPipelineOutput" and out.images[0].size == (32, 32)
    assert isinstance(guided.pipe, StableDiffusionPipeline)
