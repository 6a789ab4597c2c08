"""Dataset kinds ``digits`` and ``digit_pairs``: scikit-learn's bundled 8x8 handwritten digits, offline.

- ``digits`` (closed set): 1,797 images, 10 classes, split into train and test
  by a stratified, seeded shuffle. Ids are ``digits/NNNN``, the index into
  ``sklearn.datasets.load_digits``.
- ``digit_pairs`` (open set): networks learn some digits; verification pairs
  in LFW's format among the others, written by the workflow and read back
  through the same reader as LFW's.

Standard library only at import time (the dataset registry imports it).
"""

from __future__ import annotations

from . import DatasetError, Kind
from .lfw import PAIRS_SPLIT, identity_labels


def load_digits():
    """``sklearn.datasets.load_digits()``'s images [1797, 8, 8] (float64, 0-16) and targets [1797].

    Read from the file scikit-learn ships, parsed as it parses it, without importing scikit-learn (2 s of
    every job that reads the images); scikit-learn's own loader where the file is not found.
    """
    import gzip
    import importlib.util
    import io
    from pathlib import Path

    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits as sklearn_digits

        d = sklearn_digits()
        return d.images, d.target
    with gzip.open(path) as f:
        data = np.loadtxt(io.TextIOWrapper(f, encoding="utf-8"), delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


class Digits:
    """scikit-learn's digits as 8x8x1 images in [0, 1]."""

    kind = "digits"
    image_shape = (8, 8, 1)
    n_classes = 10

    def __init__(self, test_size: float, seed: int):
        self.test_size, self.seed = float(test_size), int(seed)
        self._images = None

    def _load(self):
        import numpy as np

        if self._images is None:
            images, target = load_digits()
            self._images = (images.astype(np.float32) / 16.0)[..., None]
            self._labels = target.astype(np.int64)
        return self._images, self._labels

    def manifest(self):
        import numpy as np
        import pandas as pd
        from sklearn.model_selection import train_test_split

        images, labels = self._load()
        idx = np.arange(len(labels))
        train, test = train_test_split(idx, test_size=self.test_size, random_state=self.seed, stratify=labels)
        split = np.empty(len(idx), dtype=object)
        split[train], split[test] = "train", "test"
        return pd.DataFrame({"id": [f"digits/{i:04d}" for i in idx], "label": labels, "split": split})

    def images(self, ids):
        images, _ = self._load()
        try:
            idx = [int(str(i).split("/", 1)[1]) for i in ids]
        except (IndexError, ValueError):
            raise DatasetError(f"digits: ids must look like 'digits/0123', got e.g. {ids[0]!r}") from None
        return images[idx]


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

    def __init__(self, train_digits, folds: int, pairs_per_fold: int, seed: int, pairs: str | None = None):
        super().__init__(test_size=0.0, seed=seed)
        self.train_digits = [int(d) for d in train_digits]
        self.n_classes = len(self.train_digits)
        self.folds, self.pairs_per_fold, self.pairs = int(folds), int(pairs_per_fold), pairs

    def _of_digit(self) -> dict:
        import numpy as np

        _, labels = self._load()
        return {d: np.flatnonzero(labels == d) for d in range(10)}

    def write_pairs(self, path) -> None:
        from . import pairs

        held_out = [d for d in range(10) if d not in self.train_digits]
        by = self._of_digit()
        p = pairs.make_pairs({f"digit_{d}": len(by[d]) for d in held_out}, self.folds, self.pairs_per_fold,
                             self.seed)
        pairs.write_pairs(path, p)

    def manifest(self):
        import numpy as np
        import pandas as pd

        from . import pairs

        if not self.pairs:
            raise DatasetError("digit_pairs: no pairs file (the workflow writes data/pairs.txt first)")
        _, labels = self._load()
        train = np.flatnonzero(np.isin(labels, self.train_digits))
        cls = {d: i for i, d in enumerate(self.train_digits)}
        ids = pairs.read_pairs(self.pairs).images()
        bad = [i for i in ids if int(i.split("/")[0].removeprefix("digit_")) in self.train_digits]
        if bad:
            raise DatasetError(f"pairs file {self.pairs}: pairs use training digits, e.g. {bad[0]}")
        self._index(ids)  # every image must exist
        return pd.concat([
            pd.DataFrame({"id": [f"digits/{i:04d}" for i in train], "label": [cls[d] for d in labels[train]],
                          "split": "train"}),
            pd.DataFrame({"id": ids, "label": identity_labels(ids), "split": PAIRS_SPLIT}),
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

    def images(self, ids):
        images, _ = self._load()
        return images[self._index(list(ids))]


KINDS = [
    Kind("digits", reader=Digits, tasks=("closed_set",), trains=True, small=True,
         task_hint=": open_set needs pairs; use digit_pairs, lfw or embeddings with a pairs file"),
    Kind("digit_pairs", reader=DigitPairs, tasks=("open_set",), trains=True, small=True, pairs="written",
         task_hint=": its images come with verification pairs"),
]
