"""The procedural "shapes world": one anti-aliased object on a plain background.

Every image is described by three indexes, (colour, shape, background), into
``COLOURS`` and ``SHAPES``; the object's position and size are free.  The
combinations whose index sum is divisible by 7 are held out of base training
and measure how well a model composes words it has only seen apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64  # image side in pixels
SUPERSAMPLE = 4  # render at 4x and box-filter down for anti-aliasing
MARGIN = 2.0  # pixels kept free between the object and the image border
MIN_FRACTION, MAX_FRACTION = 0.35, 0.65  # object side as a fraction of the image side

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 70),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 40),
    "purple": (140, 60, 180),
    "orange": (240, 140, 30),
    "white": (240, 240, 240),
    "black": (20, 20, 20),
}
COLOUR_NAMES = tuple(COLOURS)
PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)  # (8, 3)
SHAPES = ("circle", "square", "triangle", "ring")
HOLD_OUT_MODULUS = 7

# Words that appear in captions, for tokenizers.
WORLD_WORDS = ("a", "photo", "of", "on", "background", *COLOUR_NAMES, *SHAPES)


@dataclass(frozen=True)
class Scene:
    """One image: indexes into ``COLOUR_NAMES``/``SHAPES`` plus the object's placement in pixels."""

    colour: int
    shape: int
    background: int
    left: float  # x of the object's bounding box, pixels
    top: float  # y of the object's bounding box, pixels
    size: float  # side of the object's (square) bounding box, pixels

    @property
    def combo(self) -> tuple[int, int, int]:
        return (self.colour, self.shape, self.background)


def caption(colour: int, shape: int, background: int) -> str:
    """``a photo of a <colour> <shape> on a <colour> background``."""
    return f"a photo of a {COLOUR_NAMES[colour]} {SHAPES[shape]} on a {COLOUR_NAMES[background]} background"


def is_held_out(colour: int, shape: int, background: int) -> bool:
    """Held out of base training: (colour + shape + background) % 7 == 0."""
    return (colour + shape + background) % HOLD_OUT_MODULUS == 0


def all_combos() -> list[tuple[int, int, int]]:
    """Every valid (colour, shape, background) triple; object and background colours differ."""
    n = len(COLOUR_NAMES)
    return [(c, s, b) for c in range(n) for s in range(len(SHAPES)) for b in range(n) if c != b]


def training_combos() -> list[tuple[int, int, int]]:
    return [combo for combo in all_combos() if not is_held_out(*combo)]


def held_out_combos() -> list[tuple[int, int, int]]:
    return [combo for combo in all_combos() if is_held_out(*combo)]


def random_scene(rng: np.random.Generator, combo: tuple[int, int, int] | None = None) -> Scene:
    """A random placement of ``combo`` (default: a random training combination)."""
    if combo is None:
        combos = training_combos()
        combo = combos[rng.integers(len(combos))]
    size = rng.uniform(MIN_FRACTION, MAX_FRACTION) * SIZE
    left, top = rng.uniform(MARGIN, SIZE - MARGIN - size, size=2)
    return Scene(*combo, left=float(left), top=float(top), size=float(size))


def render(scene: Scene) -> np.ndarray:
    """Draw ``scene`` as a (64, 64, 3) uint8 RGB array."""
    scale = SUPERSAMPLE
    image = Image.new("RGB", (SIZE * scale, SIZE * scale), COLOURS[COLOUR_NAMES[scene.background]])
    draw = ImageDraw.Draw(image)
    fill = COLOURS[COLOUR_NAMES[scene.colour]]
    x0, y0, side = scene.left * scale, scene.top * scale, scene.size * scale
    box = (x0, y0, x0 + side, y0 + side)
    name = SHAPES[scene.shape]
    if name == "circle":
        draw.ellipse(box, fill=fill)
    elif name == "square":
        draw.rectangle(box, fill=fill)
    elif name == "triangle":  # base at the bottom, apex at the top centre
        draw.polygon([(x0 + side / 2, y0), (x0 + side, y0 + side), (x0, y0 + side)], fill=fill)
    else:  # ring: the hole's diameter is half the outer one
        draw.ellipse(box, fill=fill)
        quarter = side / 4
        background = COLOURS[COLOUR_NAMES[scene.background]]
        draw.ellipse((x0 + quarter, y0 + quarter, x0 + 3 * quarter, y0 + 3 * quarter), fill=background)
    return np.asarray(image.resize((SIZE, SIZE), Image.Resampling.BOX))


def render_batch(rng: np.random.Generator, count: int, combos=None) -> tuple[np.ndarray, list[Scene]]:
    """``count`` random scenes (from ``combos``, default the training ones) -> ((N, 64, 64, 3) uint8, scenes)."""
    combos = training_combos() if combos is None else list(combos)
    scenes = [random_scene(rng, combos[i]) for i in rng.integers(len(combos), size=count)]
    return np.stack([render(scene) for scene in scenes]), scenes
