"""Style guidance under a ControlNet (paircustom.sampling.control): residuals per row, one call per step, diffusers
parity."""

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline
from PIL import Image

from paircustom.bench.reference import per_term
from paircustom.errors import UserError
from paircustom.sampling.control import Control
from paircustom.sampling.pipeline import StyleGuidedPipeline
from paircustom.tiny.unet import build_tiny_pipeline

STEPS = 4
SIZE = dict(height=32, width=32)
PIPELINES = {"sd": StableDiffusionControlNetPipeline, "sdxl": StableDiffusionXLControlNetPipeline}
SCHEDULERS = {"sd": None, "sdxl": "sdxl-euler"}


def tiny_controlnet(unet, seed=1) -> ControlNetModel:
    """A ControlNet copied from the UNet; its zero-initialised output convolutions get small random weights,
    so its residuals are not zero."""
    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
    with torch.no_grad():
        for parameter in controlnet.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return controlnet


def control_image(seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8))


def controlled(family, style_files):
    pipe = build_tiny_pipeline(family, scheduler=SCHEDULERS[family])
    pipe.set_progress_bar_config(disable=True)
    guided = StyleGuidedPipeline(pipe, controlnet=tiny_controlnet(pipe.unet))
    guided.load_style(style_files[family], name="art")
    return guided


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_every_row_gets_the_residuals_of_a_plain_controlnet_call_once_per_step(family, style_files, monkeypatch):
    guided = controlled(family, style_files)
    calls = []
    residuals = Control.residuals

    def recording(self, model_input, t, cond):
        out = residuals(self, model_input, t, cond)
        calls.append((model_input.clone(), t, cond, self.image.clone(), out))
        return out

    monkeypatch.setattr(Control, "residuals", recording)
    guided(
        "a photo of a cat",
        styles={"art": 3.0},
        style_start_fraction=0.0,
        num_inference_steps=STEPS,
        seed=0,
        output_type="latent",
        control_image=control_image(),
        controlnet_conditioning_scale=0.8,
        **SIZE,
    )
    assert len(calls) == STEPS, f"{len(calls)} ControlNet calls for {STEPS} steps"
    worst = 0.0
    for model_input, t, cond, image, (down, mid) in calls:
        assert len(model_input) == 3, "the ControlNet did not see all rows (∅, c, styled) at once"
        for row in range(len(model_input)):
            one = cond.select([row])
            with torch.no_grad():
                plain_down, plain_mid = guided.pipe.controlnet(
                    model_input[row : row + 1],
                    t,
                    encoder_hidden_states=one.hidden,
                    controlnet_cond=image,
                    conditioning_scale=0.8,
                    added_cond_kwargs=one.added or None,
                    return_dict=False,
                )
            for ours, plain in zip([*down, mid], [*plain_down, plain_mid], strict=True):
                worst = max(worst, float((ours[row] - plain[0]).abs().max()))
    assert worst <= 1e-5, f"row residuals differ from a plain ControlNet call by {worst}"
    assert max(float(d.abs().max()) for d in calls[0][4][0]) > 1e-3, "the residuals are zero: the test shows nothing"


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_without_styles_it_matches_the_diffusers_controlnet_pipeline(family, style_files):
    guided = controlled(family, style_files)
    reference = PIPELINES[family].from_pipe(guided.pipe)
    reference.set_progress_bar_config(disable=True)
    expected = reference(
        "a photo of a cat",
        image=control_image(),
        num_inference_steps=STEPS,
        guidance_scale=5.0,
        output_type="latent",
        generator=torch.Generator().manual_seed(0),
        **SIZE,
    ).images
    args = dict(num_inference_steps=STEPS, output_type="latent", seed=0, **SIZE)
    got = guided("a photo of a cat", styles={"art": 0.0}, control_image=control_image(), **args).images
    assert (got - expected).abs().max() <= 1e-5, f"max latent difference {(got - expected).abs().max()}"
    wrapped = StyleGuidedPipeline(reference)  # wrapping an existing ControlNet pipeline works the same
    again = wrapped("a photo of a cat", styles={}, control_image=control_image(), **args).images
    assert (again - expected).abs().max() <= 1e-5, f"wrapped: max latent difference {(again - expected).abs().max()}"
    other = guided("a photo of a cat", styles={}, control_image=control_image(seed=5), **args).images
    assert (other - expected).abs().max() > 1e-3, "the control image changed nothing"


def test_stylize_takes_a_control_image_and_batched_equals_per_term(style_files):
    guided = controlled("sd", style_files)
    image = control_image(seed=2)
    args = dict(
        styles={"art": 3.0},
        strength=0.7,
        num_inference_steps=5,
        output_type="latent",
        resolution=32,
        seed=0,
        control_image=image,
    )
    batched = guided.stylize(control_image(seed=7), **args).images
    separate = per_term(guided).stylize(control_image(seed=7), **args).images  # the benchmark's reference
    assert (batched - separate).abs().max() <= 1e-4, f"batched vs per term: {(batched - separate).abs().max()}"
    other = guided.stylize(control_image(seed=7), **{**args, "control_image": control_image(seed=3)}).images
    assert (other - batched).abs().max() > 1e-3, "the control image changed nothing"


def test_missing_control_image_and_control_image_without_controlnet_are_refused(style_files):
    with pytest.raises(UserError, match="give a control image"):
        controlled("sd", style_files)("a cat", num_inference_steps=2, **SIZE)
    plain = StyleGuidedPipeline(build_tiny_pipeline("sd"))
    with pytest.raises(UserError, match="needs a ControlNet"):
        plain("a cat", num_inference_steps=2, control_image=control_image(), **SIZE)
    with pytest.raises(UserError, match="already has a ControlNet"):
        StyleGuidedPipeline(controlled("sd", style_files).pipe, controlnet=tiny_controlnet(plain.pipe.unet))
