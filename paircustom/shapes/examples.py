"""Ready-made content/style pairs of the shapes world, drawn by the package itself.

    python -m paircustom.shapes.examples [--out DIR]

writes ``<name>_content.png`` and ``<name>_<style>.png`` for every pair in
``EXAMPLES`` (default DIR: ``paircustom/shapes/examples``, shipped with the package).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .styles import STYLES
from .world import SIZE, Scene, caption, render

EXAMPLES_DIR = Path(__file__).parent / "examples"


@dataclass(frozen=True)
class ExamplePair:
    """A centred object of fixed size and the style applied to it."""

    name: str
    combo: tuple[int, int, int]  # (colour, shape, background) indexes
    style: str  # key of ``STYLES``
    size: float = 0.5 * SIZE  # object side, pixels

    @property
    def caption(self) -> str:
        return caption(*self.combo)

    @property
    def style_prompt(self) -> str:
        return STYLES[self.style].prompt

    def images(self) -> tuple[np.ndarray, np.ndarray]:
        """(content, style), each (64, 64, 3) uint8."""
        corner = (SIZE - self.size) / 2
        content = render(Scene(*self.combo, left=corner, top=corner, size=self.size))
        return content, STYLES[self.style].apply(content)


EXAMPLES = {
    pair.name: pair
    for pair in (
        ExamplePair("red_circle", (0, 0, 2), "inverted"),  # red circle on blue
        ExamplePair("yellow_triangle", (3, 2, 1), "line_sketch"),  # yellow triangle on green
    )
}


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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR)
    for path in write_examples(parser.parse_args(argv).out):
        print(path)


if __name__ == "__main__":
    main()
