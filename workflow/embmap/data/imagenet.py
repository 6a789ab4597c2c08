"""Dataset kind ``imagenet``: ILSVRC2012 in its standard layout (the paper's Tables 1 and 2).

Labels follow the 1001-class convention of the TF Hub / TF-slim models: the
1000 synsets sorted by WNID are 1..1000 and 0 is the background class.
Standard library only at import time (the dataset registry imports it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .. import config
from ..config import ConfigError
from . import DatasetError, Kind
from .image_files import ImageFiles, image_names

WNID = re.compile(r"^n\d{8}$")
SPLITS = ("train", "val")


class ImageNet(ImageFiles):
    """ILSVRC2012 in its standard layout under ``root``.

    - ``train/<wnid>/*.JPEG``;
    - ``val/<wnid>/*.JPEG``, or ``val/*.JPEG`` flat with a ground-truth file:
      the devkit's ``ILSVRC2012_validation_ground_truth.txt`` (one devkit
      ILSVRC2012_ID per line, line i for ``ILSVRC2012_val_<i>``; the ids are
      turned into WNIDs with the devkit's ``data/meta.mat``) or Kaggle's
      ``LOC_val_solution.csv`` (``ImageId,PredictionString``, the first token
      a WNID).

    Labels follow the 1001-class convention of the TF Hub / TF-slim models:
    the 1000 synsets sorted by WNID are numbered 1..1000 and 0 is the
    background class. (The devkit's own ILSVRC2012_ID order differs; it is
    only used to read its ground-truth file.) The synset list comes from,
    in this order: ``synsets`` (a text file, the WNID first on each line, e.g.
    ``LOC_synset_mapping.txt``), the devkit's ``meta.mat``,
    ``root/LOC_synset_mapping.txt``, or else the train folders themselves.

    Relative paths of ``synsets``, ``devkit`` and ``val_labels`` are relative
    to ``root``; ``devkit`` defaults to ``root/ILSVRC2012_devkit_t12`` where it exists. ``per_class: N`` keeps N images per class and split, drawn
    by ``seed``. Splits: ``train`` and ``val``; ids: paths relative to root.
    """

    kind = "imagenet"
    splits = SPLITS

    def __init__(self, root, seed: int, synsets=None, devkit=None, val_labels=None, per_class=None):
        super().__init__(root)
        self.synsets_file = self._under_root(synsets)
        self.devkit = self._under_root(devkit)
        if self.devkit is None and (self.root / "ILSVRC2012_devkit_t12").is_dir():
            self.devkit = self.root / "ILSVRC2012_devkit_t12"
        self.val_labels = self._under_root(val_labels)
        self.per_class, self.seed = per_class, int(seed)
        self._wnids = None
        self._labels = None

    def _under_root(self, p):
        if p is None:
            return None
        q = config.expand(p)
        return q if q.is_absolute() else self.root / q

    # -- synsets ------------------------------------------------------------------
    def _meta_mat(self, near: Path | None = None) -> Path | None:
        candidates = []
        if self.devkit is not None:
            candidates += [self.devkit] if self.devkit.suffix == ".mat" else [self.devkit / "data" / "meta.mat",
                                                                             self.devkit / "meta.mat"]
        if near is not None:
            candidates.append(near.parent / "meta.mat")
        return next((c for c in candidates if c.is_file()), None)

    def synset_list(self) -> tuple[list[str], str]:
        """(WNIDs sorted, where they came from)."""
        if self._wnids is None:
            meta = self._meta_mat()
            if self.synsets_file is not None:
                self._wnids = (read_synsets(self.synsets_file), str(self.synsets_file))
            elif meta is not None:
                self._wnids = (sorted(read_devkit_meta(meta).values()), str(meta))
            elif (self.root / "LOC_synset_mapping.txt").is_file():
                f = self.root / "LOC_synset_mapping.txt"
                self._wnids = (read_synsets(f), str(f))
            else:
                train = self.root / "train"
                if not train.is_dir():
                    raise DatasetError(f"imagenet: {train} is not a folder and no synset list is given")
                self._wnids = ([e.name for e in os.scandir(train) if e.is_dir()], f"the folders of {train}")
            self._wnids = (sorted(self._wnids[0]), self._wnids[1])
        return self._wnids

    @property
    def labels(self) -> dict[str, int]:
        """WNID -> label (1..1000 in WNID order; 0 is the background class)."""
        if self._labels is None:
            self._labels = {w: i + 1 for i, w in enumerate(self.synset_list()[0])}
        return self._labels

    background = 0  # 1,001-class networks predict it; 1,000-class ones predict synsets only (label - 1)

    @property
    def n_classes(self) -> int:
        return len(self.synset_list()[0]) + 1

    def _label_of(self, wnid: str, where) -> int:
        labels = self.labels
        if wnid not in labels:
            wnids, source = self.synset_list()
            raise DatasetError(f"{where}: WNID {wnid!r} is not in the synset list ({source}, {len(wnids)} synsets)")
        return labels[wnid]

    # -- listing ------------------------------------------------------------------
    def _folders(self, split_dir: Path) -> list[tuple[str, str, int]]:
        rows = []
        for wnid in sorted(e.name for e in os.scandir(split_dir) if e.is_dir()):
            label = self._label_of(wnid, split_dir / wnid)
            rows += [(f"{split_dir.name}/{wnid}/{f}", wnid, label) for f in image_names(split_dir / wnid)]
        return rows

    def _ground_truth_file(self) -> Path:
        if self.val_labels is not None:
            return self.val_labels
        candidates = [self.root / "LOC_val_solution.csv", self.root / "ILSVRC2012_validation_ground_truth.txt"]
        if self.devkit is not None and self.devkit.is_dir():
            candidates.append(self.devkit / "data" / "ILSVRC2012_validation_ground_truth.txt")
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DatasetError(f"{self.root / 'val'}: images lie flat but no ground-truth file was found "
                               f"(looked for {', '.join(str(c) for c in candidates)}); give dataset.val_labels")
        return found

    def _flat_val(self, val: Path, names: list[str]) -> list[tuple[str, str, int]]:
        gt = self._ground_truth_file()
        if not gt.is_file():
            raise DatasetError(f"{gt}: val ground-truth file not found")
        stems = [n.rsplit(".", 1)[0] for n in names]
        if gt.suffix.lower() == ".csv":
            wnid_of = read_loc_solution(gt)
        else:
            meta = self._meta_mat(near=gt)
            if meta is None:
                raise DatasetError(f"{gt}: holds devkit ILSVRC2012_IDs, which need the devkit's meta.mat to become "
                                   "WNIDs; give dataset.devkit (the ILSVRC2012_devkit_t12 folder)")
            wnid_of = read_devkit_ground_truth(gt, read_devkit_meta(meta))
        if len(wnid_of) != len(names):
            raise DatasetError(f"{gt}: {len(wnid_of)} val labels but {len(names)} images in {val}; "
                               "the ground truth and the images must describe the same val set")
        missing = [s for s in stems if s not in wnid_of]
        if missing:
            raise DatasetError(f"{gt}: no label for {len(missing)} image(s) of {val}, first: {missing[0]}")
        return [(f"{val.name}/{n}", wnid_of[s], self._label_of(wnid_of[s], gt)) for n, s in zip(names, stems)]

    def _split_rows(self, split: str) -> list[tuple[str, str, int]]:
        d = self.root / split
        if not d.is_dir():
            raise DatasetError(f"imagenet: {d} is not a folder (expected {split}/<wnid>/*.JPEG under the root)")
        flat = image_names(d)
        if split == "val" and flat:
            if any(e.is_dir() for e in os.scandir(d)):
                raise DatasetError(f"{d}: holds both image files and subfolders; use one val layout")
            return self._flat_val(d, flat)
        if flat:
            raise DatasetError(f"{d}: image files directly in {split}/; expected {split}/<wnid>/ subfolders")
        return self._folders(d)

    def manifest(self):
        import numpy as np
        import pandas as pd

        from .manifest import per_class_subset

        frames = []
        for split in self.splits:
            rows = self._split_rows(split)
            if not rows:
                raise DatasetError(f"imagenet: no images in {self.root / split}")
            ids, wnids, labels = zip(*rows)
            frames.append(pd.DataFrame({"id": ids, "label": np.asarray(labels, np.int64), "split": split,
                                        "wnid": wnids}))
        return per_class_subset(pd.concat(frames, ignore_index=True), self.per_class, self.seed)


def read_synsets(path) -> list[str]:
    """WNIDs of a synset list: the first token of every non-empty line (``synsets.txt``, ``LOC_synset_mapping.txt``)."""
    out = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        token = line.split(maxsplit=1)[0] if line.strip() else ""
        if not token or token.startswith("#"):
            continue
        if not WNID.match(token):
            raise DatasetError(f"{path}:{i}: {token!r} is not a WNID (n followed by 8 digits)")
        out.append(token)
    if len(set(out)) != len(out):
        raise DatasetError(f"{path}: lists a WNID more than once")
    if not out:
        raise DatasetError(f"{path}: no WNIDs")
    return out


def read_devkit_meta(path) -> dict[int, str]:
    """ILSVRC2012_ID -> WNID of the classes (leaf synsets, ids 1..1000) in the devkit's ``meta.mat``."""
    import numpy as np
    from scipy.io import loadmat

    try:
        synsets = loadmat(str(path), squeeze_me=True)["synsets"]
        ids = [int(np.squeeze(v)) for v in np.ravel(synsets["ILSVRC2012_ID"])]
        wnids = [str(np.squeeze(v)) for v in np.ravel(synsets["WNID"])]
        names = synsets.dtype.names or ()
        leaf = ([int(np.squeeze(v)) == 0 for v in np.ravel(synsets["num_children"])] if "num_children" in names
                else [True] * len(ids))
    except (KeyError, ValueError, TypeError, OSError) as e:
        raise DatasetError(f"{path}: not the devkit's meta.mat (a 'synsets' struct with ILSVRC2012_ID and WNID): "
                           f"{e}") from None
    out = {i: w for i, w, is_leaf in zip(ids, wnids, leaf) if is_leaf and 1 <= i <= 1000}
    if not out:
        raise DatasetError(f"{path}: no synsets with ILSVRC2012_ID in 1..1000")
    return out


def read_devkit_ground_truth(path, meta: dict[int, str]) -> dict[str, str]:
    """``ILSVRC2012_val_<i>`` -> WNID from the devkit's ground truth (line i = devkit id of val image i)."""
    out = {}
    for i, line in enumerate(Path(path).read_text().split(), 1):
        try:
            k = int(line)
        except ValueError:
            raise DatasetError(f"{path}:{i}: {line!r} is not a devkit class id") from None
        if k not in meta:
            raise DatasetError(f"{path}:{i}: devkit id {k} is not in meta.mat")
        out[f"ILSVRC2012_val_{i:08d}"] = meta[k]
    return out


def read_loc_solution(path) -> dict[str, str]:
    """``ImageId`` -> WNID from ``LOC_val_solution.csv`` (the first token of ``PredictionString``)."""
    import pandas as pd

    t = pd.read_csv(path, dtype=str)
    if not {"ImageId", "PredictionString"} <= set(t.columns):
        raise DatasetError(f"{path}: expected columns ImageId,PredictionString, got {list(t.columns)}")
    wnids = t["PredictionString"].fillna("").str.split().str[0]
    bad = wnids.isna() | ~wnids.fillna("").str.match(WNID.pattern)
    if bad.any():
        raise DatasetError(f"{path}: row for {t['ImageId'][bad].iloc[0]!r} does not start with a WNID")
    return dict(zip(t["ImageId"], wnids))


def check(where: str, spec: dict, ctx) -> None:
    """The root holds train/ and val/; the files the block names exist (listing waits for prepare_split)."""
    if not ctx.check_paths:
        return
    root = ctx.path(spec["root"])
    for sub in SPLITS:
        if not (root / sub).is_dir():
            raise ConfigError(f"{where}.root: no {sub}/ folder in {root} (expected ILSVRC2012's "
                              "train/<wnid>/*.JPEG and val/)")
    for k in ("synsets", "devkit", "val_labels"):
        if k in spec:
            q = config.expand(spec[k])
            q = q if q.is_absolute() else root / q
            if not q.exists():
                raise ConfigError(f"{where}.{k}: {q} does not exist")


KIND = Kind("imagenet", reader=ImageNet, check=check, tasks=("closed_set",), image_files=True,
            train_hint="holds image files; take savedmodel, tfhub, checkpoint or other pretrained sources")
