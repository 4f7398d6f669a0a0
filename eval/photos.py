"""Real photographs available offline: the ones scikit-image ships inside its wheel, read from disk.

Why: the zoo never downloads data, yet some checks need real images (how far a quantized COCO detector
drifts from float32, whether a saliency map is faithful). scikit-image's package carries a few
photographs in ``skimage/data`` under public-domain / CC0 terms, which each loader's docstring states;
:func:`photo_license` returns that statement so every report can record it. The Middlebury motorcycle
pair carries no license statement there: it is used for local measurement only, never redistributed.
Nothing here imports scikit-image's image code; the files are read with the zoo's own reader.
"""
from __future__ import annotations

import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.eval.images import load_image

EXTRA_NOTE = "real photos need scikit-image: pip install effzoo[photos]"
# photo name -> (file in skimage/data, the skimage.data function whose docstring states its license)
PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("astronaut.png", "astronaut"),
    "chelsea": ("chelsea.png", "chelsea"),
    "coffee": ("coffee.png", "coffee"),
    "motorcycle_left": ("motorcycle_left.png", "stereo_motorcycle"),
    "motorcycle_right": ("motorcycle_right.png", "stereo_motorcycle"),
    "camera": ("camera.png", "camera"),
    "rocket": ("rocket.jpg", "rocket"),
    "clock_motion": ("clock_motion.png", "clock"),
    "hubble_deep_field": ("hubble_deep_field.jpg", "hubble_deep_field"),
}
# The photographs with everyday objects (people, animals, vehicles, a cup), i.e. COCO classes to find.
COCO_LIKE = ("astronaut", "chelsea", "coffee", "motorcycle_left", "motorcycle_right", "rocket")


@dataclass(frozen=True)
class Photo:
    """One photograph: (H, W, 3) uint8 RGB pixels, where it came from, and its license statement."""

    name: str
    image: np.ndarray
    path: Path
    license: str


def skimage_data_dir() -> Path:
    """The ``skimage/data`` folder of the installed scikit-image (no import of its image code).

    Raises:
        ModuleNotFoundError: scikit-image is not installed (the message names the extra).
    """
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(EXTRA_NOTE)
    return Path(spec.origin).parent / "data"


def photo_license(name: str) -> str:
    """The license / provenance sentence scikit-image gives for photo ``name`` (its loader's docstring)."""
    if name not in PHOTOS:
        raise KeyError(f"Unknown photo {name!r}; choose from {', '.join(PHOTOS)}.")
    import skimage.data  # deferred: only for the docstring, and scikit-image is optional

    doc = inspect.getdoc(getattr(skimage.data, PHOTOS[name][1])) or ""
    keys = ("copyright", "public domain", "cc0", "cc-0", "license")
    def clean(paragraph: str) -> str:  # drop numpydoc headings ("Notes", "-----") and rst directives
        lines = [ln.strip() for ln in paragraph.splitlines()]
        return " ".join(ln for ln in lines if ln and ln != "Notes" and set(ln) != {"-"} and not ln.startswith(".."))

    sentences = [clean(p) for p in doc.split("\n\n") if any(k in p.lower() for k in keys)]
    return " ".join(sentences) or ("no license statement in scikit-image's docstring (" + doc.split("\n\n")[0]
                                   .replace("\n", " ") + "); used for local measurement only")


def real_photos(names: tuple[str, ...] | list[str] | None = None) -> list[Photo]:
    """The photographs ``names`` (default: all of :data:`PHOTOS`), gray ones expanded to RGB.

    Raises:
        ModuleNotFoundError: scikit-image is not installed (one line naming the extra).
        KeyError: an unknown photo name.
    """
    folder = skimage_data_dir()
    out = []
    for name in names or PHOTOS:
        if name not in PHOTOS:
            raise KeyError(f"Unknown photo {name!r}; choose from {', '.join(PHOTOS)}.")
        path = folder / PHOTOS[name][0]
        out.append(Photo(name=name, image=load_image(path), path=path, license=photo_license(name)))
    return out
