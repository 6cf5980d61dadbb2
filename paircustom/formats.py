"""The style file: one ``.safetensors`` in diffusers/peft LoRA layout plus our metadata.

Keys follow what ``pipeline.load_lora_weights`` of plain diffusers reads:

    unet.<module path>.lora_A.weight   # (r, in)   A_s, the frozen basis rows
    unet.<module path>.lora_B.weight   # (out, r)  B_s · (alpha / r), so that peft's default scale 1 is right

The safetensors header holds ``{"paircustom": <json>}`` with the fields of
``StyleMetadata``; files from other tools simply lack it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .errors import UserError, reason
from .images import atomic_write, check_writable

FORMAT_VERSION = 1
MAX_WEIGHT = 1e4        # trained LoRA weights are below 10; larger values only come from damage or divergence
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
    bad = [key for key, tensor in tensors.items() if not torch.isfinite(tensor).all()]
    if bad:     # never write a file that would turn every image black
        raise UserError(f"refusing to write '{path}': {bad[0]} holds non-finite values (training diverged); "
                        "retrain with a smaller learning rate.")
    header = {METADATA_KEY: json.dumps(asdict(metadata)), "format": "pt"}
    return atomic_write(path, lambda temp: save_file(tensors, temp, metadata=header))


def read_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], StyleMetadata | None]:
    """Tensors and metadata (None for files from other tools); clear errors for missing, corrupt or odd files."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"the style file '{path}' is a folder; give the .safetensors file written by 'paircustom train'.")
    if not path.is_file():
        raise UserError(f"the style file '{path}' does not exist; give the .safetensors file written by 'paircustom train'.")
    try:
        with safe_open(str(path), framework="pt") as file:
            header = file.metadata() or {}
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except Exception as error:  # safetensors raises several types for damaged files
        raise UserError(f"'{path}' is not a readable .safetensors file ({reason(error)}); retrain it or copy it again.") from None
    _check_tensors(path, tensors)
    if METADATA_KEY not in header:
        return tensors, None
    try:
        fields = json.loads(header[METADATA_KEY])
        metadata = StyleMetadata(**fields)
    except (TypeError, ValueError, RecursionError) as error:
        raise UserError(f"'{path}' has damaged paircustom metadata ({reason(error)}); retrain it or pass the suffix yourself.") from None
    _check_metadata(path, metadata)
    return tensors, metadata


def _check_tensors(path, tensors: dict[str, torch.Tensor]) -> None:
    """Every LoRA layer has a floating (r, in) A and (out, r) B of the same rank, all finite."""
    downs = [key for key in tensors if key.startswith("unet.") and key.endswith(".lora_A.weight")]
    if not downs:
        raise UserError(f"'{path}' holds no UNet LoRA weights (no 'unet.*.lora_A.weight' keys); give a LoRA style file.")
    for down in downs:
        up = down.replace(".lora_A.weight", ".lora_B.weight")
        A, B = tensors[down], tensors.get(up)
        if B is None or A.ndim != 2 or B.ndim != 2 or B.shape[1] != A.shape[0] or 0 in A.shape or 0 in B.shape:
            raise UserError(f"'{path}' has a malformed LoRA layer {down[5:-len('.lora_A.weight')]} (A {tuple(A.shape)}, B "
                            f"{None if B is None else tuple(B.shape)}; expected (r, in) and (out, r)); retrain it.")
    for key, tensor in tensors.items():
        if not tensor.is_floating_point():
            raise UserError(f"'{path}' holds {tensor.dtype} weights in {key}; a LoRA file holds floating-point weights.")
        if not torch.isfinite(tensor).all():
            raise UserError(f"'{path}' holds non-finite values (NaN or infinity) in {key}; the training that wrote it "
                            "diverged, so retrain with a smaller learning rate.")
        if tensor.numel() and tensor.abs().max() > MAX_WEIGHT:
            raise UserError(f"'{path}' holds values up to {tensor.abs().max().item():.3g} in {key}, far beyond any "
                            f"trained LoRA (|w| <= {MAX_WEIGHT:g}); the file is damaged or its training diverged.")


def _check_metadata(path, metadata: StyleMetadata) -> None:
    """Field types as written by ``save_adapter``; a hand-edited header must not fail later, mid-generation."""
    kinds = {str: "text", int: "a whole number", float: "a number", list: "a list", dict: "a mapping"}
    for name, kind in (("base_model", str), ("family", str), ("adapter", str), ("content_rank", int),
                       ("style_rank", int), ("alpha", float), ("target_modules", list), ("basis_seed", int),
                       ("subject", str), ("style", str), ("style_suffix", str), ("content_prompt", str),
                       ("style_prompt", str), ("training", dict), ("format_version", int)):
        value = getattr(metadata, name)
        ok = isinstance(value, (int, float) if kind is float else kind) and not isinstance(value, bool)
        if not ok or (kind is float and not math.isfinite(value)):
            raise UserError(f"'{path}' has damaged paircustom metadata ({name} should be {kinds[kind]}, got "
                            f"{value!r:.60}); retrain it or pass the suffix yourself.")
    if metadata.family not in ("sd", "sdxl"):
        raise UserError(f"'{path}' names an unknown model family {metadata.family!r:.40}; it must be sd or sdxl.")


def check_fits(path, tensors: dict[str, torch.Tensor], metadata: StyleMetadata | None, family: str, unet) -> None:
    """Refuse a file made for another family or whose layers do not match ``unet`` (a model or its meta skeleton)."""
    if metadata is not None and metadata.family != family:
        raise UserError(f"'{path}' was trained on a {metadata.family} model ({metadata.base_model}) but this pipeline "
                        f"is {family}; load it into a {metadata.family} pipeline or train a style for this model.")
    for key, tensor in tensors.items():
        if ".lora_A." not in key:
            continue
        module_path = key[len("unet."):key.index(".lora_A.")]
        try:
            layer = unet.get_submodule(module_path)
            shape = (layer.in_features, layer.out_features)
        except AttributeError:
            shape = None
        up = tensors[key.replace(".lora_A.", ".lora_B.")]
        if shape != (tensor.shape[1], up.shape[0]):
            raise UserError(f"'{path}' does not fit this model's UNet (layer {module_path}: file expects input and "
                            f"output widths {tensor.shape[1]} and {up.shape[0]}, model has "
                            f"{'no such layer' if shape is None else ' and '.join(map(str, shape))}); "
                            "use the base model it was trained on.")
