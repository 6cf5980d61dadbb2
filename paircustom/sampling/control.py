"""ControlNet under style guidance: the control residuals of one step, computed once for all row blocks.

A ControlNet C maps (x_t, t, text conditioning, control image) to residuals that are added to the UNet's
skip connections and middle block.  Under style guidance every row block (∅, c, c + suffix_i) gets

    down_i, mid = C(x_t, t, cond_row, image) · scale        (one ControlNet call on ALL rows of a step)
    e_row       = UNet[adapter_row](x_t, t, cond_row; + down_i, + mid)

exactly as diffusers' StableDiffusion(XL)ControlNetPipeline does for its two CFG rows; the ControlNet itself
carries no LoRA, so each row's residuals equal a plain ControlNet call on that row alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UserError

CONTROLNET_PIPELINES = {
    "StableDiffusionPipeline": "StableDiffusionControlNetPipeline",
    "StableDiffusionXLPipeline": "StableDiffusionXLControlNetPipeline",
}


def with_controlnet(pipe, controlnet):
    """The ControlNet pipeline of ``pipe``'s family sharing all of its components (diffusers' ``from_pipe``)."""
    import diffusers

    if getattr(pipe, "controlnet", None) is not None:
        raise UserError(f"this {type(pipe).__name__} already has a ControlNet; wrap it without controlnet=.")
    name = CONTROLNET_PIPELINES.get(type(pipe).__name__)
    if name is None:
        raise UserError(
            f"{type(pipe).__name__} cannot take a ControlNet here; use a StableDiffusionPipeline or "
            "StableDiffusionXLPipeline."
        )
    if type(controlnet).__name__ not in ("ControlNetModel", "MultiControlNetModel"):
        raise UserError(
            f"controlnet must be a diffusers ControlNetModel (or a folder or hub id of one); got "
            f"{type(controlnet).__name__}."
        )
    from diffusers.utils import logging

    if controlnet.dtype != pipe.unet.dtype:
        controlnet = controlnet.to(dtype=pipe.unet.dtype)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # from_pipe's notes about float32 modules are noise here
    try:
        controlled = getattr(diffusers, name).from_pipe(pipe, controlnet=controlnet.to(pipe.device))
    finally:
        logging.set_verbosity(verbosity)
    controlled.set_progress_bar_config(**getattr(pipe, "_progress_bar_config", {}))
    return controlled


def load_controlnet(name: str, dtype=torch.float32):
    """A ControlNetModel from a folder (with config.json) or a hub id; one sentence if it cannot load."""
    from diffusers import ControlNetModel

    from ..config.model_names import folder_or_hub_id

    path = folder_or_hub_id(name, "ControlNet", "config.json")
    try:
        return ControlNetModel.from_pretrained(path, torch_dtype=dtype)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0].rstrip(".")
        raise UserError(f"could not load the ControlNet '{name}' ({reason}); check the name or path.") from None


@dataclass
class Control:
    """A ControlNet, its prepared control image (1, 3, H, W) and conditioning scale, for one generation call."""

    controlnet: torch.nn.Module
    image: torch.Tensor
    scale: float

    @classmethod
    def of(cls, pipe, image, height: int, width: int, scale: float) -> Control:
        """Prepare ``image`` (PIL, path or tensor) as the pipeline's ControlNet reads it; refuse a missing one."""
        from ..config.checks import check_number
        from ..files.images import open_rgb

        controlnet = getattr(pipe, "controlnet", None)
        if controlnet is None:
            raise UserError("a control image needs a ControlNet; load one (controlnet=..., --controlnet MODEL).")
        if image is None:
            raise UserError(
                "this pipeline has a ControlNet, so give a control image (control_image=..., --control-image FILE)."
            )
        if type(controlnet).__name__ == "MultiControlNetModel":
            raise UserError("several ControlNets (MultiControlNetModel) are not supported; use one ControlNet.")
        check_number("the ControlNet conditioning scale", scale, 0, 100, hint="; 1 is diffusers' default")
        if isinstance(image, str) or hasattr(image, "__fspath__"):
            image = open_rgb(image, "control image")
        prepared = pipe.prepare_image(image, width, height, 1, 1, pipe._execution_device, controlnet.dtype)
        return cls(controlnet, prepared[:1], float(scale))

    def residuals(self, model_input: torch.Tensor, t, cond) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(down-block residuals, mid-block residual) for every row of ``model_input``, in ONE ControlNet call."""
        image = self.image.expand(len(model_input), -1, -1, -1)  # (rows, 3, H, W)
        down, mid = self.controlnet(
            model_input,
            t,
            encoder_hidden_states=cond.hidden,
            controlnet_cond=image,
            conditioning_scale=self.scale,
            added_cond_kwargs=cond.added or None,
            return_dict=False,
        )
        return list(down), mid


def residuals_kwargs(residuals) -> dict:
    """The UNet keyword arguments carrying ``residuals`` (None: none)."""
    if residuals is None:
        return {}
    down, mid = residuals
    return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
