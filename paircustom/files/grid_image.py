"""Labelled image grids: equally sized cells with axis titles and values drawn into the picture (Pillow's default
font), panels stacked under titles, and an animated GIF of frames.  Used by ``sweep`` (strength sweeps and blend
grids) and by anything else that shows images side by side with what made them.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

PAD = 4  # pixels around every text
GAP = 2  # pixels between cells
BACKGROUND, INK = "white", "black"


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def text_size(text: str) -> tuple[int, int]:
    """(width, height) in pixels of ``text`` in the default font."""
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=_font())
    return right - left, bottom - top


def _line_height() -> int:
    return text_size("Ag|")[1] + 2 * PAD


def _centred(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str) -> None:
    """Draw ``text`` centred in ``box`` (left, top, right, bottom)."""
    width, height = text_size(text)
    left, top, right, bottom = box
    draw.text((left + (right - left - width) // 2, top + (bottom - top - height) // 2), text, fill=INK, font=_font())


def _vertical(text: str, height: int) -> Image.Image:
    """``text`` written bottom to top, centred in a strip ``height`` pixels tall."""
    width = _line_height()
    strip = Image.new("RGB", (height, width), BACKGROUND)
    _centred(ImageDraw.Draw(strip), (0, 0, height, width), text)
    return strip.rotate(90, expand=True)


@dataclass
class Axes:
    """What a grid's edges say: a title above the columns and one value per column (or, with ``row_values``, a
    value line above each row: rows swept over different ranges), a title left of the rows and one label per row."""

    column_title: str = ""
    column_values: list[str] | None = None  # one per column, written once above the grid
    row_title: str = ""
    row_labels: list[str] | None = None  # one per row, left of it
    row_values: list[list[str]] | None = None  # per row, one per column: written above that row's cells


def labelled_grid(rows: list[list[Image.Image]], axes: Axes, zoom: int = 1) -> Image.Image:
    """Paste equally sized images into a grid and write ``axes`` around it; ``zoom`` enlarges each cell
    (nearest neighbour, so small images stay sharp)."""
    cell_w, cell_h = (side * zoom for side in rows[0][0].size)
    columns, line = max(map(len, rows)), _line_height()
    label_w = max([text_size(label)[0] for label in axes.row_labels or []] + [0]) + 2 * PAD * bool(axes.row_labels)
    left = label_w + (line if axes.row_title else 0)
    top = line * (bool(axes.column_title) + bool(axes.column_values))
    row_h = cell_h + (line if axes.row_values else 0) + GAP
    sheet = Image.new("RGB", (left + columns * (cell_w + GAP), top + len(rows) * row_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    x_of = lambda c: left + c * (cell_w + GAP)
    if axes.column_title:
        _centred(draw, (left, 0, sheet.width, line), axes.column_title)
    for c, value in enumerate(axes.column_values or []):
        _centred(draw, (x_of(c), top - line, x_of(c) + cell_w, top), value)
    if axes.row_title:
        sheet.paste(_vertical(axes.row_title, len(rows) * row_h), (0, top))
    for r, row in enumerate(rows):
        y = top + r * row_h
        if axes.row_labels:
            _centred(draw, (left - label_w, y, left, y + row_h), axes.row_labels[r])
        if axes.row_values:
            for c, value in enumerate(axes.row_values[r]):
                _centred(draw, (x_of(c), y, x_of(c) + cell_w, y + line), value)
            y += line
        for c, image in enumerate(row):
            sheet.paste(image.resize((cell_w, cell_h), Image.Resampling.NEAREST), (x_of(c), y))
    return sheet


def stack(panels: list[Image.Image], titles: list[str] | None = None) -> Image.Image:
    """Panels one under another, each under its title (left-aligned), on a white sheet."""
    line = _line_height() if titles else 0
    sheet = Image.new("RGB", (max(p.width for p in panels), sum(p.height + line for p in panels)), BACKGROUND)
    draw, y = ImageDraw.Draw(sheet), 0
    for i, panel in enumerate(panels):
        if titles:
            draw.text((PAD, y + PAD), titles[i], fill=INK, font=_font())
        sheet.paste(panel, (0, y + line))
        y += line + panel.height
    return sheet


def captioned(image: Image.Image, caption: str) -> Image.Image:
    """``image`` under a one-line caption strip."""
    return stack([image], [caption])


def save_animation(frames: list[Image.Image], path, duration_ms: int = 600) -> None:
    """Write ``frames`` as a looping animated GIF (or WebP, by the suffix) at ``path``."""
    fmt = "WEBP" if str(path).lower().endswith(".webp") else "GIF"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
