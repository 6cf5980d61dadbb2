"""The UNet model families behind ``family.Family``, the registry of all families, and loading a model by name.

- ``sd``:   Stable Diffusion 1.x / 2.x (one CLIP text encoder; 2.x may predict v).
- ``sdxl``: Stable Diffusion XL (two text encoders, pooled text embeddings and
            the "micro-conditioning" time ids: original size, crop, target size).
- ``sd3``, ``flux``: the flow-matching transformers, in ``flow``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from diffusers import (DiffusionPipeline, StableDiffusionControlNetPipeline, StableDiffusionPipeline,
                       StableDiffusionXLControlNetPipeline, StableDiffusionXLPipeline)
from diffusers.pipelines.stable_diffusion import StableDiffusionPipelineOutput
from diffusers.pipelines.stable_diffusion_xl import StableDiffusionXLPipelineOutput

from .errors import UserError
from .family import Conditioning, Family
from .flow import Flux, StableDiffusion3


class StableDiffusion(Family):
    name, pipeline_class, controlnet_class = "sd", StableDiffusionPipeline, StableDiffusionControlNetPipeline

    def encode(self, pipe, prompts, device, negative_prompt=None, with_negative=False, prompts_2=None,
               negative_prompt_2=None):
        negative = None if negative_prompt is None else [negative_prompt] * len(prompts)
        embeds, negative_embeds = pipe.encode_prompt(prompts, device, 1, with_negative, negative)
        return Conditioning(embeds), (Conditioning(negative_embeds) if with_negative else None)

    def output(self, images):
        return StableDiffusionPipelineOutput(images=images, nsfw_content_detected=None)


class StableDiffusionXL(Family):
    name, pipeline_class, controlnet_class = "sdxl", StableDiffusionXLPipeline, StableDiffusionXLControlNetPipeline

    def encode(self, pipe, prompts, device, negative_prompt=None, with_negative=False, prompts_2=None,
               negative_prompt_2=None):
        negative = None if negative_prompt is None else [negative_prompt] * len(prompts)
        negative_2 = None if negative_prompt_2 is None else [negative_prompt_2] * len(prompts)
        embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
            prompts, prompt_2=prompts_2, device=device, do_classifier_free_guidance=with_negative,
            negative_prompt=negative, negative_prompt_2=negative_2)
        cond = Conditioning(embeds, {"text_embeds": pooled})
        return cond, (Conditioning(negative_embeds, {"text_embeds": negative_pooled}) if with_negative else None)

    def add_size(self, pipe, cond, sizes):
        projection = int(cond.added["text_embeds"].shape[-1])
        time_ids = torch.cat([
            pipe._get_add_time_ids(s.original, s.crop_top_left, s.target, cond.hidden.dtype, projection)
            for s in sizes
        ]).to(cond.hidden.device)                                           # (B, 6)
        return Conditioning(cond.hidden, {**cond.added, "time_ids": time_ids})

    def output(self, images):
        return StableDiffusionXLPipelineOutput(images=images)


FAMILIES: dict[str, Family] = {f.name: f for f in (StableDiffusion(), StableDiffusionXL(), StableDiffusion3(), Flux())}


def family_of(pipe) -> Family:
    """The family of a loaded diffusers pipeline (none of the pipeline classes subclasses another)."""
    for family in FAMILIES.values():
        if isinstance(pipe, tuple(c for c in (family.pipeline_class, family.controlnet_class) if c is not None)):
            return family
    raise UserError(
        f"{type(pipe).__name__} is not supported; paircustom works with StableDiffusionPipeline (SD 1.x/2.x), "
        "StableDiffusionXLPipeline (SDXL), their ControlNet pipelines, StableDiffusion3Pipeline and FluxPipeline."
    )


FLOW_NOTE = ("SD3 and Flux are supported in Python only so far (paircustom.flow_guidance.FlowStyleGuidedPipeline, "
             "objective.pair_losses); the trainer and the command line take SD 1.x/2.x and SDXL")


def unet_family_of(pipe) -> Family:
    """``family_of`` for the code paths written for UNets (the trainer, StyleGuidedPipeline, the command line)."""
    family = family_of(pipe)
    if family.flow:
        raise UserError(f"{type(pipe).__name__}: {FLOW_NOTE}.")
    return family


# A Hugging Face hub id: "name" or "owner/name" (letters, digits, "-", "_", "."; not starting with "." or "-").
HUB_ID = re.compile(r"^(?:[A-Za-z0-9_][\w.-]*/)?[A-Za-z0-9_][\w.-]*$")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _folder_or_hub_id(name: str, what: str, marker: str) -> str:
    """An existing folder holding ``marker`` as its absolute path, else a hub id; refuse a missing folder."""
    path = Path(name).expanduser()
    if path.exists():
        if not (path / marker).is_file():
            raise UserError(f"'{name}' is not a diffusers {'pipeline' if what == 'model' else what} folder (no {marker}); "
                            "give a folder written by save_pretrained or a hub id.")
        return str(path.resolve())
    if not HUB_ID.match(name) or (path.parent.name and path.parent.is_dir()):   # ./x, /a/b, dir/missing
        raise UserError(f"the {what} folder '{name}' does not exist; give a diffusers folder written by "
                        f"save_pretrained or a hub id such as {EXAMPLE_IDS[what]}.")
    return name


EXAMPLE_IDS = {"model": "stabilityai/stable-diffusion-xl-base-1.0 (or 'shapes')", "VAE": "madebyollin/sdxl-vae-fp16-fix",
               "ControlNet": "diffusers/controlnet-canny-sdxl-1.0"}


def is_hub_id(model: str) -> bool:
    """True for a model that is neither the embedded one nor a local folder."""
    return model != "shapes" and not Path(model).expanduser().exists()


def resolve_model(model: str) -> tuple[str, dict]:
    """Map a model name to (absolute folder or hub id, its paircustom.json settings or {}).

    "shapes" names the small model shipped inside the package; a local folder
    saved with ``save_pretrained`` becomes its absolute path (style files then
    work from any folder); anything else must look like a hub id.  Nothing is loaded.
    """
    if model == "shapes":
        from .shapes import MODEL_DIR

        model = str(MODEL_DIR)
        if not (MODEL_DIR / "model_index.json").is_file():
            raise UserError(f"the embedded shapes model is missing from {MODEL_DIR}; reinstall paircustom.")
    model = _folder_or_hub_id(model, "model", "model_index.json")
    settings_file = Path(model) / "paircustom.json"
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    return model, settings


def check_device(device: str | None) -> str:
    """The device to run on ("cuda" when there is one, else "cpu"); refuse one this machine lacks."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise UserError(f"'{device}' is not a device; use cpu, cuda, cuda:1 or mps.") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(kind, False):
        raise UserError(f"the device '{device}' is not available on this machine; use "
                        f"{' or '.join(k for k, ok in available.items() if ok)}.")
    index = torch.device(device).index
    if kind == "cuda" and index is not None and index >= torch.cuda.device_count():
        raise UserError(f"there is no GPU {device} (this machine has {torch.cuda.device_count()}).")
    return device


