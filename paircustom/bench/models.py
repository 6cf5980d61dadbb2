"""The models the benchmark runs on, all built in code with random weights (no network, no downloads).

    small   the embedded shapes model when present, else ``tiny.build_tiny_pipeline("sd")``
    mid     an SD-1.5-shaped UNet at 3/8 width (~220 M parameters) on 32x32 latents, SD's published
            VAE configuration (256 px <-> 32x32x4) and a tiny 768-wide text encoder
    sdxl    SDXL's published UNet configuration (~2.6 B parameters) on 64x64 latents (512 px), SDXL's VAE
            configuration and tiny 768 + 1280-wide text encoders; bf16, meant for a GPU
    flux    FLUX.1-dev's transformer at its real widths (3072 hidden, 24 heads x 128, 4096-wide T5 and 768-wide
            pooled CLIP inputs, 16 latent channels, guidance embedding) with 1 double- and 1 single-stream block
            (of 19 + 38), on 16x16 packed tokens (a 256 px image) from a tiny 2x VAE, tiny encoders of those widths
    flux-tiny  ``tiny_flow.build_tiny_flow_pipeline("flux")`` (tests)

Each ``ModelSpec`` also says how the benchmark trains on it (resolution, rank, learning rate).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, StableDiffusionXLPipeline
from diffusers import FluxPipeline, FluxTransformer2DModel, UNet2DConditionModel
from PIL import Image

from ..adapters.layers import target_names
from ..files.style_file import StyleMetadata, lora_state_dict, save_adapter
from ..models.registry import family_of
from ..tiny.unet import build_tiny_pipeline, sd_scheduler, tiny_text_encoder, write_clip_tokenizer
from ..tiny.flow import build_tiny_flow_pipeline, tiny_flow_vae, tiny_t5
from ..config.model_names import folder_settings
from ..shapes import MODEL_DIR
from ..config.train import DEFAULT_TARGETS, TrainConfig, model_defaults
from ..training.trainer import PairTrainer

# SD 1.x UNet layout (CompVis config), channels scaled from (320, 640, 1280, 1280).
MID_UNET = dict(
    sample_size=32, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(160, 320, 640, 640),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768, attention_head_dim=8,
)
# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (sample_size 128 there; 64 = 512 px here).
SDXL_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
# black-forest-labs/FLUX.1-dev transformer/config.json, except the number of blocks (19 double, 38 single there).
FLUX_TRANSFORMER = dict(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=128,
                        num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                        guidance_embeds=True, axes_dims_rope=(16, 56, 56))
# runwayml/stable-diffusion-v1-5 vae/config.json (SDXL's differs only in the scaling factor and fp16 upcast).
SD_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
)


@dataclass(frozen=True)
class ModelSpec:
    """One benchmark model and the training settings used on it."""

    name: str             # "tiny", "shapes", "mid" or "sdxl"
    label: str            # what the table calls it
    resolution: int       # training / sampling size in pixels
    rank: int             # content and style LoRA rank
    learning_rate: float
    dtype: torch.dtype = torch.float32


def _shapes_spec() -> ModelSpec:
    """The embedded model with the training defaults of its paircustom.json."""
    defaults = model_defaults(folder_settings(str(MODEL_DIR)))
    return ModelSpec("shapes", "shapes (embedded)", defaults["resolution"], defaults["rank"], defaults["learning_rate"])


SPECS = {
    "tiny": ModelSpec("tiny", "tiny SD (in-code)", 32, 4, 1e-2),
    "shapes": _shapes_spec(),
    "mid": ModelSpec("mid", "mid-size SD (220 M UNet)", 256, 64, 1e-4),
    "sdxl": ModelSpec("sdxl", "SDXL-shaped (2.6 B UNet)", 512, 64, 1e-4, torch.bfloat16),
    "flux": ModelSpec("flux", "Flux-shaped (real widths, 1 + 1 blocks)", 64, 16, 1e-4),
    "flux-tiny": ModelSpec("flux-tiny", "tiny Flux (in-code)", 32, 4, 1e-2),
}


def shapes_available() -> bool:
    return (MODEL_DIR / "model_index.json").is_file()


def build_unet(name: str, device=None) -> UNet2DConditionModel:
    """The mid-size or SDXL-shaped UNet; ``device="meta"`` builds it without memory (to count parameters)."""
    torch.manual_seed(0)
    with torch.device(device or "cpu"):
        return UNet2DConditionModel(**{"mid": MID_UNET, "sdxl": SDXL_UNET}[name])


def build_pipeline(name: str, device: str = "cpu"):
    """A ready pipeline (progress bars off) of the named model, on ``device`` in its spec's dtype."""
    spec = SPECS[name]
    if name == "tiny":
        pipe = build_tiny_pipeline("sd")
    elif name == "flux-tiny":
        pipe = build_tiny_flow_pipeline("flux")
    elif name == "flux":
        pipe = build_flux_shaped()
    elif name == "shapes":
        from ..models.registry import load_pipeline

        pipe = load_pipeline("shapes")
    else:
        with tempfile.TemporaryDirectory(prefix="paircustom-bench-") as folder:   # the tokenizer reads it at once
            tokenizer = write_clip_tokenizer(Path(folder) / "tokenizer")
        torch.manual_seed(0)
        if name == "mid":
            pipe = StableDiffusionPipeline(
                vae=AutoencoderKL(**SD_VAE, sample_size=256), text_encoder=tiny_text_encoder(len(tokenizer), 768),
                tokenizer=tokenizer, unet=build_unet("mid", device), scheduler=sd_scheduler(), safety_checker=None,
                feature_extractor=None, requires_safety_checker=False)
        else:  # SDXL: hidden states 768 + 1280 = 2048 wide, pooled 1280 (+ 6 x 256 time ids = 2816)
            pipe = StableDiffusionXLPipeline(
                vae=AutoencoderKL(**SD_VAE, sample_size=512, scaling_factor=0.13025, force_upcast=True),
                text_encoder=tiny_text_encoder(len(tokenizer), 768), tokenizer=tokenizer,
                text_encoder_2=tiny_text_encoder(len(tokenizer), 1280, projection=1280, seed=1),
                tokenizer_2=tokenizer, unet=build_unet("sdxl", device), scheduler=sd_scheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device) if spec.dtype == torch.float32 else pipe.to(device, spec.dtype)


