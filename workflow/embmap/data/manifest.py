"""The manifest: one row per image (``id``, ``label``, ``split``, and for image files ``skipped``).

``prepare_split`` writes it once per experiment (:func:`write_manifest`);
every later job reads its rows (:func:`read_manifest`), so every network is
extracted on the same ids in the same order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import DatasetError, get
from .image_files import ImageFiles

COLUMNS = ["id", "label", "split"]
BAD_IMAGE_POLICIES = ("fail", "skip")


def per_class_subset(m: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """At most ``n`` images of every (split, label), drawn by ``seed``; the kept rows keep their order.

    Each class's draw depends only on the seed, its split and its label, so
    adding or removing other classes does not change it.
    """
    if not n:
        return m
    keep = np.zeros(len(m), dtype=bool)
    splits = {s: i for i, s in enumerate(sorted(m["split"].unique()))}
    for (split, label), rows in m.groupby(["split", "label"], sort=False).indices.items():
        rng = np.random.default_rng([int(seed), splits[split], int(label) + 1])
        keep[np.sort(rng.permutation(rows)[: int(n)])] = True
    return m[keep].reset_index(drop=True)


def part_of(rows: pd.DataFrame, part: int, of: int) -> pd.DataFrame:
    """The ``part``-th of ``of`` disjoint, class-balanced parts of ``rows`` (every ``of``-th row of each label)."""
    if not 0 <= part < of:
        raise DatasetError(f"train.part: [{part}, {of}] needs 0 <= part < of")
    rank = rows.groupby("label").cumcount()
    return rows[(rank % of) == part].reset_index(drop=True)


def check_images(dataset: ImageFiles, m: pd.DataFrame, policy: str, log=None) -> pd.DataFrame:
    """Decode every image of manifest ``m`` once; apply ``policy`` to those that cannot be read.

    ``fail`` raises :class:`DatasetError` listing every unreadable file;
    ``skip`` keeps them in the manifest with the reason in column ``skipped``
    (empty for usable images), so every network is extracted on the same
    ids and every store can record which ids of its split were left out.
    """
    from . import images

    if policy not in BAD_IMAGE_POLICIES:
        raise DatasetError(f"dataset.bad_images: {policy!r} is not one of {BAD_IMAGE_POLICIES}")
    paths = [str(dataset.path(i)) for i in m["id"]]
    bad = images.find_unreadable(paths)
    m = m.copy()
    m["skipped"] = [bad.get(p, "") for p in paths]
    if bad and policy == "fail":
        lines = "\n".join(f"  {p}: {r}" for p, r in sorted(bad.items()))
        raise DatasetError(f"{len(bad)} unreadable image(s) under {dataset.root} (set dataset.bad_images: skip "
                           f"to leave them out of every network's store):\n{lines}")
    if bad and log:
        log(f"skipping {len(bad)} unreadable image(s): " + ", ".join(sorted(bad)[:10])
            + (" ..." if len(bad) > 10 else ""))
    return m


def write_manifest(spec: dict, path, log=None) -> pd.DataFrame:
    """Write the manifest (``id, label, split`` and, for image files, ``skipped``) of a ``dataset:`` block."""
    from .. import config

    spec = config.defaults("dataset", spec)
    ds = get(spec)
    m = ds.manifest()
    if isinstance(ds, ImageFiles):
        m = check_images(ds, m, spec["bad_images"], log)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    m.to_csv(path, index=False)
    return m


def read_manifest(path, split: str | None = None, with_skipped: bool = False) -> pd.DataFrame:
    """The manifest's rows (of ``split``), without the images skipped as unreadable unless ``with_skipped``."""
    m = pd.read_csv(path, dtype={"id": str, "split": str, "skipped": str}, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in m.columns]
    if missing:
        raise DatasetError(f"manifest {path}: missing columns {missing}")
    if "skipped" in m.columns and not with_skipped:
        m = m[m["skipped"] == ""].drop(columns="skipped")
    if split is not None:
        m = m[m["split"] == split].reset_index(drop=True)
        if m.empty:
            raise DatasetError(f"manifest {path}: no images in split {split!r}")
    return m


def skipped_ids(path, split: str) -> list[str]:
    """Ids of ``split`` that the manifest records as unreadable (left out of every store)."""
    every = read_manifest(path, split, with_skipped=True)
    return sorted(every["id"][every["skipped"] != ""]) if "skipped" in every.columns else []


def batches(dataset, ids, batch_size: int, preprocessing: dict | None = None):
    """Yield (start, images [b, h, w, c] float32 in [0, 1]) over ``ids`` in order.

    Image-file datasets decode, crop and resize by ``preprocessing``
    (``input_size``, ``crop_fraction``) in a parallel pipeline.
    """
    if isinstance(dataset, ImageFiles):
        yield from dataset.batches(ids, batch_size, preprocessing)
        return
    for start in range(0, len(ids), batch_size):
        yield start, dataset.images(list(ids[start : start + batch_size]))
