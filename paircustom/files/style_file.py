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

from ..config.validate import check_input_file, check_path
from ..errors import UserError, reason
from .images import atomic_write, check_writable
from .layouts import DENOISER_PREFIXES, made_for, to_peft_layout
from .safe_outputs import saver
from .style_word import WORD_PREFIX

FORMAT_VERSION = 1
MAX_WEIGHT = 1e4  # trained LoRA weights are below 10; larger values only come from damage or divergence
METADATA_KEY = "paircustom"


@dataclass(frozen=True)
class StyleMetadata:
    """Everything needed to use (and reproduce) a trained adapter."""

    base_model: str
    family: str  # "sd", "sdxl", "sd3" or "flux"
    adapter: str  # "style" or "content"
    content_rank: int
    style_rank: int
    alpha: float  # of this adapter; already folded into lora_B
    target_modules: list[str]
    basis_seed: int
    subject: str
    style: str
    style_suffix: str  # appended to a prompt for the style branch, e.g. " in digital art style"
    content_prompt: str
    style_prompt: str
    training: dict = field(default_factory=dict)
    dtype: str = "fp32"  # of the saved tensors: fp32, fp16 or bf16
    format_version: int = FORMAT_VERSION


def lora_state_dict(
    A: dict[str, torch.Tensor], B: dict[str, torch.Tensor], scale: float, dtype=torch.float32, prefix: str = "unet"
) -> dict[str, torch.Tensor]:
    """diffusers-layout tensors from per-module A (r, in) and B (out, r), stored in ``dtype``.

    ``prefix`` is the denoiser's name in the pipeline: "unet", or "transformer" for SD3 / Flux.
    """
    tensors = {}
    for name in A:
        tensors[f"{prefix}.{name}.lora_A.weight"] = A[name].detach().float().to(dtype).cpu().contiguous()
        tensors[f"{prefix}.{name}.lora_B.weight"] = (B[name].detach().float() * scale).to(dtype).cpu().contiguous()
    return tensors


def save_adapter(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: StyleMetadata, overwrite: bool, extra_header=None
) -> Path:
    """Write atomically; refuse to replace an existing file unless ``overwrite``; ``extra_header``: more header
    entries (a learned style word's)."""
    return atomic_write(*adapter_writer(path, tensors, metadata, overwrite, extra_header))


def adapter_writer(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: StyleMetadata, overwrite: bool, extra_header=None
):
    """(path, write(temp)) of an adapter file, checked (writable, finite) but not yet written (``safe_outputs``)."""
    path = check_writable(path, overwrite)
    bad = [key for key, tensor in tensors.items() if not torch.isfinite(tensor).all()]
    if bad:  # never write a file that would turn every image black
        raise UserError(
            f"refusing to write '{path}': {bad[0]} holds non-finite values (training diverged); "
            "retrain with a smaller learning rate."
        )
    header = {METADATA_KEY: json.dumps(asdict(metadata)), "format": "pt", **(extra_header or {})}
    return path, saver(tensors, header)


@dataclass(frozen=True)
class StyleFile:
    """A LoRA file read in any layout diffusers reads, as ours (see ``layouts``)."""

    tensors: dict[str, torch.Tensor]  # unet.<module>.lora_A.weight / lora_B.weight, scale folded into lora_B
    metadata: StyleMetadata | None  # None for files from other tools
    layout: str  # the file's own layout: "peft", "old diffusers" or "kohya"
    ignored: int  # text-encoder tensors set aside
    header: dict[str, str]  # the safetensors header as stored
    word: dict[str, torch.Tensor] = field(default_factory=dict)  # a learned style word's tensors (style_word)


