"""Open-set evaluation: LFW verification through mapped embeddings (paper section 4, Table 6),
and identification across networks.

Pairs files
    LFW's ``pairs.txt``: a first line ``F N`` (10 300 on LFW), then F blocks,
    each of N matched lines ``name n1 n2`` followed by N mismatched lines
    ``name1 n1 name2 n2``; image ``n`` of ``name`` is ``name/name_%04d.jpg``
    relative to the dataset root (:func:`image_path`). Block k is fold k.

Verification (Table 6), for every ordered pair of networks (A, B) and fold k:

- the map ``M_k`` is a ridge map (the foundation's eq. 5 with an unpenalised
  intercept) fitted on the *matched* pairs (x1, x2) of the other folds only,
  from source features ``f_A(x1)`` to target features ``f_B(x2)`` (eq. 17);
- the distance of a pair is ``1 - cos(M_k f_A(x1), f_B(x2))``; the mapped
  vector is not normalised, the cosine divides by its norm (eq. 16, where
  ``f_B`` has unit norm; the cosine also divides by ``|f_B|`` so stores that
  are not normalised are compared the same way);
- the threshold ``tau_k`` maximises accuracy over all pairs of the other
  folds (an exact search over the candidates, ties to the smallest,
  :func:`best_threshold`); a pair is called *same* when its distance is at
  most ``tau_k``; accuracy is measured on fold k with ``tau_k``;
- mean and (population, ddof 0) standard deviation over the folds.

Methods: ``native`` (A = B, no map: the diagonal), ``ridge`` (the per-fold
map) and ``identity`` (``f_A`` compared with ``f_B`` as they are, where the
dimensions agree: a control at chance).

The per-fold maps come from per-fold cross products: one set of centred
blocks per fold (:func:`embmap.ridge.blocks_in_memory`) over its matched
pairs, and the map of fold k pools the other folds' blocks exactly
(:func:`embmap.ridge.pool`), so no fold costs a new pass over the features
(:func:`fold_grams`, :func:`leave_one_out_maps`).

Identification (beyond the paper): identities with at least two images are
dealt into folds by seed; for fold k, B embeds a gallery of one image per
identity (its first id), A embeds the remaining images of those identities
as probes, mapped by a ridge map fitted on the other folds' identities only
(probe of A -> gallery image of B of the same identity). Rank-r rate: the
share of probes whose identity's gallery image is among the r most similar
(cosine; ties count against the probe).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import ridge
from .ridge import LinearMap

TABLE_COLUMNS = ["source", "target", "method", "accuracy_mean", "accuracy_std", "threshold_mean"]
FOLD_COLUMNS = ["source", "target", "method", "fold", "accuracy", "threshold", "train_accuracy", "n_test", "n_fit"]
ID_COLUMNS = ["source", "target", "method", "rank1", "rank5", "n_probes", "gallery_size", "folds"]
METHODS = ("native", "ridge", "identity")
RANKS = (1, 5)


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


# -- the verification protocol ------------------------------------------------------
def cosine_distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``1 - x.y / (|x| |y|)`` row by row [n]; neither side is normalised beforehand (eq. 16)."""
    nx = np.linalg.norm(x, axis=1)
    ny = np.linalg.norm(y, axis=1)
    return 1.0 - np.einsum("ij,ij->i", x, y) / np.maximum(nx * ny, 1e-300)


