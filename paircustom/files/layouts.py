"""Other tools' LoRA files in, kohya files out; diffusers' own conversion functions rename the keys.

Layouts read (the UNet part of what ``load_lora_weights`` of diffusers reads for SD and SDXL pipelines):

    peft            unet.<module>.lora_A.weight, unet.<module>.lora_B.weight        (ours, current diffusers)
    old diffusers   unet.<module>.lora.down.weight, .lora.up.weight                  (the research PairCustomization
                    unet.<...>.processor.to_q_lora.down.weight, ...                   script, DreamBooth-LoRA SDXL)
    kohya           lora_unet_<module>.lora_down.weight, .lora_up.weight, .alpha     (sd-scripts, A1111, ComfyUI)

Every layout becomes ours: peft keys with the LoRA scale (kohya's alpha / rank) folded into ``lora_B``.
Text-encoder weights (``text_encoder*.``, ``lora_te*_``) are set aside: paircustom adapts the denoiser only.
SD3 and Flux files (``transformer.<module>``) are read in the peft layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace

import torch

from ..errors import UserError, reason

DENOISER_PREFIXES = ("unet.", "transformer.")  # a UNet's keys; SD3's and Flux's (peft layout only)
KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")
# kohya writes SDXL files with the original (sgm) UNet's block names; renumbering them needs the UNet's
# layers per block.  Where no model is at hand (``paircustom info``) SDXL's own count is assumed.
SDXL_UNET = SimpleNamespace(layers_per_block=2)


# The input width of the cross-attention keys (the text encoders' hidden size) tells the model a file was made for.
CONTEXT_WIDTHS = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}


def made_for(tensors: dict[str, torch.Tensor]) -> str | None:
    """ "SD 1.x", "SD 2.x" or "SDXL" from a peft-layout file's cross-attention widths; None if they do not say."""
    widths = {CONTEXT_WIDTHS.get(v.shape[1]) for k, v in tensors.items() if ".attn2.to_k.lora_A." in k}
    return next(iter(widths)) if len(widths) == 1 else None


@dataclass(frozen=True)
class Converted:
    tensors: dict[str, torch.Tensor]  # unet.<module>.lora_A.weight / lora_B.weight, scale folded into lora_B
    layout: str  # "peft", "old diffusers" or "kohya"
    ignored: int  # text-encoder (and other non-UNet) tensors set aside


def to_peft_layout(path, tensors: dict[str, torch.Tensor], unet_config=None) -> Converted:
    """Any layout above as ours; ``unet_config`` (the target UNet's config) places kohya's SDXL block names."""
    layout = "peft"
    if tensors and all(key.startswith(KOHYA_PREFIXES) for key in tensors):
        from diffusers.loaders.lora_pipeline import StableDiffusionXLLoraLoaderMixin

        layout = "kohya"
        try:  # the renaming (and sgm block mapping) of diffusers' SDXL loader; SD files pass through it unchanged
            tensors, _ = StableDiffusionXLLoraLoaderMixin.lora_state_dict(
                _fold_kohya_alpha(tensors), unet_config=unet_config or SDXL_UNET
            )
        except Exception as error:  # diffusers raises ValueError/KeyError for keys it cannot place
            raise UserError(
                f"'{path}' has kohya-style keys that diffusers cannot convert ({reason(error)}); "
                "give a LoRA (not LyCORIS/LoHa) file for SD or SDXL."
            ) from None
    unet = {key: value for key, value in tensors.items() if key.startswith(DENOISER_PREFIXES)}
    if any(".lora_A." not in key and ".lora_B." not in key for key in unet):
        from diffusers.utils.state_dict_utils import convert_unet_state_dict_to_peft

        layout = layout if layout == "kohya" else "old diffusers"
        unet = convert_unet_state_dict_to_peft(unet)
    return Converted(unet, layout, len(tensors) - len(unet))


def _fold_kohya_alpha(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """kohya scales each module by alpha / rank; fold that into lora_up and drop the alpha entries."""
    tensors = dict(tensors)
    for key in [k for k in tensors if k.endswith(".lora_down.weight")]:
        module = key.split(".")[0]
        alpha, up = tensors.pop(f"{module}.alpha", None), tensors.get(f"{module}.lora_up.weight")
        if alpha is None or up is None:
            continue  # no alpha: scale 1; no up: diffusers names the missing key
        if alpha.numel() != 1:
            raise UserError(f"the kohya alpha of {module} holds {alpha.numel()} values; it must be one number.")
        tensors[f"{module}.lora_up.weight"] = (up.float() * (alpha.float().item() / tensors[key].shape[0])).to(up.dtype)
    return tensors


def to_kohya(tensors: dict[str, torch.Tensor], metadata, header: dict[str, str]) -> tuple[dict, dict[str, str]]:
    """Our peft-layout tensors as kohya ``lora_unet_*`` keys (alpha = rank: scale 1, as folded) and its header.

    ``metadata`` is our ``StyleMetadata`` (None for files from other tools); ``header`` the source file's
    safetensors header, kept (our own ``paircustom`` entry included).
    """
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya

    kohya = convert_state_dict_to_kohya(tensors)
    kohya = {key: value.float() if key.endswith(".alpha") else value for key, value in kohya.items()}
    ranks = sorted({int(value.shape[0]) for key, value in tensors.items() if ".lora_A." in key})
    model = made_for(tensors)
    family = metadata.family if metadata else {"SDXL": "sdxl", "SD 1.x": "sd", "SD 2.x": "sd"}.get(model)
    training = metadata.training if metadata else {}
    info = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(ranks[-1]),
        "ss_network_alpha": str(ranks[-1]),  # alpha = rank everywhere: the scale is folded into lora_up
        "ss_network_args": json.dumps({"paircustom_ranks": ranks}),
        "ss_base_model_version": "sdxl_base_v1-0"
        if family == "sdxl"
        else "sd_v2"
        if model == "SD 2.x"
        else "sd_v1"
        if family == "sd"
        else "unknown",
        "ss_v2": str(model == "SD 2.x"),
        "ss_sdxl": str(family == "sdxl"),
        "ss_sd_model_name": metadata.base_model if metadata else "unknown",
        "ss_output_name": metadata.style if metadata else "style",
        "ss_training_comment": "Pair Customization style LoRA (paircustom); ComfyUI/A1111 apply it at a LoRA "
        "scale, style guidance needs paircustom's pipeline",
        "ss_steps": str(training.get("step", "")),
        "ss_learning_rate": str(training.get("learning_rate", "")),
        "ss_resolution": str(training.get("resolution", "")),
    }
    return kohya, {**header, **info, "format": "pt"}
