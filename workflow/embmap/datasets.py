"""Datasets: which images exist, their labels and splits, and how to read them.

A dataset kind turns its config block into a *manifest* (a table with one row
per image: ``id``, ``label``, ``split``) and reads batches of images by id as
float32 arrays [batch, height, width, channels] with values in [0, 1].

Kinds:

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images,
  10 classes, no download), split into train and test by a stratified,
  seeded shuffle. Ids are ``digits/NNNN``, the index into
  ``sklearn.datasets.load_digits``.
- ``embeddings``: no images; splits, ids and labels come from the networks'
  own stores (bring-your-own ``zarr`` networks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

MANIFEST_COLUMNS = ["id", "label", "split"]


class DatasetError(ValueError):
    pass


class Digits:
    """scikit-learn's digits as 8x8x1 images in [0, 1]."""

    kind = "digits"
    image_shape = (8, 8, 1)
    n_classes = 10

    def __init__(self, test_size: float = 0.3, seed: int = 0, **_):
        self.test_size, self.seed = float(test_size), int(seed)
        self._images = None

    def _load(self):
        if self._images is None:
            from sklearn.datasets import load_digits

            d = load_digits()
            self._images = (d.images.astype(np.float32) / 16.0)[..., None]
            self._labels = d.target.astype(np.int64)
        return self._images, self._labels

    def manifest(self) -> pd.DataFrame:
        from sklearn.model_selection import train_test_split

        images, labels = self._load()
        idx = np.arange(len(labels))
        train, test = train_test_split(idx, test_size=self.test_size, random_state=self.seed, stratify=labels)
        split = np.empty(len(idx), dtype=object)
        split[train], split[test] = "train", "test"
        return pd.DataFrame({"id": [f"digits/{i:04d}" for i in idx], "label": labels, "split": split})

    def images(self, ids) -> np.ndarray:
        images, _ = self._load()
        try:
            idx = [int(str(i).split("/", 1)[1]) for i in ids]
        except (IndexError, ValueError):
            raise DatasetError(f"digits: ids must look like 'digits/0123', got e.g. {ids[0]!r}") from None
        return images[idx]


KINDS = {"digits": Digits}


def get(spec: dict):
    """The dataset object for a config ``dataset:`` block."""
    kind = spec.get("kind")
    if kind not in KINDS:
        raise DatasetError(f"dataset.kind: {kind!r} has no images to read; known kinds with images: {sorted(KINDS)}")
    return KINDS[kind](**{k: v for k, v in spec.items() if k != "kind"})


def write_manifest(spec: dict, path) -> pd.DataFrame:
    m = get(spec).manifest()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    m.to_csv(path, index=False)
    return m


def read_manifest(path, split: str | None = None) -> pd.DataFrame:
    m = pd.read_csv(path, dtype={"id": str, "split": str})
    missing = [c for c in MANIFEST_COLUMNS if c not in m.columns]
    if missing:
        raise DatasetError(f"manifest {path}: missing columns {missing}")
    if split is not None:
        m = m[m["split"] == split].reset_index(drop=True)
        if m.empty:
            raise DatasetError(f"manifest {path}: no images in split {split!r}")
    return m


def batches(dataset, ids, batch_size: int):
    """Yield (start, images [b, h, w, c] float32) over ``ids`` in order."""
    for start in range(0, len(ids), batch_size):
        yield start, dataset.images(list(ids[start : start + batch_size]))
