"""The procedural "shapes world" (v2): one to three anti-aliased objects on a plain background.

A scene is a background colour and 1-3 ``Thing``s, each a (colour, shape) at a free position and size; objects
may overlap a little, and their colours differ from each other and from the background.  Its caption lists the
objects from left to right:

    a photo of a red circle on a blue background
    a photo of a red circle and a cyan ring and a gray square on a white background

An object's (colour, shape, background) triple is *held out* when (colour + shape + background) % 7 == 0; a scene
with a held-out triple is never shown to the base model and measures how well it composes words it has only seen
apart.  The palette is closed under the benchmark styles that permute colours: its eight colours are the corners of
the RGB cube at levels 40 and 215 (so inversion and hue rotation map the palette onto itself), plus a mid gray.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64  # image side in pixels
SUPERSAMPLE = 4  # render at 4x and box-filter down for anti-aliasing
MARGIN = 2.0  # pixels kept free between an object and the image border
SINGLE_SIZE = (0.35, 0.65)  # object side as a fraction of the image side, one object
GROUP_SIZE = (0.25, 0.42)  # ... two or three objects
MIN_GAP = 6.0  # pixels between the centres of neighbouring objects, so that "left to right" is unambiguous
MAX_OVERLAP = 0.15  # an object may cover at most this share of an earlier object's bounding box
LOW, HIGH = 40, 215  # the two channel levels of the palette (LOW + HIGH = 255: inversion swaps them)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (HIGH, LOW, LOW),
    "green": (LOW, HIGH, LOW),
    "blue": (LOW, LOW, HIGH),
    "yellow": (HIGH, HIGH, LOW),
    "cyan": (LOW, HIGH, HIGH),
    "magenta": (HIGH, LOW, HIGH),
    "white": (HIGH, HIGH, HIGH),
    "black": (LOW, LOW, LOW),
    "gray": (128, 128, 128),
}
COLOUR_NAMES = tuple(COLOURS)
PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)  # (9, 3)
SHAPES = ("circle", "square", "triangle", "ring")
MAX_OBJECTS = 3
HOLD_OUT_MODULUS = 7

# Words that appear in captions, for tokenizers.
WORLD_WORDS = ("a", "photo", "of", "on", "and", "background", *COLOUR_NAMES, *SHAPES)


@dataclass(frozen=True)
class Thing:
    """One object: indexes into ``COLOUR_NAMES``/``SHAPES`` plus its (square) bounding box in pixels."""

    colour: int
    shape: int
    left: float
    top: float
    size: float

    @property
    def centre_x(self) -> float:
        return self.left + self.size / 2


@dataclass(frozen=True)
class Layout:
    """What a caption says: the background and the (colour, shape) of each object, left to right."""

    background: int
    objects: tuple[tuple[int, int], ...]

    @property
    def caption(self) -> str:
        things = " and ".join(f"a {COLOUR_NAMES[c]} {SHAPES[s]}" for c, s in self.objects)
        return f"a photo of {things} on a {COLOUR_NAMES[self.background]} background"

    @property
    def held_out(self) -> bool:
        return any(is_held_out(c, s, self.background) for c, s in self.objects)


@dataclass(frozen=True)
class Scene:
    """A drawable scene: background plus objects in drawing order (later ones on top)."""

    background: int
    things: tuple[Thing, ...]

    @property
    def layout(self) -> Layout:
        ordered = sorted(self.things, key=lambda thing: thing.centre_x)
        return Layout(self.background, tuple((thing.colour, thing.shape) for thing in ordered))


def caption(colour: int, shape: int, background: int) -> str:
    """The one-object caption ``a photo of a <colour> <shape> on a <colour> background``."""
    return Layout(background, ((colour, shape),)).caption


def is_held_out(colour: int, shape: int, background: int) -> bool:
    """Held out of base training: (colour + shape + background) % 7 == 0."""
    return (colour + shape + background) % HOLD_OUT_MODULUS == 0


def random_layout(rng: np.random.Generator, held_out: bool = False, count: int | None = None) -> Layout:
    """A random layout of ``count`` objects (default 1-3); training layouts have no held-out triple,
    held-out layouts at least one."""
    count = count or int(rng.integers(1, MAX_OBJECTS + 1))
    while True:
        background = int(rng.integers(len(COLOUR_NAMES)))
        others = [c for c in range(len(COLOUR_NAMES)) if c != background]
        colours = rng.choice(others, size=count, replace=False)
        layout = Layout(background, tuple((int(c), int(rng.integers(len(SHAPES)))) for c in colours))
        if layout.held_out == held_out:
            return layout


def _overlap(a: Thing, b: Thing) -> float:
    """Area of the intersection of two bounding boxes."""
    w = min(a.left + a.size, b.left + b.size) - max(a.left, b.left)
    h = min(a.top + a.size, b.top + b.size) - max(a.top, b.top)
    return max(w, 0.0) * max(h, 0.0)


def place(rng: np.random.Generator, layout: Layout) -> Scene:
    """Random sizes and positions for ``layout``'s objects, kept in its left-to-right order."""
    low, high = SINGLE_SIZE if len(layout.objects) == 1 else GROUP_SIZE
    while True:
        sizes = rng.uniform(low, high, size=len(layout.objects)) * SIZE
        lefts = np.sort(rng.uniform(MARGIN, SIZE - MARGIN - sizes.max(), size=len(sizes)))
        things = [Thing(c, s, float(x + (sizes.max() - d) / 2), float(rng.uniform(MARGIN, SIZE - MARGIN - d)),
                        float(d)) for (c, s), x, d in zip(layout.objects, lefts, sizes)]
        crowded = any(_overlap(a, b) > MAX_OVERLAP * min(a.size, b.size) ** 2
                      for i, a in enumerate(things) for b in things[:i])
        centres = [thing.centre_x for thing in things]
        if not crowded and all(b - a >= MIN_GAP for a, b in zip(centres, centres[1:])):
            order = rng.permutation(len(things))  # drawing order is independent of the left-to-right order
            return Scene(layout.background, tuple(things[i] for i in order))


