"""The node classes (ComfyUI's V1 node interface): loaders, the style prompt, the style guider and a sampler."""

from __future__ import annotations

from pathlib import Path

import comfy.samplers
import folder_paths
import nodes
import torch
from comfy_extras.nodes_custom_sampler import Noise_RandomNoise, SamplerCustomAdvanced

from paircustom import UserError
from paircustom.config.generate import GENERATE
from paircustom.files.style_file import read_style, require_suffix

from .diffusers_model import load_diffusers_sd
from .guider import Styled, StyleGuider
from .styles import load_style

CATEGORY = "paircustom"
STYLES = "PAIRCUSTOM_STYLES"  # a tuple of styles.Style, in the order they were chained
STYLED = "PAIRCUSTOM_STYLED"  # a guider.Styled: the prompt's conditioning and one per style
SHAPES_MODEL = Path(__import__("paircustom").__file__).parent / "shapes" / "model"
FRACTION = {"min": 0.0, "max": 1.0, "step": 0.01}

WINDOW_TIPS = {
    "style_start": "Fraction of the steps that run plain CFG before the style terms start (the paper's 0.2).",
    "style_end": "Fraction of the steps after which the style terms stop again (1: to the last step).",
}
GUIDER_COST = (
    " Cost: each step inside the style window runs the model once on the CFG rows (prompt and negative) and once "
    "more per style, because ComfyUI patches LoRA weights into the model per conditioning group and cannot give "
    "each row of one batch its own adapter; with several styles ComfyUI caches the patched LoRA layers of each "
    "style while free memory allows. Steps outside the window cost what plain CFG costs. paircustom's "
    "style_interval, tolerance and forecast are not offered: ComfyUI calls a guider once per model evaluation "
    "with only the noise level, and multi-stage samplers (heun, dpmpp_2s, uni_pc, ...) evaluate between steps, "
    "so a cached style term cannot be tied to a step."
)


def resolve_style_path(style_file: str) -> Path:
    """An absolute path, or a file name in ComfyUI's models/loras folder."""
    if not style_file.strip():
        raise UserError("no style file given; name a .safetensors file in models/loras or give its full path.")
    path = Path(style_file.strip()).expanduser()
    if not path.is_absolute():
        found = folder_paths.get_full_path("loras", style_file.strip())
        if found is None:
            raise UserError(
                f"the style file '{style_file}' is neither a full path nor a file in ComfyUI's "
                "models/loras folder; give the .safetensors file written by 'paircustom train'."
            )
        path = Path(found)
    return path


class ShapesModelLoader:
    DESCRIPTION = (
        "The embedded shapes model of paircustom (a tiny SD-like model of coloured shapes, runs on a CPU "
        "in seconds) as MODEL, CLIP and VAE, for trying styles trained by 'paircustom demo' or "
        "'paircustom train --model shapes'. It makes 64x64 images (16x16 latents)."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def load(self):
        return load_diffusers_sd(SHAPES_MODEL)


class StyleLoader:
    DESCRIPTION = (
        "Load a Pair Customization style file (or a LoRA file from another tool: peft, old diffusers or "
        "kohya layout) for style guidance. Chain several loaders for several styles."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (STYLES,)
    RETURN_NAMES = ("styles",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The base model the style was trained on."}),
                "style_file": (
                    "STRING",
                    {"default": "", "tooltip": "The style .safetensors: a file name in models/loras or a full path."},
                ),
                "scale": (
                    "FLOAT",
                    {
                        "default": GENERATE.style_scale,
                        "min": -100.0,
                        "max": 100.0,
                        "step": 0.1,
                        "tooltip": "Style guidance scale λ of this style (0 turns it off).",
                    },
                ),
                "suffix": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "Words appended to the prompt for this style's branch, "
                        "e.g. ' in digital art style'; empty: the file's own. Required for files from "
                        "other tools.",
                    },
                ),
            },
            "optional": {"styles": (STYLES, {"tooltip": "Styles loaded before, to combine (Eq. 11)."})},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, style_file, suffix):
        """Refuse a missing or unreadable file before the prompt is queued (ComfyUI shows the sentence)."""
        try:
            path = resolve_style_path(style_file)
            require_suffix(path, read_style(path).metadata, suffix or None)
        except UserError as error:
            return str(error)
        return True

    def load(self, model, style_file, scale, suffix, styles=()):
        style = load_style(model, resolve_style_path(style_file), scale, suffix or None)
        return (tuple(styles) + (style,),)


def encode(clip, text: str):
    return nodes.CLIPTextEncode().encode(clip, text)[0]


