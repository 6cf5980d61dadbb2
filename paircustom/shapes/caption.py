"""A caption for an image of the shapes world, read back by the analyzer: the prompt ``stylize`` uses on the
embedded model when none is given, so that the prompt names the objects the image shows (a prompt that names
other things, such as a style file's training prompt, lets the denoiser draw those instead)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from .analyzer import analyze
from .world import SIZE


def caption_of(image: Image.Image) -> str | None:
    """ "a photo of a red circle on a blue background" for a shapes-world image (its centre square at the world's
    64x64, as stylising crops it); None when the analyzer finds no object, or one whose shape it cannot read."""
    square = ImageOps.fit(image.convert("RGB"), (SIZE, SIZE), Image.Resampling.BICUBIC)
    layout = analyze(np.asarray(square))
    if not layout.objects or any(shape < 0 for _, shape in layout.objects):
        return None
    return layout.caption


def is_shapes_model(settings: dict) -> bool:
    """Whether a model's paircustom.json settings are the shapes world's."""
    return settings.get("name") == "shapes"