def random_scene(rng: np.random.Generator, held_out: bool = False, count: int | None = None) -> Scene:
    return place(rng, random_layout(rng, held_out, count))


def _mask(thing: Thing, scale: int) -> Image.Image:
    """The object's coverage at ``scale`` times the image size (mode "L", 255 inside)."""
    mask = Image.new("L", (SIZE * scale, SIZE * scale), 0)
    draw = ImageDraw.Draw(mask)
    x0, y0, side = thing.left * scale, thing.top * scale, thing.size * scale
    box = (x0, y0, x0 + side, y0 + side)
    name = SHAPES[thing.shape]
    if name == "circle":
        draw.ellipse(box, fill=255)
    elif name == "square":
        draw.rectangle(box, fill=255)
    elif name == "triangle":  # base at the bottom, apex at the top centre
        draw.polygon([(x0 + side / 2, y0), (x0 + side, y0 + side), (x0, y0 + side)], fill=255)
    else:  # ring: a disc with a hole half its diameter, through which whatever lies below shows
        draw.ellipse(box, fill=255)
        quarter = side / 4
        draw.ellipse((x0 + quarter, y0 + quarter, x0 + 3 * quarter, y0 + 3 * quarter), fill=0)
    return mask


def render(scene: Scene, palette: np.ndarray | None = None) -> np.ndarray:
    """Draw ``scene`` as a (64, 64, 3) uint8 RGB array; ``palette`` (9, 3) replaces the colours (VAE training)."""
    scale = SUPERSAMPLE
    colours = PALETTE.astype(np.uint8) if palette is None else palette
    colour = lambda index: tuple(int(v) for v in colours[index])  # noqa: E731
    image = Image.new("RGB", (SIZE * scale, SIZE * scale), colour(scene.background))
    for thing in scene.things:
        image.paste(colour(thing.colour), mask=_mask(thing, scale))
    return np.asarray(image.resize((SIZE, SIZE), Image.Resampling.BOX))


def render_batch(rng: np.random.Generator, count: int, held_out: bool = False,
                 objects: int | None = None) -> tuple[np.ndarray, list[Scene]]:
    """``count`` random scenes -> ((N, 64, 64, 3) uint8, scenes)."""
    scenes = [random_scene(rng, held_out, objects) for _ in range(count)]
    return np.stack([render(scene) for scene in scenes]), scenes
