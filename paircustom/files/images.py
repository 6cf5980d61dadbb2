"""Reading the content/style pair and writing images safely."""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from PIL.PngImagePlugin import PngInfo

from ..config.checks import check_writable  # noqa: F401  (re-exported: the writers import it from here)
from ..config.validate import check_image_arg, check_input_file
from ..errors import PairCustomWarning, UserError, disk_full, full_disk_error, reason

# Two images of one picture may differ in size, not in shape: aspect ratios within 2% count as equal.
ASPECT_TOLERANCE = 0.02
MAX_SIDE_PIXELS = 8192
MAX_PIXELS = MAX_SIDE_PIXELS**2  # larger images are refused before decoding (a 68-byte PNG can declare 400 MP)
MAX_ASPECT = 8  # longest side / shortest side
ROLES = ("content image", "style image")  # the images of a pair, as refusals and notices name them


@dataclass(frozen=True)
class PreparedImage:
    """A training image brought to (resolution, resolution), with SDXL's micro-conditioning."""

    pixels: torch.Tensor  # (3, H, W) in [-1, 1]
    original_size: tuple[int, int]  # (height, width) of the file
    crop_top_left: tuple[int, int]  # (top, left) of the crop, in resized pixels


def open_rgb(path: str | Path, role: str) -> Image.Image:
    """Open ``path`` as upright RGB or raise a UserError naming the ``role`` ("content image", ...).

    EXIF orientation is applied, 16-bit and float greyscale are scaled (not clipped to white),
    transparency is composited over white, and images over ``MAX_PIXELS`` are refused before decoding.
    """
    path = Path(path)
    check_input_file(path, role, "a PNG or JPEG file")
    bomb = (
        f"the {role} '{path}' declares more than {MAX_PIXELS // 2**20} megapixels, which is refused as a possible "
        f"decompression bomb; give an image of at most {MAX_SIDE_PIXELS}x{MAX_SIDE_PIXELS} pixels."
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise UserError(bomb)
                image = to_rgb(ImageOps.exif_transpose(image))
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(bomb) from None
    except Exception as error:  # decoders of damaged files raise OSError, SyntaxError, ValueError, EOFError, ...
        raise UserError(
            f"the {role} '{path}' is not a readable image ({reason(error)}); give a PNG or JPEG file."
        ) from None
    check_shape(image, role, f"'{path}'")
    return image


def check_shape(image: Image.Image, role: str, where: str = "") -> None:
    """The size rules of every input picture, for files and PIL images alike (``where``: the file, if any)."""
    width, height = image.size
    where = f" {where}" if where else ""
    if width * height > MAX_PIXELS:
        raise UserError(
            f"the {role}{where} has more than {MAX_PIXELS // 2**20} megapixels; give an image of at most "
            f"{MAX_SIDE_PIXELS}x{MAX_SIDE_PIXELS} pixels."
        )
    if min(width, height) < 1 or max(width, height) > MAX_ASPECT * min(width, height):
        raise UserError(
            f"the {role}{where} is {width}x{height}, more than {MAX_ASPECT} times as long as it is "
            "wide; crop it closer to a square (training uses the centre square)."
        )


def picture(image, role: str) -> Image.Image:
    """A path or a PIL image as upright RGB, judged by the same rules (``open_rgb``; numpy arrays refused)."""
    image = check_image_arg(role.replace(" ", "_"), image)
    if isinstance(image, str):
        return open_rgb(image, role)
    check_shape(image, role)
    return to_rgb(ImageOps.exif_transpose(image))


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB of any Pillow mode: integer and float greyscale scaled by their range, alpha over white."""
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        array = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16") or (mode == "I" and array.max(initial=0) > 255):
            array = array / 257.0  # 16-bit range (I;16 from 16-bit PNG/TIFF)
        elif mode == "F" and array.max(initial=0) <= 1.0:
            array = array * 255.0  # float images in [0, 1]
        array = np.nan_to_num(array, nan=0.0, posinf=255.0, neginf=0.0)
        return Image.fromarray(np.clip(array.round(), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def prepare(image: Image.Image, resolution: int) -> PreparedImage:
    """Resize the shorter side to ``resolution`` and take the centre square (as SD training scripts do)."""
    width, height = image.size
    scale = resolution / min(width, height)
    new_w, new_h = max(resolution, round(width * scale)), max(resolution, round(height * scale))
    resized = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    top, left = (new_h - resolution) // 2, (new_w - resolution) // 2
    cropped = resized.crop((left, top, left + resolution, top + resolution))
    array = np.asarray(cropped, dtype=np.float32) / 127.5 - 1.0  # (H, W, 3)
    return PreparedImage(torch.from_numpy(array).permute(2, 0, 1).contiguous(), (height, width), (top, left))


def load_pair(content: str | Path, style: str | Path, resolution: int) -> tuple[PreparedImage, PreparedImage]:
    """Load both images of the pair with the same relative crop; refuse pairs of different shapes."""
    content_image, style_image = open_rgb(content, "content image"), open_rgb(style, "style image")
    (cw, ch), (sw, sh) = content_image.size, style_image.size
    if abs(cw / ch - sw / sh) > ASPECT_TOLERANCE * (cw / ch):
        raise UserError(
            f"the content image is {cw}x{ch} but the style image is {sw}x{sh}: the two must show the same "
            "picture at the same aspect ratio; crop them to match."
        )
    return prepare(content_image, resolution), prepare(style_image, resolution)


def say_resized(pairs, images: list[PreparedImage], resolution: int) -> None:
    """One warning line per pair naming each of its images that training resizes; said once every refusal of the
    run is past (``pairs``: (content, style) paths; ``images``: ``load_pair``'s images, content then style)."""
    for paths, prepared in zip(pairs, zip(images[0::2], images[1::2])):
        sizes = [
            (role, Path(path).name, image.original_size[::-1]) for role, path, image in zip(ROLES, paths, prepared)
        ]
        resized = [(role, name, w, h) for role, name, (w, h) in sizes if (w, h) != (resolution, resolution)]
        if not resized:
            continue
        cropped = " and centre-cropped" if any(w != h for *_, w, h in resized) else ""
        what = " and ".join(f"the {role} {name} ({w}x{h})" for role, name, w, h in resized)
        warnings.warn(
            f"resizing {what} to {resolution}x{resolution}{cropped}, the training resolution (--resolution).",
            PairCustomWarning,
            stacklevel=2,
        )


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1]: the inverse of ``to_uint8``."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


LABEL_HEIGHT = 14  # pixels of the caption strip above labelled columns


def grid(rows: list[list[Image.Image]], labels: list[str] | None = None, font_size: int | None = None) -> Image.Image:
    """Paste equally sized images into a rows x columns grid; ``labels`` captions each column above it, in PIL's
    small bitmap font, or in its scalable font at ``font_size`` pixels."""
    from PIL import ImageDraw, ImageFont

    width, height = rows[0][0].size
    font = ImageFont.load_default(size=font_size) if font_size else None
    top = (font_size + 8 if font_size else LABEL_HEIGHT) if labels else 0
    sheet = Image.new("RGB", (width * max(map(len, rows)), top + height * len(rows)), "white")
    for c, label in enumerate(labels or []):
        ImageDraw.Draw(sheet).text((c * width + 2, 1 + bool(font_size)), label, fill="black", font=font)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            sheet.paste(image, (c * width, top + r * height))
    return sheet


def atomic_write(path: str | Path, write) -> Path:
    """Call ``write(temp_path)`` then rename onto ``path``, so a crash never leaves half a file; a full disk
    is one sentence (``errors.full_disk_error``), with the temporary file gone."""
    path = Path(path)
    temp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # only now: a refused run leaves no empty folder
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
        os.close(handle)
        write(temp)
        os.chmod(temp, final_mode())  # mkstemp makes 0600; give the file the user's usual mode
        os.replace(temp, path)
    except Exception as error:
        if disk_full(error):
            raise full_disk_error(path, error) from None
        raise
    finally:
        if temp is not None and os.path.exists(temp):
            os.remove(temp)
    return path


def final_mode() -> int:
    """The mode a new file gets under the user's umask."""
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


def save_image(image: Image.Image, path: str | Path, overwrite: bool, text: dict[str, str] | None = None) -> Path:
    """Write a PNG/JPEG atomically, refusing to overwrite unless asked; ``text`` goes into PNG text chunks."""
    path = check_writable(path, overwrite)
    image_format = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    options = {}
    if text and image_format == "PNG":
        info = PngInfo()
        for key, value in text.items():
            info.add_itxt(key, value)  # international text: prompts may be any language
        options["pnginfo"] = info
    return atomic_write(path, lambda temp: image.save(temp, format=image_format, **options))