def load_pipeline(model: str, dtype=torch.float32, variant: str | None = None, vae: str | None = None,
                  ) -> DiffusionPipeline:
    """Load an SD or SDXL pipeline by name, folder or hub id (its paircustom settings: ``resolve_model``).

    ``variant`` picks weight files such as "fp16"; ``vae`` (folder or hub id) replaces the pipeline's VAE,
    e.g. madebyollin/sdxl-vae-fp16-fix, which SDXL needs to decode in fp16.
    """
    path, _ = resolve_model(model)
    vae_path = _folder_or_hub_id(vae, "VAE", "config.json") if vae else None
    try:
        index = DiffusionPipeline.load_config(path)
        if any(index.get("_class_name") == f.pipeline_class.__name__ for f in FAMILIES.values() if f.flow):
            raise UserError(f"'{model}' is a {index['_class_name']}: {FLOW_NOTE}.")
        extra = {"safety_checker": None} if "safety_checker" in index else {}   # SDXL has none: no warning
        if vae_path:
            from diffusers import AutoencoderKL

            extra["vae"] = AutoencoderKL.from_pretrained(vae_path, dtype=dtype)
        pipe = DiffusionPipeline.from_pretrained(path, dtype=dtype, variant=variant, **extra)
    except UserError:
        raise
    except (OSError, ValueError) as error:   # not on the hub, no network, no such variant, an incomplete folder
        reason = str(error).strip().splitlines()[0].rstrip(".")
        what = f"the VAE '{vae}' or the model '{model}'" if vae else f"the model '{model}'"
        raise UserError(f"could not load {what} ({reason}); check the name or path.") from None
    unet_family_of(pipe)
    pipe.set_progress_bar_config(disable=True)
    return pipe
