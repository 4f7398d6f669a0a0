"""Reading image files: the one image reader of the zoo (predict, val, datasets, training, calibration).

One place, so every path gets the same pixels: EXIF orientation applied and RGB uint8 out, as
``cv2.imread`` + BGR->RGB gives the official code. Like OpenCV, 16-bit images are scaled to 8 bits by
``>> 8`` (PIL's ``convert("RGB")`` would clip them, turning almost every pixel white), and the size of
an image is its size *after* the EXIF rotation, so dataset checks and the loader agree.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zoo.core.errors import DataError

# Every suffix the reader decodes, so a folder run reads the same files as a single-file run.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)
_EXIF_ORIENTATION = 0x0112
_SWAPS_SIDES = (5, 6, 7, 8)  # EXIF orientations that rotate by 90 or 270 degrees


def _unreadable(path: Path, err: Exception) -> DataError:
    if isinstance(err, Image.DecompressionBombError):
        return DataError(f"Refusing image {path}: {err} Downscale it, or raise PIL.Image.MAX_IMAGE_PIXELS "
                         "if you trust the file.")
    return DataError(f"Unreadable image {path}: {err}. Check that the file is a complete JPEG/PNG/BMP/WebP.")


def pil_to_rgb(im: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded image; 16/32-bit integer images keep their top 8 bits (OpenCV)."""
    if im.mode.startswith("I"):  # 'I;16', 'I;16B', 'I;16L', 'I' (PIL opens 16-bit PNGs as one of these)
        wide = np.asarray(im).astype(np.int64)
        gray = (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode == "F":
        raise ValueError("floating-point images are not supported (save it as 8- or 16-bit)")
    return np.array(im.convert("RGB"))


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array, EXIF orientation applied (like ``cv2.imread``).

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: the file exists but is not a readable image (or is a decompression bomb).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image not found: {path}")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return pil_to_rgb(im)
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from err


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file as :func:`load_image` returns it (after EXIF rotation), header only.

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: the file exists but is not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image not found: {path}")
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from err
    return (height, width) if orientation in _SWAPS_SIDES else (width, height)
