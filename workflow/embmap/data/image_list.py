"""Dataset kind ``image_list``: any image files listed in a CSV with columns ``path,label[,split]``.

Standard library only at import time (the dataset registry imports it).
"""

from __future__ import annotations

from ..config import ConfigError
from . import DatasetError, Kind
from .image_files import ImageFiles


class ImageList(ImageFiles):
    """Images listed in a CSV with columns ``path,label`` and optionally ``split``.

    ``path`` is relative to ``root`` (default: the CSV's folder) or absolute;
    ``label`` an integer class (-1 for unknown). Without a ``split`` column the
    images are split into ``train`` and ``test`` by a stratified, seeded
    shuffle (``test_size``). ``per_class: N`` keeps N images per class and split.
    """

    kind = "image_list"

    def __init__(self, path, seed: int, test_size: float, root=None, per_class=None, n_classes=None,
                 background=None):
        from .. import config

        self.list_path = config.expand(path)
        super().__init__(root if root is not None else self.list_path.parent)
        self.per_class, self.seed, self.test_size = per_class, int(seed), float(test_size)
        # the label space classifiers are matched to (stores.label_offset), as the imagenet kind declares its own
        self.n_classes = int(n_classes) if n_classes is not None else None
        self.background = int(background) if background is not None else None

    def manifest(self):
        import numpy as np
        import pandas as pd

        from .manifest import per_class_subset

        if not self.list_path.is_file():
            raise DatasetError(f"image_list: {self.list_path} not found")
        t = pd.read_csv(self.list_path, dtype={"path": str, "split": str})
        missing = {"path", "label"} - set(t.columns)
        if missing:
            raise DatasetError(f"{self.list_path}: missing column(s) {sorted(missing)}; expected path,label[,split]")
        if t["label"].isna().any() or not pd.api.types.is_integer_dtype(t["label"]):
            raise DatasetError(f"{self.list_path}: labels must be integers (-1 for unknown)")
        if self.n_classes is not None:
            bad = t["label"][(t["label"] < -1) | (t["label"] >= self.n_classes)]
            if len(bad):
                raise DatasetError(f"{self.list_path}: {len(bad)} label(s) outside -1 .. {self.n_classes - 1} "
                                   f"(dataset.n_classes {self.n_classes}), first {int(bad.iloc[0])}")
        if t["path"].duplicated().any():
            raise DatasetError(f"{self.list_path}: {t['path'][t['path'].duplicated()].iloc[0]!r} is listed twice")
        absent = [p for p in t["path"] if not self.path(p).is_file()]
        if absent:
            raise DatasetError(f"{self.list_path}: {len(absent)} listed file(s) do not exist, first: "
                               f"{self.path(absent[0])}")
        if "split" not in t.columns:
            from sklearn.model_selection import train_test_split

            counts = t["label"].value_counts()
            strat = t["label"] if counts.min() >= 2 else None
            _, test = train_test_split(np.arange(len(t)), test_size=self.test_size, random_state=self.seed,
                                       stratify=strat)
            t["split"] = "train"
            t.loc[test, "split"] = "test"
        m = pd.DataFrame({"id": t["path"], "label": t["label"].astype(np.int64), "split": t["split"]})
        return per_class_subset(m, self.per_class, self.seed)


def check_list(list_path, root, splits=(), where: str = "") -> None:
    """What is cheap to check of an image list before any job: its columns, every listed file exists, no path
    listed twice, and, with a ``split`` column, that it holds the experiment's ``splits`` (standard library
    only: a dry run checks it; the manifest job reads the list again with pandas)."""
    import csv
    from pathlib import Path

    name = f"{where}: " if where else ""
    with open(list_path, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or ())
        missing = {"path", "label"} - columns
        if missing:
            raise ConfigError(f"{name}{list_path}: missing column(s) {sorted(missing)}; expected path,label[,split]")
        seen, absent, split_names, twice = set(), [], set(), None
        for row in reader:
            p = row["path"]
            if p in seen and twice is None:
                twice = p
            seen.add(p)
            if not (Path(p) if Path(p).is_absolute() else Path(root) / p).is_file():
                absent.append(p)
            if "split" in columns:
                split_names.add(row["split"])
    if twice is not None:
        raise ConfigError(f"{name}{list_path}: {twice!r} is listed twice")
    if absent:
        first = absent[0] if Path(absent[0]).is_absolute() else Path(root) / absent[0]
        raise ConfigError(f"{name}{list_path}: {len(absent)} listed file(s) do not exist, first: {first}")
    unknown = [s for s in splits if "split" in columns and s not in split_names]
    if unknown:
        raise ConfigError(f"{name}{list_path}: no image of split {unknown[0]!r} (its split column holds "
                          f"{', '.join(sorted(split_names)) or 'nothing'}); check fit_split and eval_split")


def check(where: str, spec: dict, ctx) -> None:
    if spec.get("background") is not None and spec.get("n_classes") is None:
        raise ConfigError(f"{where}.background: a background label needs n_classes (labels 0 .. n_classes - 1)")
    if not ctx.check_paths:
        return
    path = ctx.path(spec["path"])
    if not path.is_file():
        raise ConfigError(f"{where}.path: no image list at {path}")
    root = ctx.path(spec["root"]) if spec.get("root") else path.parent
    check_list(path, root, ctx.experiment.splits, f"{where}.path")


KIND = Kind("image_list", reader=ImageList, check=check, tasks=("closed_set",), image_files=True,
            train_hint="holds image files; take savedmodel, tfhub, checkpoint or other pretrained sources")
