"""Datasets whose ids are paths of image files under a root folder (``imagenet``, ``image_list``).

Standard library only at import time (the dataset registry imports it).
"""

from __future__ import annotations

from pathlib import Path

from .. import config

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")


class ImageFiles:
    """Shared reading of datasets whose ids are image paths relative to ``root``."""

    kind = "images"
    n_classes: int | None = None
    background: int | None = None  # the label of a background class, if the labels have one

    def __init__(self, root):
        self.root = config.expand(root)

    def path(self, image_id: str) -> Path:
        return self.root / image_id

    def batches(self, ids, batch_size: int, preprocessing: dict):
        """Yield (start, float32 [b, h, w, 3] in [0, 1]) through the parallel pipeline of :mod:`.images`."""
        from . import DatasetError, images

        if not preprocessing or not preprocessing.get("input_size"):
            raise DatasetError(f"{self.kind}: reading images needs the network's input_size")
        yield from images.batches([self.path(i) for i in ids], preprocessing["input_size"],
                                  preprocessing["crop_fraction"], batch_size=batch_size)

    def images(self, ids, input_size, crop_fraction: float):
        """A few images one file at a time (same values as :meth:`batches`)."""
        import numpy as np

        from . import images

        return np.stack([images.load(self.path(i), input_size, crop_fraction) for i in ids])


def image_names(folder: Path) -> list[str]:
    """Sorted names of the image files directly inside ``folder``."""
    import os

    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
