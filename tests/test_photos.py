"""The offline real photographs: pixels as scikit-image documents them, and their license recorded."""
from __future__ import annotations

import numpy as np
import pytest

from zoo.eval.photos import COCO_LIKE, PHOTOS, photo_license, real_photos

pytest.importorskip("skimage")


def test_photos_load_as_rgb_uint8_with_the_shapes_scikit_image_documents():
    photos = {p.name: p for p in real_photos()}
    assert set(photos) == set(PHOTOS) and set(COCO_LIKE) <= set(PHOTOS)
    # shapes from the skimage.data docstrings (astronaut (512, 512, 3), chelsea (300, 451, 3), coffee (400, 600, 3))
    assert photos["astronaut"].image.shape == (512, 512, 3)
    assert photos["chelsea"].image.shape == (300, 451, 3)
    assert photos["coffee"].image.shape == (400, 600, 3)
    assert photos["motorcycle_left"].image.shape == (500, 741, 3)
    cam = photos["camera"].image  # a gray photo becomes three equal channels
    assert cam.shape == (512, 512, 3) and np.array_equal(cam[..., 0], cam[..., 2])
    assert all(p.image.dtype == np.uint8 for p in photos.values())


def test_every_photo_records_its_license_statement():
    assert "public domain" in photo_license("astronaut").lower()
    assert "cc0" in photo_license("chelsea").lower()
    assert "local measurement only" in photo_license("motorcycle_left")  # Middlebury: no statement given
    with pytest.raises(KeyError, match="Unknown photo"):
        photo_license("lena")
