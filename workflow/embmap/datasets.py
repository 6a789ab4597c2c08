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


# -- pairs datasets (open set) --------------------------------------------------------
PAIRS_SPLIT = "pairs"


def _identity_labels(ids) -> np.ndarray:
    from .open_set import identities_of

    who = identities_of(ids)
    names = sorted(set(who.tolist()))
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[w] for w in who], dtype=np.int64)


class LFW:
    """Labeled Faces in the Wild, or any tree in its layout, with a pairs file in LFW's format.

    ``root/name/name_%04d.jpg`` holds the images; the images named by the
    pairs file form one split, ``pairs``, whose ids are the paths relative
    to ``root`` (``Aaron_Peirsol/Aaron_Peirsol_0001.jpg``) and whose labels
    index the identities in sorted order. Every image must exist: the
    manifest lists every missing one in its error.
    """

    kind = "lfw"

    def __init__(self, root: str, pairs: str, **_):
        self.root, self.pairs = Path(root), Path(pairs)

    def read_pairs(self):
        from . import open_set

        return open_set.read_pairs(self.pairs)

    def manifest(self) -> pd.DataFrame:
        from . import open_set

        if not self.root.is_dir():
            raise DatasetError(f"dataset.root: {self.root} is not a directory")
        pairs = self.read_pairs()
        open_set.check_images(pairs, self.root)
        ids = pairs.images()
        return pd.DataFrame({"id": ids, "label": _identity_labels(ids), "split": PAIRS_SPLIT})

    def image(self, id_: str) -> np.ndarray:
        """One image as uint8 RGB [h, w, 3]."""
        from PIL import Image

        p = self.root / id_
        try:
            with Image.open(p) as im:
                return np.asarray(im.convert("RGB"))
        except FileNotFoundError:
            raise DatasetError(f"dataset {self.root}: image {id_} not found") from None

    def images(self, ids) -> np.ndarray:
        """float32 [batch, h, w, 3] in [0, 1]; the images of a batch must share one size (align them otherwise)."""
        out = [self.image(i) for i in ids]
        shapes = {x.shape for x in out}
        if len(shapes) > 1:
            raise DatasetError(f"dataset {self.root}: images of different sizes {sorted(shapes)} in one batch "
                               f"(e.g. {ids[0]}); give the networks an 'align' block to crop them to one size")
        return np.stack(out).astype(np.float32) / 255.0


class DigitPairs(Digits):
    """The open-set digits demo: networks learn some digits, verification pairs use the others.

    Split ``train`` holds every image of ``train_digits`` (labels index
    ``train_digits``). The pairs file (LFW format, identities ``digit_D``,
    image n of ``digit_D`` = the n-th image of digit D in
    ``sklearn.datasets.load_digits``) draws ``folds`` blocks of
    ``pairs_per_fold`` matched and mismatched pairs among the other digits by
    ``seed`` (:meth:`write_pairs`); it is read back through the LFW reader
    and its images form split ``pairs``.
    """

    kind = "digit_pairs"

    def __init__(self, train_digits=(0, 1, 2, 3, 4, 5), folds: int = 10, pairs_per_fold: int = 30, seed: int = 0,
                 pairs: str | None = None, **_):
        super().__init__(seed=seed)
        self.train_digits = [int(d) for d in train_digits]
        self.n_classes = len(self.train_digits)
        self.folds, self.pairs_per_fold, self.pairs = int(folds), int(pairs_per_fold), pairs

    def _of_digit(self) -> dict[int, np.ndarray]:
        _, labels = self._load()
        return {d: np.flatnonzero(labels == d) for d in range(10)}

    def write_pairs(self, path) -> None:
        from . import open_set

        held_out = [d for d in range(10) if d not in self.train_digits]
        by = self._of_digit()
        p = open_set.make_pairs({f"digit_{d}": len(by[d]) for d in held_out}, self.folds, self.pairs_per_fold,
                                self.seed)
        open_set.write_pairs(path, p)

    def manifest(self) -> pd.DataFrame:
        from . import open_set

        if not self.pairs:
            raise DatasetError("digit_pairs: no pairs file (the workflow writes data/pairs.txt first)")
        _, labels = self._load()
        train = np.flatnonzero(np.isin(labels, self.train_digits))
        cls = {d: i for i, d in enumerate(self.train_digits)}
        ids = open_set.read_pairs(self.pairs).images()
        bad = [i for i in ids if int(i.split("/")[0].removeprefix("digit_")) in self.train_digits]
        if bad:
            raise DatasetError(f"pairs file {self.pairs}: pairs use training digits, e.g. {bad[0]}")
        self._index(ids)  # every image must exist
        return pd.concat([
            pd.DataFrame({"id": [f"digits/{i:04d}" for i in train], "label": [cls[d] for d in labels[train]],
                          "split": "train"}),
            pd.DataFrame({"id": ids, "label": _identity_labels(ids), "split": PAIRS_SPLIT}),
        ], ignore_index=True)

    def _index(self, ids) -> list[int]:
        by = self._of_digit()
        out, missing = [], []
        for i in ids:
            if i.startswith("digits/"):
                out.append(int(i.split("/", 1)[1]))
                continue
            try:
                name, file = i.split("/")
                d = int(name.removeprefix("digit_"))
                n = int(file.removeprefix(f"{name}_").removesuffix(".jpg"))
                out.append(int(by[d][n - 1]))
            except (ValueError, KeyError, IndexError):
                missing.append(i)
        if missing:
            raise DatasetError(f"digit_pairs: {len(missing)} image(s) do not exist:\n"
                               + "\n".join(f"  {m}" for m in missing))
        return out

    def images(self, ids) -> np.ndarray:
        images, _ = self._load()
        return images[self._index(list(ids))]


def part_of(rows: pd.DataFrame, part: int, of: int) -> pd.DataFrame:
    """The ``part``-th of ``of`` disjoint, class-balanced parts of ``rows`` (every ``of``-th row of each label)."""
    if not 0 <= part < of:
        raise DatasetError(f"train.part: [{part}, {of}] needs 0 <= part < of")
    rank = rows.groupby("label").cumcount()
    return rows[(rank % of) == part].reset_index(drop=True)


KINDS.update({"lfw": LFW, "digit_pairs": DigitPairs})