def best_threshold(d: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold maximising accuracy of ``same = d <= tau``, and that accuracy.

    Exact search: accuracy only changes at the distances themselves, so the
    candidates are every distinct distance and, for "no pair is the same",
    the largest float below the smallest distance. Ties go to the smallest
    candidate. O(n log n).
    """
    d = np.asarray(d, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    if d.shape != same.shape or d.ndim != 1 or len(d) == 0:
        raise ValueError(f"distances {d.shape} and labels {same.shape}: need two equal non-empty vectors")
    if not np.isfinite(d).all():
        raise ValueError("non-finite distances")
    order = np.argsort(d, kind="stable")
    ds, ys = d[order], same[order]
    last = np.flatnonzero(np.r_[ds[1:] != ds[:-1], True])  # last index of each distinct distance
    n_diff = int((~ys).sum())
    correct = np.cumsum(ys)[last] + (n_diff - np.cumsum(~ys)[last])
    candidates = np.r_[np.nextafter(ds[0], -np.inf), ds[last]]
    correct = np.r_[n_diff, correct]
    i = int(np.argmax(correct))  # first maximum: the smallest threshold
    return float(candidates[i]), float(correct[i]) / len(d)


def fold_accuracy(d: np.ndarray, same: np.ndarray, fold: np.ndarray, k: int) -> tuple[float, float, float]:
    """Threshold from every fold but ``k``, applied to fold ``k``: (accuracy, threshold, train accuracy)."""
    train, test = fold != k, fold == k
    if not train.any() or not test.any():
        raise ValueError(f"fold {k}: needs pairs inside and outside it")
    tau, train_acc = best_threshold(d[train], same[train])
    acc = float(np.mean((d[test] <= tau) == same[test]))
    return acc, tau, train_acc


# -- per-fold maps from per-fold cross products -------------------------------------
@dataclass
class FoldGrams:
    """Per-fold centred blocks over the parts ``A[x1]`` (source features of x1) and ``B[x2]`` (target of x2).

    ``folds[j]`` is a :class:`embmap.ridge.Blocks` over the fitting pairs of fold j.
    """

    folds: list
    sources: list
    targets: list

    def without(self, k: int) -> ridge.Blocks:
        """The blocks of every fold but ``k`` (pooled exactly, no pass over the features)."""
        others = [b for j, b in enumerate(self.folds) if j != k and b.n > 0]
        if sum(b.n for b in others) < 2:
            raise ridge.FitError(f"fold {k + 1}: {sum(b.n for b in others)} fitting pair(s) in the other folds; "
                                 "at least 2 are needed")
        return ridge.pool(others)


def _part(name: str, side: int) -> str:
    return f"{name}[x{side}]"


def fold_grams(src: dict[str, np.ndarray], tgt: dict[str, np.ndarray], fold: np.ndarray, n_folds: int,
               precision: str = "float64") -> FoldGrams:
    """Centred blocks of each fold's fitting pairs: row i pairs ``src[A][i]`` (x1) with ``tgt[B][i]`` (x2).

    ``src`` and ``tgt`` map network -> float [n_fit, d]; ``fold`` [n_fit] says
    which fold each fitting pair belongs to.
    """
    features = {_part(a, 1): np.asarray(x) for a, x in src.items()}
    features.update({_part(b, 2): np.asarray(x) for b, x in tgt.items()})
    folds = [ridge.blocks_in_memory({k: x[fold == j] for k, x in features.items()}, precision)
             for j in range(n_folds)]
    return FoldGrams(folds, list(src), list(tgt))


def leave_one_out_maps(fg: FoldGrams, k: int, alpha: float, pairs_of=None) -> dict[tuple[str, str], LinearMap]:
    """Ridge maps A -> B fitted on every fold but ``k``, one ``eigh`` per source.

    ``pairs_of`` lists the (source, target) pairs wanted (default: every
    ordered pair of distinct networks).
    """
    blocks = fg.without(k)
    wanted = pairs_of or [(a, b) for a in fg.sources for b in fg.targets if a != b]
    by_source: dict[str, list[str]] = {}
    for a, b in wanted:
        by_source.setdefault(a, []).append(b)
    out = {}
    for a, targets in by_source.items():
        maps = ridge.fit_maps(blocks, _part(a, 1), [_part(b, 2) for b in targets], float(alpha))
        for b in targets:
            m = maps[_part(b, 2)]
            out[(a, b)] = LinearMap(m.weight, m.intercept, {"source": a, "target": b, "alpha": float(alpha),
                                                              "n": blocks.n, "method": "ridge"})
    return out


# -- verification -------------------------------------------------------------------
def _methods(names: list[str], dims: dict[str, int]) -> list[tuple[str, str, str]]:
    out = []
    for a in names:
        for b in names:
            if a == b:
                out.append((a, a, "native"))
            else:
                out.append((a, b, "ridge"))
                if dims[a] == dims[b]:
                    out.append((a, b, "identity"))
    return out


def verification(features: dict[str, np.ndarray], ids, pairs: Pairs, alpha: float = 1.0,
                 precision: str = "float64") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The 10-fold protocol for every ordered pair of networks.

    Parameters
    ----------
    features : dict network -> float [n_images, d]
        Embeddings of the images ``ids`` (one row per id, same order in every network).
    ids : array of str [n_images]
        Image paths relative to the dataset root (the store's ``ids``).
    pairs : Pairs
    alpha : float
        Ridge penalty.

    Returns
    -------
    (table with :data:`TABLE_COLUMNS`, per-fold table with :data:`FOLD_COLUMNS`)
    """
    if pairs.n_folds < 2:
        raise PairsError(f"pairs file {pairs.source}: {pairs.n_folds} fold; the protocol needs at least 2")
    i1, i2 = rows_of(pairs, ids)
    names = list(features)
    feats = {k: np.asarray(v, dtype=np.float64) for k, v in features.items()}
    dims = {k: v.shape[1] for k, v in feats.items()}
    fit = pairs.same
    fg = fold_grams({a: feats[a][i1[fit]] for a in names}, {b: feats[b][i2[fit]] for b in names},
                    pairs.fold[fit], pairs.n_folds, precision)
    n_fit = np.bincount(pairs.fold[fit], minlength=pairs.n_folds)
    methods = _methods(names, dims)
    fixed = {}  # distances that do not depend on the fold
    for a, b, method in methods:
        if method != "ridge":
            fixed[(a, b, method)] = cosine_distance(feats[a][i1], feats[b][i2])
    rows = []
    for k in range(pairs.n_folds):
        try:
            maps = leave_one_out_maps(fg, k, alpha)
        except ridge.FitError as e:
            raise ridge.FitError(f"pairs file {pairs.source}: {e}") from None
        for a, b, method in methods:
            if method == "ridge":
                d = cosine_distance(maps[(a, b)](feats[a][i1]), feats[b][i2])
            else:
                d = fixed[(a, b, method)]
            acc, tau, train_acc = fold_accuracy(d, pairs.same, pairs.fold, k)
            rows.append({"source": a, "target": b, "method": method, "fold": k + 1, "accuracy": acc,
                         "threshold": tau, "train_accuracy": train_acc, "n_test": int(np.sum(pairs.fold == k)),
                         "n_fit": int(n_fit.sum() - n_fit[k]) if method == "ridge" else 0})
    folds = pd.DataFrame(rows, columns=FOLD_COLUMNS)
    return summarise(folds), folds


def summarise(folds: pd.DataFrame) -> pd.DataFrame:
    """Mean and population standard deviation (ddof 0) of the fold accuracies, mean threshold."""
    g = folds.groupby(["source", "target", "method"], sort=False)
    t = g.agg(accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", lambda x: float(np.std(x))),
              threshold_mean=("threshold", "mean")).reset_index()
    return t[TABLE_COLUMNS]


def matrix(table: pd.DataFrame, order: list[str], method: str = "ridge", value: str = "accuracy_mean") -> pd.DataFrame:
    """The Table 6 matrix: rows source, columns target, ``method`` off the diagonal, ``native`` on it."""
    t = table[(table["method"] == method) | (table["method"] == "native")]
    m = t.pivot(index="source", columns="target", values=value).reindex(index=order, columns=order)
    m.index.name, m.columns.name = "source", "target"
    return m


# -- identification -----------------------------------------------------------------
def identities_of(ids) -> np.ndarray:
    """The identity of each image id: its folder (``Aaron_Peirsol/Aaron_Peirsol_0001.jpg`` -> ``Aaron_Peirsol``)."""
    out = []
    for i in np.asarray(ids).tolist():
        if "/" not in i:
            raise PairsError(f"id {i!r}: identification needs ids of the form 'person/image'")
        out.append(i.rsplit("/", 1)[0])
    return np.array(out, dtype=str)


def identification_split(ids, n_folds: int, seed: int = 0):
    """Gallery and probe rows per identity fold.

    Returns (gallery [n_id] row index of each identity's first image,
    identity_fold [n_id], probes [n_probe] row index, probe_identity [n_probe]
    index into the gallery). Identities with one image are left out.
    """
    ids = np.asarray(ids, dtype=str)
    who = identities_of(ids)
    order = np.lexsort((ids, who))
    names, first, counts = np.unique(who[order], return_index=True, return_counts=True)
    keep = np.flatnonzero(counts >= 2)
    if len(keep) < max(2, n_folds):
        raise PairsError(f"identification: {len(keep)} identities with two or more images; "
                         f"{max(2, n_folds)} are needed for {n_folds} folds")
    gallery = order[first[keep]]
    probes, probe_id = [], []
    for g, (s, c) in enumerate(zip(first[keep], counts[keep])):
        probes += order[s + 1:s + c].tolist()
        probe_id += [g] * (c - 1)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(keep), dtype=np.int64)
    fold[rng.permutation(len(keep))] = np.arange(len(keep)) % n_folds
    return gallery, fold, np.array(probes), np.array(probe_id)


