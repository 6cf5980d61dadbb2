"""What the ComfyUI tests share: finding ComfyUI and its dependencies, a private copy of it with our node pack
installed, the tiny SD model ComfyUI recognises, and style files for it and for the shapes model.

The ComfyUI tests need ComfyUI's own environment (``integrations/comfyui/env.sh``: torchvision and friends,
which the main environment's torch lacks).  Elsewhere they skip; with PAIRCUSTOM_COMFYUI_TESTS=1 (set by
``.ci/run`` in that environment) a missing dependency fails them instead.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "integrations" / "comfyui"
COMFYUI = Path(os.environ.get("COMFYUI_PATH", ROOT.parent / "shared" / "comfyui"))
NEEDS = ("torchvision", "torchsde", "einops", "aiohttp", "av", "alembic", "sqlalchemy", "scipy")


def require_comfyui() -> None:
    """Skip this test module without ComfyUI or its dependencies; fail instead where they are required."""
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if not (COMFYUI / "main.py").is_file():
        missing.append(f"ComfyUI at {COMFYUI} (set COMFYUI_PATH)")
    if not missing:
        return
    reason = f"ComfyUI tests need {', '.join(missing)}; build the environment with integrations/comfyui/env.sh"
    if os.environ.get("PAIRCUSTOM_COMFYUI_TESTS") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def install_copy(folder: Path) -> Path:
    """A private copy of ComfyUI in ``folder`` (the shared snapshot stays untouched) with our pack linked in."""
    root = folder / "ComfyUI"
    shutil.copytree(COMFYUI, root, ignore=shutil.ignore_patterns("__pycache__"))
    for sub in ("custom_nodes", "models/loras", "output", "input", "user"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "custom_nodes" / "paircustom").symlink_to(PACK, target_is_directory=True)
    return root


def import_comfyui(root: Path):
    """Import ComfyUI from ``root`` in this process on the CPU with our pack loaded; return its ``nodes`` module."""
    sys.path.insert(0, str(root))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import nodes

    if not asyncio.run(nodes.load_custom_node(str(root / "custom_nodes" / "paircustom"))):
        raise AssertionError("ComfyUI did not load the paircustom node pack (see the log above)")
    return nodes


def build_workflows():
    """integrations/comfyui/build_workflows.py as a module (the pack is no package of this checkout)."""
    spec = importlib.util.spec_from_file_location("build_workflows", PACK / "build_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_shapes_style(path: Path) -> Path:
    """A quick style of the demo's bundled pair on the shapes model (the guider-cost benchmark's)."""
    from benchmarks.comfyui_guider_cost import train_example

    return train_example(path)


def with_family(source: Path, target: Path, family: str) -> Path:
    """A copy of a style file whose metadata names another model family."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), framework="pt") as file:
        header = dict(file.metadata())
        tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 (safe_open is no mapping)
    header["paircustom"] = json.dumps({**json.loads(header["paircustom"]), "family": family})
    save_file(tensors, str(target), metadata=header)
    return target


# A UNet ComfyUI detects as SD 1.5 (320 channels, 768-wide cross-attention, 8 heads) but with one level and one
# resnet per level: 26M parameters; its ldm layout for ComfyUI's detector, in ComfyUI's own words.
TINY_SD_LDM = {
    "num_res_blocks": [1],
    "channel_mult": [1],
    "transformer_depth": [1],
    "transformer_depth_output": [1, 1],
    "transformer_depth_middle": 1,
}


def tiny_sd_pipeline(seed: int = 0):
    """A StableDiffusionPipeline around that UNet (tiny text encoder 768 wide, tiny VAE), Euler "trailing"."""
    import torch
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    from paircustom.tiny.unet import tiny_text_encoder, tiny_vae, write_clip_tokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320,),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D",),
        up_block_types=("CrossAttnUpBlock2D",),
        cross_attention_dim=768,
        attention_head_dim=8,
    )
    tokenizer = write_clip_tokenizer(Path(os.environ.get("TMPDIR", "/tmp")) / f"paircustom-comfy-tok-{os.getpid()}")
    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, timestep_spacing="trailing"
    )
    return StableDiffusionPipeline(
        vae=tiny_vae(seed),
        text_encoder=tiny_text_encoder(len(tokenizer), 768, seed=seed),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def comfy_model_of(unet):
    """The diffusers UNet's weights in ldm layout, loaded by ComfyUI's own loader (which detects SD 1.5)."""
    import comfy.sd
    import comfy.utils

    names = comfy.utils.unet_to_diffusers(TINY_SD_LDM)  # diffusers key -> ldm key
    state = unet.state_dict()
    assert set(state) <= set(names), "the tiny UNet's layout and TINY_SD_LDM disagree"
    return comfy.sd.load_diffusion_model_state_dict({names[key]: value for key, value in state.items()})


def random_style(unet, path: Path, rank: int = 4, seed: int = 0, scale: float = 0.5) -> Path:
    """A style file in our format for ``unet``'s attention projections with random A and B (family "sd")."""
    import torch

    from paircustom.files.style_file import StyleMetadata, save_adapter

    generator = torch.Generator().manual_seed(seed)
    targets = [
        name
        for name, module in unet.named_modules()
        if name.endswith(
            (
                "attn1.to_q",
                "attn1.to_k",
                "attn1.to_v",
                "attn2.to_q",
                "attn2.to_k",
                "attn2.to_v",
                "attn1.to_out.0",
                "attn2.to_out.0",
            )
        )
    ]
    tensors = {}
    for name in targets:
        layer = unet.get_submodule(name)
        tensors[f"unet.{name}.lora_A.weight"] = (
            torch.randn(rank, layer.in_features, generator=generator) / layer.in_features**0.5
        )
        tensors[f"unet.{name}.lora_B.weight"] = torch.randn(layer.out_features, rank, generator=generator) * scale
    metadata = StyleMetadata(
        base_model="tiny-sd15",
        family="sd",
        adapter="style",
        content_rank=rank,
        style_rank=rank,
        alpha=float(rank),
        target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        basis_seed=seed,
        subject="object",
        style="random",
        style_suffix=" in random style",
        content_prompt="a photo of a sbu object",
        style_prompt="a photo of a sbu object in random style",
    )
    return save_adapter(path, tensors, metadata, overwrite=True)