def read_style(path: str | Path, unet_config=None) -> StyleFile:
    """Read and check a style file; ``unet_config`` (the target UNet's) places kohya's SDXL block names.

    Clear errors for missing, corrupt or odd files.
    """
    path = Path(check_path("path", path))
    check_input_file(path, "style file", "the .safetensors file written by 'paircustom train'")
    try:
        with safe_open(str(path), framework="pt") as file:
            header = file.metadata() or {}
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except Exception as error:  # safetensors raises several types for damaged files
        raise UserError(
            f"'{path}' is not a readable .safetensors file ({reason(error)}); retrain it or copy it again."
        ) from None
    word = {key: tensors.pop(key) for key in [k for k in tensors if k.startswith(WORD_PREFIX)]}
    converted = to_peft_layout(path, tensors, unet_config)
    _check_tensors(path, converted.tensors)
    metadata = None
    if METADATA_KEY in header:
        try:
            fields = json.loads(header[METADATA_KEY])
            metadata = StyleMetadata(**fields)
        except (TypeError, ValueError, RecursionError) as error:
            raise UserError(
                f"'{path}' has damaged paircustom metadata ({reason(error)}); retrain it or pass the suffix yourself."
            ) from None
        _check_metadata(path, metadata)
        if metadata.format_version != FORMAT_VERSION:
            raise UserError(
                f"'{path}' is a style file of format version {metadata.format_version}, which this paircustom "
                f"does not know (it reads version {FORMAT_VERSION}); upgrade paircustom or retrain the style."
            )
    return StyleFile(converted.tensors, metadata, converted.layout, converted.ignored, header, word)


def read_adapter(path: str | Path, unet_config=None) -> tuple[dict[str, torch.Tensor], StyleMetadata | None]:
    """(tensors, metadata) of ``read_style``."""
    style = read_style(path, unet_config)
    return style.tensors, style.metadata


def _check_tensors(path, tensors: dict[str, torch.Tensor]) -> None:
    """Every LoRA layer has a floating (r, in) A and (out, r) B of the same rank, all finite."""
    downs = [key for key in tensors if key.startswith(DENOISER_PREFIXES) and key.endswith(".lora_A.weight")]
    if not downs:
        raise UserError(
            f"'{path}' holds no UNet or transformer LoRA weights in a layout diffusers reads "
            "(unet.*.lora_A.weight, unet.*.lora.down.weight, kohya lora_unet_*, or "
            "transformer.*.lora_A.weight for SD3 and Flux); give a LoRA file for one of those models."
        )
    for down in downs:
        up = down.replace(".lora_A.weight", ".lora_B.weight")
        A, B = tensors[down], tensors.get(up)
        linear_or_conv = A.ndim in (2, 4) and B is not None and B.ndim == A.ndim and B.shape[2:] in ((), (1, 1))
        if not linear_or_conv or B.shape[1] != A.shape[0] or 0 in A.shape or 0 in B.shape:
            raise UserError(
                f"'{path}' has a malformed LoRA layer {_module_path(down)} (A {tuple(A.shape)}, B "
                f"{None if B is None else tuple(B.shape)}; expected (r, in) and (out, r)); retrain it."
            )
    for key, tensor in tensors.items():
        if not tensor.is_floating_point():
            raise UserError(
                f"'{path}' holds {tensor.dtype} weights in {key}; a LoRA file holds floating-point weights."
            )
        if not torch.isfinite(tensor).all():
            raise UserError(
                f"'{path}' holds non-finite values (NaN or infinity) in {key}; the training that wrote it "
                "diverged, so retrain with a smaller learning rate."
            )
        if tensor.numel() and tensor.abs().max() > MAX_WEIGHT:
            raise UserError(
                f"'{path}' holds values up to {tensor.abs().max().item():.3g} in {key}, far beyond any "
                f"trained LoRA (|w| <= {MAX_WEIGHT:g}); the file is damaged or its training diverged."
            )