class StylePrompt:
    DESCRIPTION = (
        "Encode a prompt for style guidance: the prompt itself (c) and, for each style, the prompt with "
        "that style's suffix (c + suffix)."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (STYLED, "CONDITIONING")
    RETURN_NAMES = ("styled", "positive")
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "text": ("STRING", {"multiline": True}), "styles": (STYLES,)}}

    def encode(self, clip, text, styles):
        positive = encode(clip, text)
        return Styled(positive, tuple((style, encode(clip, text + style.suffix)) for style in styles)), positive


class StyleGuiderNode:
    DESCRIPTION = (
        "Style guidance (Pair Customization, Eqs. 10-11) as a GUIDER for SamplerCustomAdvanced: "
        "CFG plus, for each style, scale x (model with the style's LoRA on prompt + suffix - base model "
        "on the prompt), between style_start and style_end." + GUIDER_COST
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("GUIDER",)
    FUNCTION = "get_guider"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL",),
                "styled": (STYLED, {"tooltip": "From the Style Prompt node."}),
                "negative": ("CONDITIONING",),
                "cfg": ("FLOAT", {"default": GENERATE.guidance_scale, "min": 0.0, "max": 100.0, "step": 0.1}),
                "style_start": (
                    "FLOAT",
                    {"default": GENERATE.style_start_fraction, **FRACTION, "tooltip": WINDOW_TIPS["style_start"]},
                ),
                "style_end": ("FLOAT", {"default": 1.0, **FRACTION, "tooltip": WINDOW_TIPS["style_end"]}),
            }
        }

    def get_guider(self, model, styled, negative, cfg, style_start, style_end):
        guider = StyleGuider(model)
        guider.set_styled(styled, negative, cfg, style_start, style_end)
        return (guider,)


class StyleSampler:
    DESCRIPTION = (
        "One node from prompt to image with style guidance: encodes the prompts, samples with the style "
        "guider and decodes." + GUIDER_COST
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "LATENT")
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        required = StyleGuiderNode.INPUT_TYPES()["required"]
        return {
            "required": {
                "model": ("MODEL",),
                "clip": ("CLIP",),
                "vae": ("VAE",),
                "styles": (STYLES,),
                "prompt": ("STRING", {"multiline": True}),
                "negative_prompt": ("STRING", {"multiline": True}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}),
                "steps": ("INT", {"default": GENERATE.num_inference_steps, "min": 1, "max": 1000}),
                "cfg": required["cfg"],
                "sampler_name": (comfy.samplers.SAMPLER_NAMES, {"default": "euler"}),
                "scheduler": (comfy.samplers.SCHEDULER_NAMES, {"default": "simple"}),
                "width": ("INT", {"default": 512, "min": 16, "max": 8192, "step": 8}),
                "height": ("INT", {"default": 512, "min": 16, "max": 8192, "step": 8}),
                "style_start": required["style_start"],
                "style_end": required["style_end"],
            }
        }

    def sample(
        self,
        model,
        clip,
        vae,
        styles,
        prompt,
        negative_prompt,
        seed,
        steps,
        cfg,
        sampler_name,
        scheduler,
        width,
        height,
        style_start,
        style_end,
    ):
        styled, _ = StylePrompt().encode(clip, prompt, styles)
        guider = StyleGuiderNode().get_guider(
            model, styled, encode(clip, negative_prompt), cfg, style_start, style_end
        )[0]
        down = vae.spacial_compression_encode()
        latent = torch.zeros(1, model.model.latent_format.latent_channels, height // down, width // down)
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()
        out = SamplerCustomAdvanced().sample(
            Noise_RandomNoise(seed), guider, comfy.samplers.sampler_object(sampler_name), sigmas, {"samples": latent}
        )[0]
        return vae.decode(out["samples"]), out


NODE_CLASS_MAPPINGS = {
    "PairCustomShapesModelLoader": ShapesModelLoader,
    "PairCustomStyleLoader": StyleLoader,
    "PairCustomStylePrompt": StylePrompt,
    "PairCustomStyleGuider": StyleGuiderNode,
    "PairCustomStyleSampler": StyleSampler,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "PairCustomShapesModelLoader": "Shapes Model Loader (paircustom)",
    "PairCustomStyleLoader": "Style Loader (paircustom)",
    "PairCustomStylePrompt": "Style Prompt (paircustom)",
    "PairCustomStyleGuider": "Style Guider (paircustom)",
    "PairCustomStyleSampler": "Style Sampler (paircustom)",
}
