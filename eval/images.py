"""Reading image files: the one image reader of the zoo (predict, val, datasets, training, calibration).

One place, so every path gets the same pixels: EXIF orientation applied and RGB uint8 out, as
``cv2.imread`` + BGR->RGB gives the official code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zoo.core.errors import DataError


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array, EXIF orientation applied (like ``cv2.imread``).

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: the file exists but is not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image not found: {path}")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return np.array(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"Unreadable image {path}: {err}. Check that the file is a complete JPEG/PNG/BMP/WebP.") \
            from err