def _check_metadata(path, metadata: StyleMetadata) -> None:
    """Field types as written by ``save_adapter``; a hand-edited header must not fail later, mid-generation."""
    kinds = {str: "text", int: "a whole number", float: "a number", list: "a list", dict: "a mapping"}
    for name, kind in (
        ("base_model", str),
        ("family", str),
        ("adapter", str),
        ("content_rank", int),
        ("style_rank", int),
        ("alpha", float),
        ("target_modules", list),
        ("basis_seed", int),
        ("subject", str),
        ("style", str),
        ("style_suffix", str),
        ("content_prompt", str),
        ("style_prompt", str),
        ("training", dict),
        ("format_version", int),
    ):
        value = getattr(metadata, name)
        ok = isinstance(value, (int, float) if kind is float else kind) and not isinstance(value, bool)
        if not ok or (kind is float and not math.isfinite(value)):
            raise UserError(
                f"'{path}' has damaged paircustom metadata ({name} should be {kinds[kind]}, got "
                f"{value!r:.60}); retrain it or pass the suffix yourself."
            )
    if metadata.family not in FAMILY_WORDS:
        raise UserError(
            f"'{path}' names an unknown model family {metadata.family!r:.40}; it must be {', '.join(FAMILY_WORDS)}."
        )


FAMILY_WORDS = {"sd": "SD 1.x/2.x", "sdxl": "SDXL", "sd3": "SD3", "flux": "Flux"}
A_FAMILY = {"sd": "an SD 1.x/2.x", "sdxl": "an SDXL", "sd3": "an SD3", "flux": "a Flux"}  # with the spoken article


def check_fits(path, tensors: dict[str, torch.Tensor], metadata: StyleMetadata | None, family: str, unet) -> None:
    """Refuse a file made for another family or whose layers do not match ``unet`` (a model or its meta skeleton).

    The sentence names the family the file was made for (from its metadata, else from its cross-attention
    width) and the first layer that differs.
    """
    if metadata is not None and metadata.family != family:
        raise UserError(
            f"'{path}' was trained on {A_FAMILY[metadata.family]} model ({metadata.base_model}) but this pipeline "
            f"is {FAMILY_WORDS[family]}; load it into {A_FAMILY[metadata.family]} pipeline or train a style for this "
            "model."
        )
    for key, A in sorted(tensors.items()):
        if ".lora_A." not in key:
            continue
        module_path = _module_path(key)
        B = tensors[key.replace(".lora_A.", ".lora_B.")]
        want, have = (A.shape[1], B.shape[0], tuple(A.shape[2:])), _layer_shape(unet, module_path)
        if want != have:
            model = made_for(tensors)
            raise UserError(
                f"'{path}' does not fit this model's denoiser ({FAMILY_WORDS[family]}): the file was made for "
                f"{'an ' + model + ' model' if model else 'another model'}, and its first differing layer is "
                f"{module_path} (file: {_describe(want)}; model: "
                f"{'no such layer' if have is None else _describe(have)}); use the base model it was "
                "trained on."
            )


def _module_path(key: str) -> str:
    """ "unet.down_blocks.0.attn.to_q.lora_A.weight" -> "down_blocks.0.attn.to_q" (also for "transformer.")."""
    return key.split(".", 1)[1][: key.split(".", 1)[1].index(".lora_A.")]


def _layer_shape(unet, module_path: str):
    """(input width, output width, kernel) of a Linear or Conv2d layer of ``unet``; None if there is none."""
    try:
        layer = unet.get_submodule(module_path)
    except AttributeError:
        return None
    while not isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)) and hasattr(layer, "base_layer"):
        layer = layer.base_layer  # a layer that peft has already wrapped for another adapter
    if isinstance(layer, torch.nn.Linear):
        return layer.in_features, layer.out_features, ()
    if isinstance(layer, torch.nn.Conv2d):
        return layer.in_channels, layer.out_channels, tuple(layer.kernel_size)
    return None


def _describe(shape) -> str:
    inputs, outputs, kernel = shape
    return f"{inputs} -> {outputs}" + (f", {'x'.join(map(str, kernel))} kernel" if kernel else "")


def require_suffix(path, metadata: StyleMetadata | None, suffix: str | None) -> None:
    """A file from another tool does not say which words call its style up; the user must."""
    if suffix is None and metadata is None:
        raise UserError(
            f"'{path}' has no paircustom metadata, so its style prompt is unknown; pass "
            "suffix=' in <style> style' (--suffix on the command line)."
        )
