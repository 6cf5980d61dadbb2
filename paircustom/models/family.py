"""The interface every model family implements (``Family``), and what it hands the denoiser.

A *family* knows how to turn prompts into the denoiser's ``Conditioning`` and which extra inputs its denoiser
takes.  Training, guidance and file formats are written once against this interface; the SD and SDXL families
and the registry of all of them live in ``families``, SD3 and Flux in ``flow``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config.targets import DEFAULT_TARGETS


@dataclass
class Conditioning:
    """Text conditioning of a batch: one row per sample."""

    hidden: torch.Tensor  # (B, T, D) encoder_hidden_states
    added: dict[str, torch.Tensor] = field(default_factory=dict)  # SDXL: text_embeds (B, P), time_ids (B, 6)

    def __len__(self) -> int:
        return self.hidden.shape[0]

    def unet_kwargs(self) -> dict:
        return {"encoder_hidden_states": self.hidden, "added_cond_kwargs": self.added or None}

    def select(self, rows: list[int]) -> Conditioning:
        """The given rows, in that order."""
        return Conditioning(self.hidden[rows], {k: v[rows] for k, v in self.added.items()})

    def repeat(self, times: int) -> Conditioning:
        """Repeat every row ``times`` times in place: (a, b) -> (a, a, b, b)."""
        return Conditioning(
            self.hidden.repeat_interleave(times, 0), {k: v.repeat_interleave(times, 0) for k, v in self.added.items()}
        )

    @staticmethod
    def cat(parts: list[Conditioning]) -> Conditioning:
        return Conditioning(
            torch.cat([p.hidden for p in parts]), {k: torch.cat([p.added[k] for p in parts]) for k in parts[0].added}
        )


@dataclass(frozen=True)
class Size:
    """SDXL micro-conditioning of one image; SD ignores it."""

    original: tuple[int, int]  # (height, width) before resizing
    crop_top_left: tuple[int, int]  # (top, left)
    target: tuple[int, int]  # (height, width) generated / trained


class Family:
    """The interface; one subclass per family (UNet families here, SD3 and Flux in ``flow``)."""

    name: str
    pipeline_class: type
    controlnet_class: type | None = None  # its ControlNet pipeline (SD, SDXL)
    denoiser_name = lora_prefix = "unet"  # pipe.<denoiser_name>; the style file's key prefix
    lora_targets = DEFAULT_TARGETS
    flow = False  # trained by flow matching (else DDPM eps / v)
    patch = 1  # latents per side of one denoiser token (SD3, Flux: 2x2 patches)
    # sampling defaults of the family where they differ from ``GENERATE`` (None: GENERATE's)
    default_guidance = default_style_start_fraction = default_steps = None

    def denoiser(self, pipe):
        return getattr(pipe, self.denoiser_name)

    def training_objective(self, pipe):
        """The forward process training noises with (``forward``): each family says which."""
        raise NotImplementedError

    def predict(self, model, noisy, timesteps, cond: Conditioning) -> torch.Tensor:
        """The denoiser's output for latents (B, C, h, w) at ``timesteps`` (the scheduler's units), same layout."""
        return model(noisy, timesteps, **cond.unet_kwargs()).sample

    def vae_latents(self, vae, mean, std):
        """Training latents' (mean, std) from the VAE's posterior."""
        return mean * vae.config.scaling_factor, std * vae.config.scaling_factor

    def text_encoders(self, pipe):
        return [getattr(pipe, n, None) for n in ("text_encoder", "text_encoder_2")]

    def pipeline_latents(self, latents):
        """Latents (B, C, h, w) in the layout the family's pipeline takes and returns (Flux: packed)."""
        return latents

    def from_pipeline_latents(self, latents, shape):
        return latents

    def encode(
        self,
        pipe,
        prompts: list[str],
        device,
        negative_prompt=None,
        with_negative=False,
        prompts_2=None,
        negative_prompt_2=None,
    ):
        """Return (cond, uncond-or-None) for ``prompts``; uncond follows the pipeline's own rules.

        ``prompts_2``/``negative_prompt_2``: SDXL's second text encoder (None: the same as the first).
        """
        raise NotImplementedError

    def add_size(self, pipe, cond: Conditioning, sizes: list[Size]) -> Conditioning:
        """Attach per-sample size conditioning (SDXL); identity for SD."""
        return cond

    def output(self, images):
        """Wrap images (or latents) in the family's own pipeline output class."""
        raise NotImplementedError
