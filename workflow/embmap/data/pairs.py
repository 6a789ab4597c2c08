"""LFW's pairs format: the verification pairs of the open-set protocol (paper section 4).

A pairs file (LFW's ``pairs.txt``) has a first line ``F N`` (10 300 on LFW),
then F blocks, each of N matched lines ``name n1 n2`` followed by N
mismatched lines ``name1 n1 name2 n2``; image ``n`` of ``name`` is
``name/name_%04d.jpg`` relative to the dataset root (:func:`image_path`).
Block k is fold k. Every deviation from the format is an error naming the
line (:func:`read_pairs`).

Ids of the form ``person/image`` name their identity by their folder
(:func:`identities_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class PairsError(ValueError):
    """A pairs file that does not follow the LFW format, or names images that are not there."""


# -- pairs files --------------------------------------------------------------------
def image_path(name: str, number: int) -> str:
    """``name/name_%04d.jpg``: where LFW keeps image ``number`` of ``name``, relative to the root."""
    return f"{name}/{name}_{int(number):04d}.jpg"


@dataclass
class Pairs:
    """The pairs of a pairs file, in file order; arrays of length n_pairs."""

    name1: np.ndarray
    num1: np.ndarray
    name2: np.ndarray
    num2: np.ndarray
    same: np.ndarray  # bool
    fold: np.ndarray  # int, 0-based
    n_folds: int
    per_fold: int
    source: str = ""

    def __len__(self) -> int:
        return len(self.same)

    @property
    def path1(self) -> np.ndarray:
        return np.array([image_path(n, i) for n, i in zip(self.name1, self.num1)], dtype=str)

    @property
    def path2(self) -> np.ndarray:
        return np.array([image_path(n, i) for n, i in zip(self.name2, self.num2)], dtype=str)

    def images(self) -> list[str]:
        """Every image named by a pair, sorted: the ids of the ``pairs`` split."""
        return sorted(set(self.path1.tolist()) | set(self.path2.tolist()))


def _positive_int(tok: str, where: str) -> int:
    try:
        v = int(tok)
    except ValueError:
        raise PairsError(f"{where}: {tok!r} is not an image number") from None
    if v < 1:
        raise PairsError(f"{where}: image numbers start at 1, got {v}")
    return v


def read_pairs(path) -> Pairs:
    """Parse an LFW ``pairs.txt``; every deviation from the format is an error naming the line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise PairsError(f"pairs file {path}: not found") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise PairsError(f"pairs file {path}: empty")
    head = lines[0].split()
    try:
        n_folds, per_fold = (int(t) for t in head)
    except ValueError:
        raise PairsError(f"{path}:1: the first line must be 'FOLDS PAIRS_PER_CLASS' (LFW: '10 300'), "
                         f"got {lines[0]!r}") from None
    if n_folds < 1 or per_fold < 1:
        raise PairsError(f"{path}:1: folds and pairs per class must be positive, got {lines[0]!r}")
    expected = 1 + 2 * n_folds * per_fold
    if len(lines) != expected:
        raise PairsError(f"{path}: {len(lines)} lines; a header '{n_folds} {per_fold}' announces {expected} "
                         f"(1 + {n_folds} folds x 2 x {per_fold} pairs)")
    cols = {k: [] for k in ("name1", "num1", "name2", "num2", "same", "fold")}
    for i, line in enumerate(lines[1:], start=2):
        k, r = divmod(i - 2, 2 * per_fold)
        matched = r < per_fold
        tok = line.split()
        where = f"{path}:{i} (fold {k + 1}, {'matched' if matched else 'mismatched'} pair {r % per_fold + 1})"
        if matched:
            if len(tok) != 3:
                raise PairsError(f"{where}: expected a matched pair 'name n1 n2', got {line!r}")
            n1, a, b = tok[0], _positive_int(tok[1], where), _positive_int(tok[2], where)
            if a == b:
                raise PairsError(f"{where}: a matched pair of one image with itself ({line!r})")
            n2 = n1
        else:
            if len(tok) != 4:
                raise PairsError(f"{where}: expected a mismatched pair 'name1 n1 name2 n2', got {line!r}")
            n1, a, n2, b = tok[0], _positive_int(tok[1], where), tok[2], _positive_int(tok[3], where)
            if n1 == n2:
                raise PairsError(f"{where}: a mismatched pair names one person twice ({line!r})")
        for key, v in zip(cols, (n1, a, n2, b, matched, k)):
            cols[key].append(v)
    return Pairs(np.array(cols["name1"], dtype=str), np.array(cols["num1"], dtype=np.int64),
                 np.array(cols["name2"], dtype=str), np.array(cols["num2"], dtype=np.int64),
                 np.array(cols["same"], dtype=bool), np.array(cols["fold"], dtype=np.int64), n_folds, per_fold,
                 str(path))


