"""Reading images the way models expect them: upright (EXIF), RGB, at the input size."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bredos_npu.errors import ImageError, Reason

ImageSource = str | os.PathLike[str] | Image.Image | np.ndarray


def open_image(source: ImageSource, size_hint: tuple[int, int] | None = None) -> Image.Image:
    """A fully decoded, upright RGB image from a path, a PIL image or an HxWx3 uint8 array.

    ``size_hint`` (width, height) lets JPEGs decode at a reduced scale that stays at least twice
    that size: a large photo then decodes several times faster for the same resized result.

    EXIF orientation is applied (phone photos are stored sideways), palette, grey, RGBA and CMYK
    images become RGB. Raises ImageError with one sentence for missing, unreadable, corrupt or
    truncated files.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, Image.Image):
        return to_rgb(ImageOps.exif_transpose(source))
    if not isinstance(source, (str, os.PathLike)):
        raise ImageError(f"An image must be a path, a PIL image or a uint8 array, not "
                         f"{type(source).__name__}.", reason=Reason.BAD_IMAGE_TYPE)
    path = Path(source)
    if not path.exists():
        raise ImageError(f"Image not found: {path}", "check the path", Reason.IMAGE_NOT_FOUND, path=path)
    if path.is_dir():
        raise ImageError(f"{path} is a folder, not an image", "pass image files", Reason.IMAGE_IS_FOLDER,
                         path=path)
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            # Large camera photos are normal here; Pillow's bomb warning is meant for servers.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if size_hint:
                side = 2 * max(size_hint)  # square: EXIF may rotate the image after decoding
                image.draft("RGB", (side, side))
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except PermissionError:
        raise ImageError(f"Cannot read image {path}: permission denied.", reason=Reason.IMAGE_UNREADABLE,
                         path=path) from None
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not an image Pillow can read (corrupt or unsupported format)",
                         "use a JPEG, PNG or BMP file", Reason.NOT_AN_IMAGE, path=path) from None
    except Image.DecompressionBombError:
        raise ImageError(f"Image {path} is too large to decode safely", "scale it down first",
                         Reason.IMAGE_TOO_LARGE, path=path) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"Image {path} is truncated or corrupt ({exc})", "use an intact copy",
                         Reason.IMAGE_CORRUPT, path=path) from None


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
