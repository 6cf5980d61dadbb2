"""A style file as ComfyUI LoRA patches: paircustom reads the file (every layout ``load_style`` reads), ComfyUI's
own ``comfy.lora.load_lora`` turns it into weight patches, and a ComfyUI weight hook carries them to the
conditioning rows of that style only (``comfy.hooks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import comfy.hooks
import comfy.lora
import comfy.model_base
import comfy.supported_models

from paircustom import UserError
from paircustom.files.style_file import read_style, require_suffix

from .diffusers_model import UNET_PREFIX, DiffusersUNet

FAMILY_WORDS = {"sd": "SD 1.x/2.x", "sdxl": "SDXL", "sd3": "SD3", "flux": "Flux"}


@dataclass(frozen=True)
class Style:
    """One loaded style: its name, prompt suffix, guidance scale λ_i and the hook that routes its LoRA."""

    name: str
    suffix: str
    scale: float
    hooks: comfy.hooks.HookGroup
    layers: int  # LoRA layers patched


def model_family(model_patcher) -> str | None:
    """paircustom's family word for a ComfyUI MODEL ("sd", "sdxl"), None for families style guidance lacks here."""
    model = model_patcher.model
    if isinstance(model.diffusion_model, DiffusersUNet):
        return "sd"
    config = model.model_config
    if isinstance(
        config, (comfy.supported_models.SDXL, comfy.supported_models.SSD1B, comfy.supported_models.Segmind_Vega)
    ):
        return "sdxl"
    if isinstance(config, (comfy.supported_models.SD15, comfy.supported_models.SD20)):
        return "sd"
    return None


def _module_keys(model_patcher) -> dict[str, str]:
    """The UNet's diffusers module path with "_" for "." (down_blocks_1_attentions_0_...) -> ComfyUI weight key."""
    model = model_patcher.model
    if isinstance(model.diffusion_model, DiffusersUNet):
        return {
            key[len(UNET_PREFIX) : -len(".weight")].replace(".", "_"): key
            for key in model.state_dict()
            if key.startswith(UNET_PREFIX) and key.endswith(".weight")
        }
    lora_keys = comfy.lora.model_lora_keys_unet(model, {})  # "lora_unet_<path with _>" -> ComfyUI key
    return {key[len("lora_unet_") :]: value for key, value in lora_keys.items() if key.startswith("lora_unet_")}


def load_style(
    model_patcher, path: str | Path, scale: float, suffix: str | None = None, name: str | None = None
) -> Style:
    """Read ``path`` for ``model_patcher`` (a ComfyUI MODEL); a one-sentence ``UserError`` when it does not fit."""
    family = model_family(model_patcher)
    if family is None:
        raise UserError(
            f"style guidance in ComfyUI supports SD 1.x/2.x and SDXL models; this model is "
            f"{type(model_patcher.model.model_config).__name__}, so load one of those."
        )
    style = read_style(path)
    metadata = style.metadata
    require_suffix(path, metadata, suffix or None)
    if metadata is not None and metadata.family != family:
        raise UserError(
            f"'{path}' was trained on a {FAMILY_WORDS.get(metadata.family, metadata.family)} model "
            f"({metadata.base_model}) but this model is {FAMILY_WORDS[family]}; load a style trained for "
            "this model, or the model the style was trained on."
        )
    to_load = _lora_targets(path, style.tensors, model_patcher, family)
    patches = comfy.lora.load_lora(style.tensors, to_load, log_missing=False)  # ComfyUI's LoRA machinery
    hook = comfy.hooks.WeightHook(strength_model=1.0, strength_clip=0.0)
    hook.weights, hook.need_weight_init = patches, False
    hooks = comfy.hooks.HookGroup()
    hooks.add(hook)
    return Style(name or Path(path).stem, suffix or metadata.style_suffix, float(scale), hooks, len(patches))


def _lora_targets(path, tensors, model_patcher, family: str) -> dict[str, str]:
    """ "unet.<module>" (the file's LoRA prefix) -> ComfyUI weight key, refusing layers the model lacks or shapes
    that differ (a file made for another model)."""
    keys, weights = _module_keys(model_patcher), model_patcher.model.state_dict()
    to_load = {}
    for key in sorted(k for k in tensors if k.endswith(".lora_A.weight")):
        prefix = key[: -len(".lora_A.weight")]  # unet.<module path>
        module = prefix.split(".", 1)[1]
        target = keys.get(module.replace(".", "_"))
        A, B = tensors[key], tensors[prefix + ".lora_B.weight"]  # (r, in, ...), (out, r, ...)
        weight = weights.get(target) if target else None
        if weight is None or tuple(weight.shape[:2]) != (B.shape[0], A.shape[1]):
            have = "no such layer" if weight is None else f"{weight.shape[1]} -> {weight.shape[0]}"
            raise UserError(
                f"'{path}' does not fit this {FAMILY_WORDS[family]} model: its layer {module} is "
                f"{A.shape[1]} -> {B.shape[0]} but the model's is {have}; use the base model the style "
                "was trained on."
            )
        to_load[prefix] = target
    return to_load