def write_pairs(path, pairs: Pairs) -> None:
    """Write ``pairs`` in LFW's format (tab-separated, fold blocks of matched then mismatched lines)."""
    out = [f"{pairs.n_folds}\t{pairs.per_fold}"]
    for k in range(pairs.n_folds):
        for same in (True, False):
            idx = np.flatnonzero((pairs.fold == k) & (pairs.same == same))
            if len(idx) != pairs.per_fold:
                raise PairsError(f"fold {k + 1}: {len(idx)} {'matched' if same else 'mismatched'} pairs, "
                                 f"the format needs {pairs.per_fold}")
            for i in idx:
                if same:
                    out.append(f"{pairs.name1[i]}\t{pairs.num1[i]}\t{pairs.num2[i]}")
                else:
                    out.append(f"{pairs.name1[i]}\t{pairs.num1[i]}\t{pairs.name2[i]}\t{pairs.num2[i]}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(out) + "\n")


def make_pairs(counts: dict[str, int], n_folds: int, per_fold: int, seed: int = 0) -> Pairs:
    """Draw ``n_folds`` blocks of ``per_fold`` matched and mismatched pairs among identities.

    ``counts`` maps an identity name to its number of images (numbered from 1).
    Pairs are distinct within the file; a matched pair needs an identity with
    two images, a mismatched pair two identities.
    """
    rng = np.random.default_rng(seed)
    names = sorted(counts)
    multi = [n for n in names if counts[n] >= 2]
    if not multi or len(names) < 2:
        raise PairsError("pairs need an identity with two images and at least two identities")
    total = n_folds * per_fold
    seen: set = set()
    matched, mismatched = [], []
    tries = 0
    while len(matched) < total or len(mismatched) < total:
        tries += 1
        if tries > 200 * total + 1000:
            raise PairsError(f"cannot draw {total} distinct matched and mismatched pairs from {len(names)} identities")
        if len(matched) < total:
            n = multi[rng.integers(len(multi))]
            a, b = sorted(rng.choice(counts[n], size=2, replace=False) + 1)
            key = (n, int(a), n, int(b))
            if key not in seen:
                seen.add(key)
                matched.append(key)
        if len(mismatched) < total:
            i, j = sorted(rng.choice(len(names), size=2, replace=False))
            n1, n2 = names[i], names[j]
            key = (n1, int(rng.integers(counts[n1]) + 1), n2, int(rng.integers(counts[n2]) + 1))
            if key not in seen:
                seen.add(key)
                mismatched.append(key)
    rows, same, fold = [], [], []
    for k in range(n_folds):
        for block, s in ((matched, True), (mismatched, False)):
            rows += block[k * per_fold:(k + 1) * per_fold]
            same += [s] * per_fold
            fold += [k] * per_fold
    r = list(zip(*rows))
    return Pairs(np.array(r[0], dtype=str), np.array(r[1], dtype=np.int64), np.array(r[2], dtype=str),
                 np.array(r[3], dtype=np.int64), np.array(same), np.array(fold, dtype=np.int64), n_folds, per_fold)


def check_images(pairs: Pairs, root) -> None:
    """Raise :class:`PairsError` listing every image named by ``pairs`` that is not under ``root``."""
    root = Path(root)
    missing = [p for p in pairs.images() if not (root / p).is_file()]
    if missing:
        raise PairsError(f"pairs file {pairs.source or '(in memory)'}: {len(missing)} image(s) missing under {root}:\n"
                         + "\n".join(f"  {p}" for p in missing))


def rows_of(pairs: Pairs, ids) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of each pair's two images among ``ids``; an error lists every image not in ``ids``."""
    index = {k: i for i, k in enumerate(np.asarray(ids).tolist())}
    p1, p2 = pairs.path1, pairs.path2
    missing = sorted(set(p for p in np.concatenate([p1, p2]).tolist() if p not in index))
    if missing:
        raise PairsError(f"pairs file {pairs.source or '(in memory)'}: {len(missing)} image(s) have no embedding "
                         "(no such id in the stores):\n" + "\n".join(f"  {p}" for p in missing))
    return np.array([index[p] for p in p1]), np.array([index[p] for p in p2])


def identities_of(ids) -> np.ndarray:
    """The identity of each image id: its folder (``Aaron_Peirsol/Aaron_Peirsol_0001.jpg`` -> ``Aaron_Peirsol``)."""
    out = []
    for i in np.asarray(ids).tolist():
        if "/" not in i:
            raise PairsError(f"id {i!r}: identification needs ids of the form 'person/image'")
        out.append(i.rsplit("/", 1)[0])
    return np.array(out, dtype=str)
