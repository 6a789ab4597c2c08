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
- ``imagenet``: ILSVRC2012 in its standard layout (:class:`ImageNet`); labels
  follow the 1001-class convention of the TF Hub / TF-slim models.
- ``image_list``: any image files listed in a CSV (:class:`ImageList`).

Image kinds (``imagenet``, ``image_list``) use paths relative to their root
as ids, and read batches through :func:`embmap.images.batches` (a parallel
``tf.data`` pipeline) with the network's preprocessing.
"""

from __future__ import annotations

import os
import re
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

# -- image files ----------------------------------------------------------------------
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
WNID = re.compile(r"^n\d{8}$")


def _expand(p) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(str(p))))


def _image_names(folder: Path) -> list[str]:
    """Sorted names of the image files directly inside ``folder``."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))


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


class ImageFiles:
    """Shared reading of datasets whose ids are image paths relative to ``root``."""

    kind = "images"
    n_classes: int | None = None

    def __init__(self, root):
        self.root = _expand(root)

    def path(self, image_id: str) -> Path:
        return self.root / image_id

    def batches(self, ids, batch_size: int, preprocessing: dict):
        """Yield (start, float32 [b, h, w, 3] in [0, 1]) through the parallel pipeline of :mod:`embmap.images`."""
        from . import images

        if not preprocessing or not preprocessing.get("input_size"):
            raise DatasetError(f"{self.kind}: reading images needs the network's input_size")
        yield from images.batches([self.path(i) for i in ids], preprocessing["input_size"],
                                  preprocessing.get("crop_fraction", images.DEFAULT_CROP_FRACTION),
                                  batch_size=batch_size)

    def images(self, ids, input_size=(224, 224), crop_fraction: float = 0.875) -> np.ndarray:
        """A few images one file at a time (same values as :meth:`batches`)."""
        from . import images

        return np.stack([images.load(self.path(i), input_size, crop_fraction) for i in ids])


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
    splits = ("train", "val")

    def __init__(self, root, synsets=None, devkit=None, val_labels=None, per_class=None, seed: int = 0, **_):
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
        q = _expand(p)
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
            rows += [(f"{split_dir.name}/{wnid}/{f}", wnid, label) for f in _image_names(split_dir / wnid)]
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
        flat = _image_names(d)
        if split == "val" and flat:
            if any(e.is_dir() for e in os.scandir(d)):
                raise DatasetError(f"{d}: holds both image files and subfolders; use one val layout")
            return self._flat_val(d, flat)
        if flat:
            raise DatasetError(f"{d}: image files directly in {split}/; expected {split}/<wnid>/ subfolders")
        return self._folders(d)

    def manifest(self) -> pd.DataFrame:
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
    t = pd.read_csv(path, dtype=str)
    if not {"ImageId", "PredictionString"} <= set(t.columns):
        raise DatasetError(f"{path}: expected columns ImageId,PredictionString, got {list(t.columns)}")
    wnids = t["PredictionString"].fillna("").str.split().str[0]
    bad = wnids.isna() | ~wnids.fillna("").str.match(WNID.pattern)
    if bad.any():
        raise DatasetError(f"{path}: row for {t['ImageId'][bad].iloc[0]!r} does not start with a WNID")
    return dict(zip(t["ImageId"], wnids))


class ImageList(ImageFiles):
    """Images listed in a CSV with columns ``path,label`` and optionally ``split``.

    ``path`` is relative to ``root`` (default: the CSV's folder) or absolute;
    ``label`` an integer class (-1 for unknown). Without a ``split`` column the
    images are split into ``train`` and ``test`` by a stratified, seeded
    shuffle (``test_size``). ``per_class: N`` keeps N images per class and split.
    """

    kind = "image_list"

    def __init__(self, path, root=None, per_class=None, seed: int = 0, test_size: float = 0.3, **_):
        self.list_path = _expand(path)
        super().__init__(root if root is not None else self.list_path.parent)
        self.per_class, self.seed, self.test_size = per_class, int(seed), float(test_size)

    def manifest(self) -> pd.DataFrame:
        if not self.list_path.is_file():
            raise DatasetError(f"image_list: {self.list_path} not found")
        t = pd.read_csv(self.list_path, dtype={"path": str, "split": str})
        missing = {"path", "label"} - set(t.columns)
        if missing:
            raise DatasetError(f"{self.list_path}: missing column(s) {sorted(missing)}; expected path,label[,split]")
        if t["label"].isna().any() or not pd.api.types.is_integer_dtype(t["label"]):
            raise DatasetError(f"{self.list_path}: labels must be integers (-1 for unknown)")
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


KINDS = {"digits": Digits, "imagenet": ImageNet, "image_list": ImageList}


def get(spec: dict):
    """The dataset object for a config ``dataset:`` block."""
    kind = spec.get("kind")
    if kind not in KINDS:
        raise DatasetError(f"dataset.kind: {kind!r} has no images to read; known kinds with images: {sorted(KINDS)}")
    return KINDS[kind](**{k: v for k, v in spec.items() if k != "kind"})


BAD_IMAGE_POLICIES = ("fail", "skip")


def check_images(dataset: "ImageFiles", m: pd.DataFrame, policy: str = "fail", log=None) -> pd.DataFrame:
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
    spec = dict(spec)
    policy = spec.pop("bad_images", "fail")
    ds = get(spec)
    m = ds.manifest()
    if isinstance(ds, ImageFiles):
        m = check_images(ds, m, policy, log)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    m.to_csv(path, index=False)
    return m


def read_manifest(path, split: str | None = None, with_skipped: bool = False) -> pd.DataFrame:
    """The manifest's rows (of ``split``), without the images skipped as unreadable unless ``with_skipped``."""
    m = pd.read_csv(path, dtype={"id": str, "split": str, "skipped": str}, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in m.columns]
    if missing:
        raise DatasetError(f"manifest {path}: missing columns {missing}")
    if "skipped" in m.columns and not with_skipped:
        m = m[m["skipped"] == ""].drop(columns="skipped")
    if split is not None:
        m = m[m["split"] == split].reset_index(drop=True)
        if m.empty:
            raise DatasetError(f"manifest {path}: no images in split {split!r}")
    return m


def batches(dataset, ids, batch_size: int, preprocessing: dict | None = None):
    """Yield (start, images [b, h, w, c] float32) over ``ids`` in order.

    Image-file datasets decode, crop and resize by ``preprocessing``
    (``input_size``, ``crop_fraction``) in a parallel pipeline.
    """
    if isinstance(dataset, ImageFiles):
        yield from dataset.batches(ids, batch_size, preprocessing)
        return
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
