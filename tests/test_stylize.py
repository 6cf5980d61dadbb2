"""Stylising existing images (paircustom.sampling.stylize): strength 0, DDIM inversion round trips, step batching."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from PIL import Image

from paircustom.errors import UserError
from paircustom.files.images import prepare
from paircustom.models.latents import decode, encode
from paircustom.sampling.pipeline import StyleGuidedPipeline
from paircustom.tiny.unet import build_tiny_pipeline

SIZE = 32  # pixels; the tiny VAE makes 16x16 latents
PROMPT = "a photo of a dog"


def photo(width=48, height=40, seed=0) -> Image.Image:
    """A random non-square picture, so the training resize and centre crop matter."""
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8))


def guided(family, style_files=None, scheduler=None):
    pipe = StyleGuidedPipeline(build_tiny_pipeline(family, scheduler=scheduler))
    if style_files is not None:
        pipe.load_style(style_files[family], name="art")
    return pipe


@torch.no_grad()
def z0_of(pipe, image):
    return encode(pipe.pipe, prepare(image, SIZE).pixels[None])


@pytest.mark.parametrize("normalised", [False, True])
def test_encode_and_decode_follow_the_latent_normalisation(normalised):
    """z = (E(x).mean - m) s / sigma and D(z sigma / s + m), computed here; m, sigma from a VAE that declares
    them (as Flux-era and some SDXL VAEs do), else 0 and 1; s = 0.18215, so a lost factor shows."""
    pipe = build_tiny_pipeline("sd")
    m, sigma = torch.tensor([0.1, -0.2, 0.3, 0.05]), torch.tensor([0.5, 2.0, 1.5, 0.8])
    if normalised:
        pipe.vae.register_to_config(latents_mean=m.tolist(), latents_std=sigma.tolist())
    else:
        m, sigma = torch.zeros(4), torch.ones(4)
    m, sigma, s = m.view(1, -1, 1, 1), sigma.view(1, -1, 1, 1), pipe.vae.config.scaling_factor
    x = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        raw = pipe.vae.encode(x).latent_dist.mean  # (1, 4, 16, 16)
        z = encode(pipe, x)
        assert torch.allclose(z, (raw - m) * s / sigma, atol=1e-5), "encode is not (E(x) - m) s / sigma"
        image, expected = decode(pipe, z), pipe.vae.decode(raw).sample
    assert torch.allclose(image, expected, atol=1e-4), (
        f"decode is not D(z sigma / s + m): {(image - expected).abs().max()}"
    )


@pytest.mark.parametrize("family, scheduler", [("sd", None), ("sdxl", "sdxl-euler")])
@pytest.mark.parametrize("method", ["sdedit", "inversion"])
def test_strength_zero_returns_the_image_through_the_vae(family, scheduler, method, style_files):
    pipe = guided(family, style_files, scheduler)
    image = photo()
    got = pipe.stylize(
        image, styles={"art": 3.0}, strength=0.0, method=method, output_type="pt", resolution=SIZE
    ).images
    with torch.no_grad():
        round_trip = decode(pipe.pipe, z0_of(pipe, image))
    expected = pipe.pipe.image_processor.postprocess(round_trip, output_type="pt")
    assert got.shape == (1, 3, SIZE, SIZE)
    assert (got - expected).abs().max() <= 1e-5, f"{method}: {(got - expected).abs().max()} from the VAE round trip"
    moved = pipe.stylize(
        image,
        styles={"art": 3.0},
        strength=0.5,
        method=method,
        output_type="pt",
        resolution=SIZE,
        num_inference_steps=4,
        seed=0,
    ).images
    assert (moved - expected).abs().max() > 1e-2, f"{method}: strength 0.5 changed nothing"


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_default_resolution_is_the_models_size(family, style_files):
    pipe = guided(family, style_files)
    got = pipe.stylize(photo(), styles={"art": 3.0}, strength=0.0, output_type="pt").images
    side = pipe.pipe.unet.config.sample_size * pipe.pipe.vae_scale_factor
    assert got.shape == (1, 3, side, side), f"{family}: {tuple(got.shape)}, the model's size is {side}"


def _x_independent_unet(pipe):
    """Make the predicted noise a function of t only: then DDIM inversion is exactly invertible (pure algebra).

    A v-prediction model returns v = (eps - sqrt(1 - a_t) x) / sqrt(a_t) for that eps.
    """
    predict, alphas = pipe._predict, pipe.pipe.scheduler.alphas_cumprod
    v_model = pipe.pipe.scheduler.config.prediction_type == "v_prediction"

    def fake(model_input, t, cond, names, control=None):
        out = predict(model_input, t, cond, names, control)
        eps = torch.sin(torch.arange(out[0].numel(), dtype=out.dtype).view(out[0].shape) * 0.1 + float(t) * 0.01)
        if not v_model:
            return eps.expand_as(out).clone()
        a = alphas[int(t)].to(out.dtype)
        return (eps - (1 - a).sqrt() * model_input) / a.sqrt()

    pipe._predict = fake


@pytest.mark.parametrize(
    "family, scheduler", [("sd", None), ("sd", "sd2-v"), ("sdxl", "sdxl-euler"), ("sd", "ddim-defaults")]
)
def test_inversion_then_plain_ddim_is_exact_when_the_prediction_ignores_x(family, scheduler):
    """ "ddim-defaults": DDIM's own defaults (steps_offset 0, set_alpha_to_one): the steps then land on t = 0, whose
    a_t is the table's while the step below it has a_t = 1."""
    if scheduler == "ddim-defaults":
        pipe = guided(family)
        pipe.pipe.scheduler = DDIMScheduler.from_config(
            pipe.pipe.scheduler.config, steps_offset=0, set_alpha_to_one=True
        )
    else:
        pipe = guided(family, scheduler=scheduler)
    _x_independent_unet(pipe)
    image = photo()
    got = pipe.stylize(
        image,
        PROMPT,
        styles={},
        strength=1.0,
        method="inversion",
        guidance_scale=1.0,
        num_inference_steps=10,
        output_type="latent",
        resolution=SIZE,
    ).images
    error = (got - z0_of(pipe, image)).abs().max()
    assert error <= 1e-5, f"{family}/{scheduler}: inversion and DDIM are not inverse maps (error {error})"


