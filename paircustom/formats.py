"""The style file: one ``.safetensors`` in diffusers/peft LoRA layout plus our metadata.

Keys follow what ``pipeline.load_lora_weights`` of plain diffusers reads:

    unet.<module path>.lora_A.weight   # (r, in)   A_s, the frozen basis rows
    unet.<module path>.lora_B.weight   # (out, r)  B_s · (alpha / r), so that peft's default scale 1 is right

The safetensors header holds ``{"paircustom": <json>}`` with the fields of
``StyleMetadata``; files from other tools simply lack it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .errors import UserError
from .images import atomic_write, check_writable

FORMAT_VERSION = 1
METADATA_KEY = "paircustom"


@dataclass(frozen=True)
class StyleMetadata:
    """Everything needed to use (and reproduce) a trained adapter."""

    base_model: str
    family: str                   # "sd" or "sdxl"
    adapter: str                  # "style" or "content"
    content_rank: int
    style_rank: int
    alpha: float                  # of this adapter; already folded into lora_B
    target_modules: list[str]
    basis_seed: int
    subject: str
    style: str
    style_suffix: str             # appended to a prompt for the style branch, e.g. " in digital art style"
    content_prompt: str
    style_prompt: str
    training: dict = field(default_factory=dict)
    dtype: str = "fp32"           # of the saved tensors: fp32, fp16 or bf16
    format_version: int = FORMAT_VERSION


def lora_state_dict(A: dict[str, torch.Tensor], B: dict[str, torch.Tensor], scale: float,
                    dtype=torch.float32) -> dict[str, torch.Tensor]:
    """diffusers-layout tensors from per-module A (r, in) and B (out, r), stored in ``dtype``."""
    tensors = {}
    for name in A:
        tensors[f"unet.{name}.lora_A.weight"] = A[name].detach().float().to(dtype).cpu().contiguous()
        tensors[f"unet.{name}.lora_B.weight"] = (B[name].detach().float() * scale).to(dtype).cpu().contiguous()
    return tensors


def save_adapter(path: str | Path, tensors: dict[str, torch.Tensor], metadata: StyleMetadata, overwrite: bool) -> Path:
    """Write atomically; refuse to replace an existing file unless ``overwrite``."""
    path = check_writable(path, overwrite)
    header = {METADATA_KEY: json.dumps(asdict(metadata)), "format": "pt"}
    return atomic_write(path, lambda temp: save_file(tensors, temp, metadata=header))


def read_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], StyleMetadata | None]:
    """Tensors and metadata (None for files from other tools); clear errors for missing or corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"the style file '{path}' does not exist; give the .safetensors file written by 'paircustom train'.")
    try:
        with safe_open(str(path), framework="pt") as file:
            header = file.metadata() or {}
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except Exception as error:  # safetensors raises several types for damaged files
        raise UserError(f"'{path}' is not a readable .safetensors file ({error}); retrain it or copy it again.") from None
    if not any(key.startswith("unet.") and ".lora_A." in key for key in tensors):
        raise UserError(f"'{path}' holds no UNet LoRA weights (no 'unet.*.lora_A.weight' keys); give a LoRA style file.")
    if METADATA_KEY not in header:
        return tensors, None
    try:
        fields = json.loads(header[METADATA_KEY])
        return tensors, StyleMetadata(**fields)
    except (TypeError, ValueError) as error:
        raise UserError(f"'{path}' has damaged paircustom metadata ({error}); retrain it or pass the suffix yourself.") from None


def check_fits(path, tensors: dict[str, torch.Tensor], metadata: StyleMetadata | None, family: str, unet) -> None:
    """Refuse a file made for another family or whose layers do not match ``unet``."""
    if metadata is not None and metadata.family != family:
        raise UserError(f"'{path}' was trained on a {metadata.family} model ({metadata.base_model}) but this pipeline "
                        f"is {family}; load it into a {metadata.family} pipeline or train a style for this model.")
    for key, tensor in tensors.items():
        if ".lora_A." not in key:
            continue
        module_path = key[len("unet."):key.index(".lora_A.")]
        try:
            width = unet.get_submodule(module_path).in_features
        except AttributeError:
            width = None
        if width != tensor.shape[1]:
            raise UserError(f"'{path}' does not fit this model's UNet (layer {module_path}: file expects input width "
                            f"{tensor.shape[1]}, model has {width}); use the base model it was trained on.")