def rank_of_true(probes: np.ndarray, gallery: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1-based rank of each probe's own gallery entry by cosine similarity; ties count against the probe."""
    p = probes / np.maximum(np.linalg.norm(probes, axis=1, keepdims=True), 1e-300)
    g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-300)
    s = p @ g.T
    own = s[np.arange(len(s)), truth]
    return (s >= own[:, None]).sum(axis=1)


def identification(features: dict[str, np.ndarray], ids, n_folds: int = 5, seed: int = 0, alpha: float = 1.0,
                   precision: str = "float64") -> pd.DataFrame:
    """Rank-1 and rank-5 identification of A's probes against B's gallery, for every ordered pair and method.

    Rates pool the probes of all folds. Returns a table with :data:`ID_COLUMNS`.
    """
    names = list(features)
    feats = {k: np.asarray(v, dtype=np.float64) for k, v in features.items()}
    gallery, gfold, probes, pid = identification_split(ids, n_folds, seed)
    pfold = gfold[pid]
    fg = fold_grams({a: feats[a][probes] for a in names}, {b: feats[b][gallery[pid]] for b in names}, pfold,
                    n_folds, precision)
    methods = _methods(names, {k: v.shape[1] for k, v in feats.items()})
    hits = {m: np.zeros(len(RANKS), dtype=np.int64) for m in methods}
    sizes = []
    for k in range(n_folds):
        maps = leave_one_out_maps(fg, k, alpha)
        gk = np.flatnonzero(gfold == k)
        pk = np.flatnonzero(pfold == k)
        local = np.searchsorted(gk, pid[pk])  # probe identity -> row of this fold's gallery
        sizes.append(len(gk))
        for a, b, method in methods:
            x = feats[a][probes[pk]]
            if method == "ridge":
                x = maps[(a, b)](x)
            r = rank_of_true(x, feats[b][gallery[gk]], local)
            hits[(a, b, method)] += np.array([(r <= q).sum() for q in RANKS])
    rows = []
    for (a, b, method), h in hits.items():
        rows.append({"source": a, "target": b, "method": method, "rank1": h[0] / len(probes),
                     "rank5": h[1] / len(probes), "n_probes": len(probes), "gallery_size": float(np.mean(sizes)),
                     "folds": n_folds})
    return pd.DataFrame(rows, columns=ID_COLUMNS)
