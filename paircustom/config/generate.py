"""How images are drawn (``GenerateConfig``): the only place the defaults of generating and stylising are written.

``GENERATE`` holds them; ``StyleGuidedPipeline``, ``stylize``, the command line (whose ``generate`` and
``stylize`` options are these fields), the demo, the web app, the benchmarks and the training preview read
them from there.  Each field's ``setting`` holds its documentation, which is also its option's help.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..distributed import check_device
from .checks import STYLE_REUSE
from .model_names import DTYPE_NAMES, resolve_model
from .options import device_setting, setting, vae_setting, variant_setting


@dataclass(frozen=True)
class GenerateConfig:
    """The model and the sampling settings of ``paircustom generate`` and ``stylize``."""

    model: str | None = setting(None, "base model", default_text="the first style file's base model, else 'shapes'")
    device: str | None = device_setting()
    dtype: str | None = setting(
        None, "dtype of the model", choices=DTYPE_NAMES, default_text="fp16 on a GPU, else fp32"
    )
    variant: str | None = variant_setting()
    vae: str | None = vae_setting()
    # style guidance (Eqs. 10-11): CFG scale, one scale per style, the steps with style terms
    guidance_scale: float = setting(5.0, "CFG scale (the paper's 5)")
    style_scale: float = setting(3.0, "style guidance scale of each style given without its own (the paper's 3)")
    style_start_fraction: float = setting(0.2, "fraction of the (denoising) steps before style guidance starts")
    style_end: float | None = setting(
        None, "fraction of the steps after which style guidance stops", default_text="1, the last step"
    )
    style_interval: int = setting(
        1,
        "recompute the style terms every K steps and reuse them in between, where only "
        "the CFG rows are computed (1: every step; see docs/generation.md, 'Cheaper style guidance')",
        metavar="K",
    )
    style_tolerance: float | None = setting(
        None,
        "also recompute the style terms once the base prediction has "
        "changed by more than T (relative L1) since they were computed; K "
        "is then the longest reuse, e.g. K=8, T=0.1",
        metavar="T",
    )
    style_reuse: str = setting(
        "forecast",
        "what steps between recomputations add: 'forecast' a straight-line "
        "extrapolation of the last two style terms, 'hold' the last ones",
        choices=STYLE_REUSE,
    )
    true_cfg_scale: float = setting(
        1.0,
        "Flux: true CFG scale with --negative-prompt (1: none; --guidance-scale is then the distilled guidance value)",
    )
    guidance_rescale: float = setting(0.0, "rescale the guided prediction towards the conditional one's std, 0-1")
    num_inference_steps: int = setting(50, "denoising steps (stylize: at strength 1)", flag="--steps")
    negative_prompt: str | None = setting(None, "negative prompt")
    prompt_2: str | None = setting(None, "SDXL: prompt for the second text encoder", default_text="the prompt")
    negative_prompt_2: str | None = setting(None, "SDXL: negative prompt for the second text encoder")
    height: int | None = setting(None, "image height in pixels", default_text="the model's size")
    width: int | None = setting(None, "image width in pixels", default_text="the model's size")
    num_images_per_prompt: int = setting(1, "images per prompt", flag="--num-images")
    controlnet_conditioning_scale: float = setting(1.0, "ControlNet conditioning scale", flag="--controlnet-scale")
    # stylising an existing image
    strength: float = setting(0.6, "share of the denoising steps redone, 0-1")
    method: str = setting(
        "sdedit",
        "'sdedit' noises the image to --strength and denoises; 'inversion' inverts it "
        "by deterministic DDIM under the prompt first, which keeps the layout better",
        choices=("sdedit", "inversion"),
    )
    inversion_refine: int = setting(0, "inversion: fixed-point iterations per step")
    negative_prompt_inversion: bool = setting(
        False,
        "inversion: the prompt is also the negative prompt (Miyake et "
        "al. 2023), so CFG cancels and without a style the image comes "
        "back; the style terms then act without CFG",
    )
    resolution: int | None = setting(
        None, "square size in pixels the image is resized and cropped to", default_text="the model's size"
    )

    def resolved(self, style_model: str | None = None) -> GenerateConfig:
        """The model (given, else ``style_model``: the first style file's, else "shapes"), checked to exist;
        the device (cuda when there is one, checked to exist) and the dtype (fp16 on a GPU, else fp32)."""
        model = self.model or style_model or "shapes"
        resolve_model(model)
        device = check_device(self.device)
        return replace(
            self, model=model, device=device, dtype=self.dtype or ("fp16" if device.startswith("cuda") else "fp32")
        )

    def values(self, names: tuple[str, ...]) -> dict:
        """{name: value} of the given fields, e.g. as keyword arguments of a pipeline call."""
        return {name: getattr(self, name) for name in names}


GENERATE = GenerateConfig()
MODEL_OPTIONS = ("model", "device", "dtype", "variant", "vae")
STYLIZE_ONLY = ("strength", "method", "inversion_refine", "negative_prompt_inversion", "resolution")
STYLIZE_OPTIONS = (
    *MODEL_OPTIONS,
    "guidance_scale",
    "style_scale",
    "style_start_fraction",
    "num_inference_steps",
    "negative_prompt",
    "controlnet_conditioning_scale",
    *STYLIZE_ONLY,
)
GENERATE_OPTIONS = tuple(name for name in GenerateConfig.__dataclass_fields__ if name not in STYLIZE_ONLY)
