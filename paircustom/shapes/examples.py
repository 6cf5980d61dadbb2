"""Ready-made content/style pairs of the shapes world, drawn by the package itself.

    python -m paircustom.shapes.examples [--out DIR]

writes ``<name>_content.png`` and ``<name>_<style>.png`` for every pair in ``EXAMPLES`` (default DIR:
``paircustom/shapes/examples``, shipped with the package).  The pairs show three objects in four colours, so
that one pair says what a colour-changing style does to more than one colour; ``red_circle`` is the one-object
pair of the v1 world.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .families import BENCHMARK_MEMBERS
from .styles import STYLES, Style
from .world import Scene, Thing, render

EXAMPLES_DIR = Path(__file__).parent / "examples"

# A red circle, a yellow square and a white triangle on a blue background (a training layout: no triple is held out).
TRIO = Scene(2, (Thing(0, 0, left=4, top=8, size=22), Thing(3, 1, left=23, top=36, size=20),
                 Thing(6, 2, left=40, top=6, size=22)))


@dataclass(frozen=True)
class ExamplePair:
    """A fixed scene and the style applied to it."""

    name: str
    scene: Scene
    style: str  # key of ``STYLES``, or a family of ``families.BENCHMARK_MEMBERS`` (its benchmark member)

    @property
    def look(self) -> Style:
        """The style drawn; a family pair shows its benchmark member and is prompted by the family word alone."""
        return STYLES[self.style] if self.style in STYLES else BENCHMARK_MEMBERS[self.style].family_style

    @property
    def caption(self) -> str:
        return self.scene.layout.caption

    @property
    def subject(self) -> str:
        """The caption without "a photo of a ", as pair training's ``subject`` (prompt "a photo of a sbu <subject>")."""
        return self.caption.removeprefix("a photo of a ")

    @property
    def style_prompt(self) -> str:
        return self.look.prompt

    def images(self) -> tuple[np.ndarray, np.ndarray]:
        """(content, style), each (64, 64, 3) uint8."""
        content = render(self.scene)
        return content, self.look.apply(content)


# Two more training scenes in other colours, for learning one style from several pairs (``bench.quality``'s
# pair-sg-3pairs): with the trio they show eight of the nine palette colours as objects and three backgrounds.
MORE_SCENES = (
    # a green ring and a cyan triangle and a magenta square on a white background
    Scene(6, (Thing(1, 3, left=3, top=20, size=20), Thing(4, 2, left=22, top=4, size=20),
              Thing(5, 1, left=42, top=30, size=19))),
    # a blue circle and a gray square and a yellow ring on a black background
    Scene(7, (Thing(2, 0, left=4, top=36, size=21), Thing(8, 1, left=22, top=8, size=20),
              Thing(3, 3, left=41, top=34, size=20))),
)

# A centred red circle on blue: one object in colours both the v1 and the v2 palettes name.
RED_CIRCLE = Scene(2, (Thing(0, 0, left=16, top=16, size=32),))

EXAMPLES = {pair.name: pair for pair in (ExamplePair("red_circle", RED_CIRCLE, "inverted"),
                                         ExamplePair("trio", TRIO, "inverted"),
                                         ExamplePair("trio_sketch", TRIO, "line_sketch"),
                                         ExamplePair("trio_posterized", TRIO, "posterized"),
                                         *(ExamplePair(f"trio_{family}", TRIO, family) for family in BENCHMARK_MEMBERS))}


def write_examples(directory: str | Path = EXAMPLES_DIR) -> list[Path]:
    """Save every example pair as two PNGs in ``directory``; returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for pair in EXAMPLES.values():
        for suffix, image in zip(("content", pair.style), pair.images()):
            paths.append(directory / f"{pair.name}_{suffix}.png")
            Image.fromarray(image).save(paths[-1])
    return paths


def example_paths(name: str) -> tuple[Path, Path]:
    """(content, style) PNG paths of a shipped example pair."""
    pair = EXAMPLES[name]
    return EXAMPLES_DIR / f"{name}_content.png", EXAMPLES_DIR / f"{name}_{pair.style}.png"


def example_config(name: str, output: str | Path, **settings):
    """The ``TrainConfig`` that trains example ``name``'s style on the embedded model, as ``paircustom demo`` does;
    ``settings`` are its other fields (steps, progress, ...)."""
    from ..config.train import TrainConfig

    pair, (content, style) = EXAMPLES[name], example_paths(name)
    return TrainConfig(str(content), str(style), subject=pair.subject, style=pair.style_prompt, model="shapes",
                       output=str(output), **settings)  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR)
    for path in write_examples(parser.parse_args(argv).out):
        print(path)


if __name__ == "__main__":
    main()