# Measured on these tiny random models (max |z - z0| over the latent, latents of size ~0.16, strength 0.5):
#   plain inversion: 0.92 (10 steps), 0.42 (50), 0.16 (200) -- a random UNet is far from linear in x;
#   3 fixed-point refinements: 0.84 (10), 1.0e-2 (50), 9.3e-5 (200).
@pytest.mark.parametrize("family, scheduler", [("sd", None), ("sdxl", "sdxl-euler")])
def test_inversion_then_plain_denoising_reconstructs_the_latents(family, scheduler):
    pipe = guided(family, scheduler=scheduler)
    image = photo()
    z0 = z0_of(pipe, image)

    def error(steps, refine):
        got = pipe.stylize(
            image,
            PROMPT,
            styles={},
            strength=0.5,
            method="inversion",
            guidance_scale=1.0,
            num_inference_steps=steps,
            output_type="latent",
            resolution=SIZE,
            inversion_refine=refine,
        ).images
        return float((got - z0).abs().max())

    coarse, fine = error(10, 0), error(200, 0)
    assert fine < 0.6 * coarse, f"plain inversion error does not fall with the step size: {coarse} -> {fine}"
    refined = error(200, 3)
    tolerance = 0.2 / 200  # ~1/steps: 1e-3 at 200 steps (measured 9e-5 on sd)
    assert refined <= tolerance, f"refined inversion, 200 steps: error {refined} > {tolerance}"


@pytest.mark.parametrize("family, scheduler", [("sd", None), ("sd", "sd2-v"), ("sdxl", "sdxl-euler")])
def test_negative_prompt_inversion_cancels_the_cfg_term(family, scheduler, style_files):
    """n = c: e0(c) + 5 (e0(c) - e0(c)) + 3 (e_art(c + suffix) - e0(c)) equals guidance 1 with the empty negative
    prompt, e0(∅) + 1 (e0(c) - e0(∅)) + 3 (...), with and without the style term."""
    pipe = guided(family, style_files, scheduler)
    args = dict(strength=0.6, method="inversion", num_inference_steps=10, output_type="latent", resolution=SIZE, seed=0)
    for styles in ({}, {"art": 3.0}):
        cancelled = pipe.stylize(
            photo(), PROMPT, styles, guidance_scale=5.0, negative_prompt_inversion=True, **args
        ).images
        unguided = pipe.stylize(photo(), PROMPT, styles, guidance_scale=1.0, **args).images
        guided_by_cfg = pipe.stylize(photo(), PROMPT, styles, guidance_scale=5.0, **args).images
        gap = float((cancelled - unguided).abs().max())
        assert gap <= 1e-5, f"{styles}: negative-prompt inversion at CFG 5 differs from guidance 1 by {gap}"
        assert (guided_by_cfg - unguided).abs().max() > 1e-3, "CFG 5 with the empty prompt changed nothing here"


@pytest.mark.parametrize("method, inversion_calls", [("sdedit", 0), ("inversion", 5)])
def test_each_step_is_one_batched_call_and_style_start_counts_denoising_steps(method, inversion_calls, style_files):
    pipe = guided("sd", style_files)
    batches = []
    hook = pipe.pipe.unet.register_forward_pre_hook(lambda _m, args: batches.append(len(args[0])))
    try:
        pipe.stylize(
            photo(),
            styles={"art": 3.0},
            strength=0.5,
            method=method,
            num_inference_steps=10,
            style_start_fraction=0.4,
            output_type="latent",
            resolution=SIZE,
            seed=0,
        )
    finally:
        hook.remove()
    # 5 of 10 steps are redone; style terms from round(0.4 * 5) = 2 of them: rows (∅, c) then (∅, c, styled)
    assert batches == [1] * inversion_calls + [2, 2, 3, 3, 3], batches


def test_prompt_defaults_to_the_style_files_content_prompt_and_seeds_repeat(style_files):
    pipe = guided("sdxl", style_files, "sdxl-euler")
    args = dict(styles={"art": 3.0}, strength=0.6, num_inference_steps=5, output_type="latent", resolution=SIZE, seed=3)
    default = pipe.stylize(photo(), **args).images
    assert pipe.content_prompts["art"] == "a photo of a sbu dog"
    explicit = pipe.stylize(photo(), "a photo of a sbu dog", **args).images
    other = pipe.stylize(photo(), "a photo of a cat", **args).images
    assert torch.equal(default, explicit), "the default prompt is not the style file's content prompt"
    assert (default - other).abs().max() > 1e-4, "the prompt changed nothing"


@pytest.mark.parametrize(
    "settings, match",
    [
        (dict(strength=1.5), "strength must lie"),
        (dict(strength=float("nan")), "strength must be a finite"),
        (dict(method="ddpm"), "sdedit or inversion"),
        (dict(inversion_refine=-1), "inversion_refine must lie"),
        (dict(negative_prompt_inversion=True), "needs the inversion method"),
        (dict(method="inversion", negative_prompt_inversion=True, negative_prompt="blurry"), "drop --negative-prompt"),
    ],
)
def test_bad_settings_are_one_sentence(settings, match, style_files):
    with pytest.raises(UserError, match=match):
        guided("sd", style_files).stylize(photo(), **settings)