def build_flux_shaped(transformer: dict = FLUX_TRANSFORMER):
    """A ``FluxPipeline`` around a transformer of ``transformer``'s configuration (default: Flux's widths, few
    blocks), with a tiny 2x VAE of 16 latent channels and tiny CLIP (768) and T5 (4096) encoders."""
    clip = build_tiny_flow_pipeline("flux")       # its tokenizers and scheduler
    torch.manual_seed(0)
    return FluxPipeline(scheduler=clip.scheduler, vae=tiny_flow_vae(0, latent_channels=16),
                        text_encoder=tiny_text_encoder(len(clip.tokenizer), 768), tokenizer=clip.tokenizer,
                        text_encoder_2=tiny_t5(len(clip.tokenizer_2), 4096, seed=2, ff=64),
                        tokenizer_2=clip.tokenizer_2, transformer=FluxTransformer2DModel(**transformer))


def parameter_count(name: str) -> int:
    """Parameters of the named UNet, built on the meta device (no memory, no compute: the CPU check of SDXL)."""
    return sum(p.numel() for p in build_unet(name, "meta").parameters())


def write_pair(folder: Path, size: int) -> tuple[str, str]:
    """A smooth random content image and its colour inversion as the style image (size x size PNGs)."""
    rng = np.random.default_rng(0)
    coarse = rng.random((8, 8, 3))
    content = Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    style = Image.fromarray(255 - np.asarray(content))
    folder.mkdir(parents=True, exist_ok=True)
    content.save(folder / "content.png")
    style.save(folder / "style.png")
    return str(folder / "content.png"), str(folder / "style.png")


def make_trainer(spec: ModelSpec, pipe, folder: Path, checkpointing: bool = False) -> PairTrainer:
    """A ``PairTrainer`` on ``pipe`` with the spec's settings, style from step 0, one draw per step."""
    content, style = write_pair(folder, spec.resolution)
    config = TrainConfig(content, style, subject="dog", style="watercolor", model=spec.name,
                         output=str(folder / "style.safetensors"), rank=spec.rank, learning_rate=spec.learning_rate,
                         max_steps=10 ** 6, style_start_step=0, gradient_accumulation=1, resolution=spec.resolution,
                         mixed_precision="bf16" if spec.dtype == torch.bfloat16 else "no",
                         gradient_checkpointing=checkpointing, progress=False, overwrite=True)
    return PairTrainer(config, pipe)


STYLE_SUFFIXES = (" in watercolor style", " in sketch style", " in oil painting style")


def write_random_styles(pipe, folder: Path, rank: int, count: int) -> list[Path]:
    """``count`` style files with random A (r, in) and B (out, r) on every attention projection of ``pipe``."""
    generator = torch.Generator().manual_seed(0)
    family = family_of(pipe).name
    paths = []
    for i, suffix in zip(range(count), STYLE_SUFFIXES):
        A, B = {}, {}
        for name in target_names(pipe.unet):
            layer = pipe.unet.get_submodule(name)
            A[name] = torch.randn(rank, layer.in_features, generator=generator) / layer.in_features ** 0.5
            B[name] = torch.randn(layer.out_features, rank, generator=generator) * 0.01
        prompt = "a photo of a sbu dog"
        metadata = StyleMetadata(base_model="bench", family=family, adapter="style", content_rank=rank,
                                 style_rank=rank, alpha=rank, target_modules=list(DEFAULT_TARGETS), basis_seed=0,
                                 subject="dog", style=suffix.split(" in ")[1], style_suffix=suffix,
                                 content_prompt=prompt, style_prompt=prompt + suffix)
        paths.append(save_adapter(folder / f"style{i}.safetensors", lora_state_dict(A, B, 1.0), metadata, True))
    return paths
