"""What a model allows, read from its config files without loading any weights.

``ModelPlan`` holds the denoiser (UNet or transformer) as a skeleton on the meta device (layer shapes, no
memory), the tokenizers, the pixels per denoiser token and the scheduler's number
of training timesteps.  Training and generation check ranks, targets, style
files, sizes and prompt lengths against it, so a mistake is reported in one
sentence before gigabytes load (and before any progress bar).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError, reason

TOKENIZERS = ("tokenizer", "tokenizer_2", "tokenizer_3")


@dataclass
class ModelPlan:
    family: str  # "sd", "sdxl", "sd3" or "flux"
    denoiser: torch.nn.Module  # the real denoiser (UNet or transformer), or its skeleton on the meta device
    tokenizers: list  # one per text encoder
    pixel_multiple: int  # pixels per side of one denoiser token: the VAE's factor x the family's patch
    train_timesteps: int  # the most denoising steps the scheduler allows

    @classmethod
    def of_pipeline(cls, pipe) -> ModelPlan:
        from .registry import family_of

        family = family_of(pipe)
        tokenizers = [t for t in (getattr(pipe, name, None) for name in TOKENIZERS) if t is not None]
        return cls(
            family.name,
            family.denoiser(pipe),
            tokenizers,
            pipe.vae_scale_factor * family.patch,
            pipe.scheduler.config.get("num_train_timesteps", 1000),
        )

    @classmethod
    def of_folder(cls, folder: str | Path) -> ModelPlan:
        """From a diffusers folder (as written by save_pretrained); one sentence if it is incomplete."""
        import diffusers
        from transformers import AutoTokenizer

        from .registry import FAMILIES

        folder = Path(folder)
        try:
            index = json.loads((folder / "model_index.json").read_text())
            family = next((f for f in FAMILIES.values() if f.pipeline_class.__name__ == index.get("_class_name")), None)
            if family is None:
                raise UserError(
                    f"'{folder}' holds a {index.get('_class_name')}; paircustom works with "
                    "StableDiffusionPipeline (SD 1.x/2.x), StableDiffusionXLPipeline (SDXL), "
                    "StableDiffusion3Pipeline and FluxPipeline."
                )
            denoiser_class = getattr(diffusers, index[family.denoiser_name][1])  # ["diffusers", "<class name>"]
            with torch.device("meta"):
                denoiser = denoiser_class.from_config(denoiser_class.load_config(folder / family.denoiser_name))
            tokenizers = [AutoTokenizer.from_pretrained(folder / name) for name in TOKENIZERS if name in index]
            vae = json.loads((folder / "vae" / "config.json").read_text())
            scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
            return cls(
                family.name,
                denoiser,
                tokenizers,
                2 ** (len(vae["block_out_channels"]) - 1) * family.patch,
                int(scheduler.get("num_train_timesteps", 1000)),
            )
        except UserError:
            raise
        except Exception as error:  # missing or damaged config files
            raise UserError(
                f"the model folder '{folder}' is incomplete or damaged ({reason(error)}); save it again with "
                "save_pretrained or give another model."
            ) from None

    @classmethod
    def of_model(cls, model: str) -> ModelPlan | None:
        """For a folder or "shapes"; for a hub id only if its config files download (else None: checked on load)."""
        from ..config.model_names import resolve_model

        path, _ = resolve_model(model)
        if not Path(path).is_dir():
            try:
                from huggingface_hub import snapshot_download

                path = snapshot_download(
                    path,
                    allow_patterns=["model_index.json", "*/config.json", "*/*.txt", "scheduler/*.json", "tokenizer*/*"],
                )
            except Exception:  # no network, gated model, typo: loading reports it in one sentence
                return None
        return cls.of_folder(path)

    def check_targets(
        self, targets, content_rank: int, style_rank: int, orthogonal: bool = True, pairs: int = 1
    ) -> None:
        """At least one target layer, each wide enough for all orthogonal ranks (a content rank per pair)."""
        from ..adapters.basis import check_ranks
        from ..adapters.layers import target_names

        names = target_names(self.denoiser, targets)
        if not names:
            raise UserError(
                f"no layer of this UNet matches the target modules {list(targets)}; "
                "use names such as to_q, to_k, to_v, to_out.0."
            )
        if orthogonal:
            check_ranks(min(self.denoiser.get_submodule(n).in_features for n in names), content_rank, style_rank, pairs)

    def check_resolution(self, resolution: int) -> None:
        """The training size must be a whole number of denoiser tokens (SD3 and Flux: 2x2 latent patches)."""
        if resolution % self.pixel_multiple:
            multiple = self.pixel_multiple
            raise UserError(
                f"the resolution must be a multiple of {multiple} for this {self.family} model (got "
                f"{resolution}); use e.g. {max(1, round(resolution / multiple)) * multiple}."
            )

    @property
    def lora_targets(self) -> tuple[str, ...]:
        """The family's default target modules."""
        from .registry import FAMILIES

        return FAMILIES[self.family].lora_targets

    @property
    def flow(self) -> bool:
        """A rectified-flow transformer (SD3, Flux)?"""
        from .registry import FAMILIES

        return FAMILIES[self.family].flow

    def check_prompt(self, prompt: str, suffix: str) -> None:
        """``prompt + suffix`` must fit every text encoder, or truncation would silently drop the style words."""
        for tokenizer in self.tokenizers:
            limit = tokenizer.model_max_length
            count = len(tokenizer(prompt + suffix).input_ids)
            if count > limit:
                raise UserError(
                    f"the prompt {prompt + suffix!r:.120} is {count} tokens with its style suffix, but "
                    f"the text encoder reads only {limit} (start and end included), so the style words "
                    "would be cut off; shorten the prompt."
                )
