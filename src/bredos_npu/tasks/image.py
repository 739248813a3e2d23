"""Reading images the way models expect them: upright (EXIF), RGB, at the input size."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bredos_npu.errors import ImageError, Reason
from bredos_npu.inputs import IMAGE, open_regular, shown

ImageSource = str | os.PathLike[str] | Image.Image | np.ndarray | IO[bytes]


class Decoded(NamedTuple):
    """A decoded upright RGB image and the (width, height) of the full-size upright original.

    ``image`` may be smaller than ``size`` when a JPEG was decoded at a reduced scale; results
    computed on it are mapped back to ``size``.
    """

    image: Image.Image
    size: tuple[int, int]


def open_image(source: ImageSource, size_hint: tuple[int, int] | None = None) -> Image.Image:
    """A fully decoded, upright RGB image from a path, a PIL image, an HxWx3 uint8 array or a
    binary file object.

    ``size_hint`` (width, height) lets JPEGs decode at a reduced scale that stays at least twice
    that size: a large photo then decodes several times faster for the same resized result (the
    image returned is then smaller than the file's; :func:`decode` also gives the full size).

    EXIF orientation is applied (phone photos are stored sideways), palette, grey, RGBA and CMYK
    images become RGB. Raises ImageError with one sentence for missing, unreadable, corrupt or
    truncated files, and for anything that is not a regular file (a FIFO would block forever;
    a regular file swapped for a FIFO between that check and Pillow opening the path is not
    caught: Pillow opens by path, so that it imports only the decoder the suffix names).
    """
    return decode(source, size_hint).image


def decode(source: ImageSource, size_hint: tuple[int, int] | None = None) -> Decoded:
    """Like :func:`open_image`, with the full size of the upright original (pixels).

    ``source`` may also be a binary file object (``io.BytesIO`` of bytes received from elsewhere);
    its ``name`` attribute, when set, names it in error messages.
    """
    if isinstance(source, np.ndarray):
        image = _from_array(source)
        return Decoded(image, image.size)
    if isinstance(source, Image.Image):
        image = to_rgb(ImageOps.exif_transpose(source))
        return Decoded(image, image.size)
    if isinstance(source, io.IOBase):
        return _decode_file(source, shown(str(getattr(source, "name", "the image"))), None, size_hint)
    if not isinstance(source, (str, os.PathLike)):
        raise ImageError(f"An image must be a path, a PIL image, a uint8 array or a binary file, not "
                         f"{type(source).__name__}.", reason=Reason.BAD_IMAGE_TYPE)
    path = Path(source)
    with open_regular(path, IMAGE):  # refuses FIFOs, devices and folders in one sentence
        # Pillow given a path imports only the decoder its suffix names, given a file object five
        # of them (~8 ms of every CLI start): the path was just found to be a regular file.
        return _decode_file(path, shown(path), path, size_hint)


def _decode_file(file: IO[bytes] | Path, name: str, path: Path | None,
                 size_hint: tuple[int, int] | None) -> Decoded:
    try:
        with Image.open(file) as image:
            stored = image.size  # before draft(): the full size in the file
            if size_hint:
                side = 2 * max(size_hint)  # square: EXIF may rotate the image after decoding
                image.draft("RGB", (side, side))
            image.load()
            decoded = image.size
            upright = to_rgb(ImageOps.exif_transpose(image))
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image Pillow can read (corrupt or unsupported "
                         "format)", "use a JPEG, PNG or BMP file", Reason.NOT_AN_IMAGE,
                         path=path) from None
    except FileNotFoundError:  # removed since it was checked
        raise ImageError(f"Image not found: {name}", "check the path", Reason.IMAGE_NOT_FOUND,
                         path=path) from None
    except Image.DecompressionBombError:
        raise ImageError(f"Image {name} is too large to decode safely", "scale it down first",
                         Reason.IMAGE_TOO_LARGE, path=path) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"Image {name} is truncated or corrupt ({one_line(str(exc))})",
                         "use an intact copy", Reason.IMAGE_CORRUPT, path=path) from None
    # EXIF rotation by 90 or 270 degrees swaps the sides (a square image looks the same).
    turned = upright.size != decoded
    return Decoded(upright, stored[::-1] if turned else stored)


def one_line(text: str) -> str:
    """A library's message squeezed onto one line."""
    return " ".join(text.split())


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with 16-bit, 32-bit and float grey images scaled to 8 bits first.

    Pillow's own conversion clips such images at 255, which turns most 16-bit photos white.
    """
    if image.mode in WIDE_MODES:
        values = np.asarray(image, dtype=np.float64)
        top = float(values.max()) if values.size else 0.0
        if image.mode.startswith("I;16") or top > 255:
            values = values / (257.0 if top <= 65535 else top / 255.0)
        elif image.mode == "F" and top <= 1.0:
            values = values * 255.0
        image = Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), "L")
    return image if image.mode == "RGB" else image.convert("RGB")


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    channels_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))
    if array.dtype != np.uint8 or not channels_ok or array.size == 0:
        raise ImageError(f"An image array must be HxW, HxWx1, HxWx3 or HxWx4 uint8, got {array.dtype} "
                         f"with shape {array.shape}.", reason=Reason.BAD_IMAGE_TYPE)
    return Image.fromarray(array).convert("RGB")


def resize_for_input(image: Image.Image, width: int, height: int, channels: int = 3) -> np.ndarray:
    """The image resized to width x height (bilinear, aspect not kept) as HxWxC uint8."""
    mode = "L" if channels == 1 else "RGB"
    resized = image if image.mode == mode else image.convert(mode)
    if resized.size != (width, height):
        resized = resized.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.uint8)
    return pixels[..., np.newaxis] if channels == 1 else pixels
