"""Reading images the way models expect them: upright (EXIF), RGB, at the input size."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bredos_npu.errors import ImageError

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
        upright = ImageOps.exif_transpose(source)
        return upright if upright.mode == "RGB" else upright.convert("RGB")
    path = Path(source)
    if not path.exists():
        raise ImageError(f"Image not found: {path}: check the path.")
    if path.is_dir():
        raise ImageError(f"{path} is a folder, not an image: pass image files.")
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            # Large camera photos are normal here; Pillow's bomb warning is meant for servers.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if size_hint:
                side = 2 * max(size_hint)  # square: EXIF may rotate the image after decoding
                image.draft("RGB", (side, side))
            image.load()
            upright = ImageOps.exif_transpose(image)
            return upright if upright.mode == "RGB" else upright.convert("RGB")
    except PermissionError:
        raise ImageError(f"Cannot read image {path}: permission denied.") from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{path} is not an image Pillow can read (corrupt or unsupported format): "
            "use a JPEG, PNG or BMP file."
        ) from None
    except Image.DecompressionBombError:
        raise ImageError(f"Image {path} is too large to decode safely: scale it down first.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"Image {path} is truncated or corrupt ({exc}): use an intact copy.") from None


def _from_array(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ImageError(
            f"An image array must be HxW or HxWxC uint8, got {array.dtype} with shape {array.shape}."
        )
    return Image.fromarray(array).convert("RGB")


def resize_for_input(image: Image.Image, width: int, height: int, channels: int = 3) -> np.ndarray:
    """The image resized to width x height (bilinear, aspect not kept) as HxWxC uint8."""
    mode = "L" if channels == 1 else "RGB"
    resized = image if image.mode == mode else image.convert(mode)
    if resized.size != (width, height):
        resized = resized.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.uint8)
    return pixels[..., np.newaxis] if channels == 1 else pixels


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})


def expand_sources(paths: Iterable[str | os.PathLike[str]], recursive: bool = False) -> Iterator[Path]:
    """Files as given, and the image files inside folders (sorted; subfolders with ``recursive``).

    Lazily, so a folder of 100 000 images is walked while the first ones are classified.
    Files named explicitly are yielded whatever their suffix (a broken one is then reported).
    """
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            yield path
            continue
        walker = path.rglob("*") if recursive else path.iterdir()
        for found in sorted(walker):
            if found.suffix.lower() in IMAGE_SUFFIXES and not found.is_dir():
                yield found
