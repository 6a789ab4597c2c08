"""Open-set verification through mapped embeddings: the LFW protocol of the paper's section 4 (Table 6).

For every ordered pair of networks (A, B) and fold k of the pairs file:

- the map ``M_k`` is a ridge map (eq. 5 with an unpenalised intercept) fitted
  on the *matched* pairs (x1, x2) of the other folds only, from source
  features ``f_A(x1)`` to target features ``f_B(x2)`` (eq. 17); with a list
  of penalties, the penalty is chosen per target by inner cross-validation
  over the other folds (:mod:`embmap.fit.folds`);
- the distance of a pair is ``1 - cos(M_k f_A(x1), f_B(x2))``; the mapped
  vector is not normalised, the cosine divides by its norm (eq. 16, where
  ``f_B`` has unit norm; the cosine also divides by ``|f_B|`` so stores that
  are not normalised are compared the same way);
- the threshold ``tau_k`` maximises accuracy over all pairs of the other
  folds (an exact search over the candidates, ties to the smallest,
  :func:`best_threshold`); a pair is called *same* when its distance is at
  most ``tau_k``; accuracy is measured on fold k with ``tau_k``;
- mean and (population, ddof 0) standard deviation over the folds.

Methods (:mod:`.common`): ``native`` (A = B, no map: the diagonal),
``ridge`` (the per-fold map; ``lstsq`` and ``procrustes`` likewise, when
``mapping.methods`` asks for them) and ``identity`` (``f_A`` compared with ``f_B``
as they are, where the dimensions agree: a control at chance).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from ..data.pairs import Pairs, PairsError, rows_of
from ..fit import FitError
from ..fit import methods as mt
from ..fit.folds import SourceFolds, check_features, fold_maps, workers
from .common import cosine, pair_methods
from .intervals import bootstrap_of, compared

POINT_COLUMNS = ["source", "target", "method", "accuracy_mean", "accuracy_std", "threshold_mean"]
TABLE_COLUMNS = POINT_COLUMNS + ["accuracy_low", "accuracy_high", "diff_target", "diff_target_low",
                                 "diff_target_high", "p_target", "p_source"]
FOLD_COLUMNS = ["source", "target", "method", "fold", "accuracy", "threshold", "train_accuracy", "n_test", "n_fit",
                "alpha"]


def cosine_distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``1 - x.y / (|x| |y|)`` row by row [n]; neither side is normalised beforehand (eq. 16)."""
    return 1.0 - cosine(x, y)


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


class FoldResult(NamedTuple):
    """One fold of the protocol: its accuracy, the threshold chosen on the other folds, their accuracy with it,
    and which of the fold's pairs it verified correctly (bool [pairs of the fold], in their order)."""

    accuracy: float
    threshold: float
    train_accuracy: float
    correct: np.ndarray


def fold_accuracy(d: np.ndarray, same: np.ndarray, fold: np.ndarray, k: int) -> FoldResult:
    """Threshold from every fold but ``k``, applied to fold ``k``."""
    train, test = fold != k, fold == k
    if not train.any() or not test.any():
        raise ValueError(f"fold {k}: needs pairs inside and outside it")
    tau, train_acc = best_threshold(d[train], same[train])
    correct = (d[test] <= tau) == same[test]
    return FoldResult(float(np.mean(correct)), tau, train_acc, correct)



def verification(features: dict, ids, pairs: Pairs, mapping: dict | None = None, threads: int | None = None,
                 intervals: dict | None = None, **keys):
    """The 10-fold protocol for every ordered pair of networks.

    Parameters
    ----------
    features : dict network -> float [n_images, d]
        Embeddings of the images ``ids`` (one row per id, same order in every network).
    ids : array of str [n_images]
        Image paths relative to the dataset root (the store's ``ids``).
    pairs : Pairs
    mapping : dict, optional
        The experiment's ``mapping`` block (``keys`` such as ``alpha=``, ``methods=``
        override it; the schema fills the rest): ``methods`` the map methods
        (:data:`embmap.fit.methods.METHODS`), each fitted per fold with the options it
        reads (ridge's ``alpha``: a penalty, or candidates chosen per outer fold and
        target by inner cross-validation over the other folds); ``precision`` the
        arithmetic of the per-fold cross products.
    threads : folds (and pairs of folds) fitted side by side, BLAS on one thread each
        (:func:`embmap.fit.folds.workers`); None: one after another
    intervals : dict, optional
        The ``intervals`` block: the interval of the mean fold accuracy resamples each fold's test pairs within
        the fold (its threshold and map stay), the same resamples for every row (:mod:`.intervals`)

    Returns
    -------
    (table with :data:`TABLE_COLUMNS`, per-fold table with :data:`FOLD_COLUMNS`;
    ``alpha`` is the penalty of the fold's map, empty without a map). ``accuracy_low``/``accuracy_high``
    bound ``accuracy_mean``; ``diff_target`` (mapped rows) is ``accuracy_mean`` minus the target's own, with
    its paired interval, and ``p_target``/``p_source`` exact McNemar p-values on the same pairs
    (:func:`embmap.evaluate.intervals.compared`).

    Work: per source network, the per-fold blocks of its fitting pairs against
    every target (:class:`embmap.fit.folds.SourceFolds`); per fold one map
    to all targets side by side, applied once to each distinct first image.
    """
    if pairs.n_folds < 2:
        raise PairsError(f"pairs file {pairs.source}: {pairs.n_folds} fold; the protocol needs at least 2")
    i1, i2 = rows_of(pairs, ids)
    opts = mt.options(mapping, **keys)
    names = list(features)
    dims = {k: int(np.shape(v)[1]) for k, v in features.items()}
    fit = pairs.same
    table_methods = pair_methods(names, dims, opts["methods"])
    # pairs are scored grouped by first image (the order changes no threshold and no accuracy), so that each
    # distinct first image is mapped once per fold and a block of them meets its pairs as one run of rows
    u1, inv1 = np.unique(i1, return_inverse=True)
    order = np.argsort(inv1, kind="stable")
    first, second, same, in_fold = inv1[order], i2[order], pairs.same[order], pairs.fold[order]
    y2 = {b: np.asarray(features[b][second], dtype=np.float64) for b in names}
    ny2 = {b: np.linalg.norm(y, axis=1) for b, y in y2.items()}
    n_test = np.bincount(pairs.fold, minlength=pairs.n_folds)
    found, right = {}, {}

    def score(a, b, method, k, result, n_fit=0, penalty=np.nan):
        acc, tau, train_acc, correct = result
        right.setdefault((a, b, method), np.zeros(len(same), dtype=bool))[in_fold == k] = correct
        found[(a, b, method, k)] = {"source": a, "target": b, "method": method, "fold": k + 1, "accuracy": acc,
                                    "threshold": tau, "train_accuracy": train_acc, "n_test": int(n_test[k]),
                                    "n_fit": int(n_fit), "alpha": penalty}

    mapped = mt.fitted(opts["methods"])
    check_features({k: features[k][i1[fit]] for k in names} if mapped else {}, mapped, opts)  # before any fold
    with workers(threads) as run:
        unmapped = [(a, b, method) for a, b, method in table_methods if method not in mt.METHODS]

        def fixed(row):  # distances that do not depend on the fold
            a, b, _ = row
            d = cosine_distance(np.asarray(features[a][u1[first]], dtype=np.float64), y2[b])
            return [fold_accuracy(d, same, in_fold, k) for k in range(pairs.n_folds)]

        for row, results in zip(unmapped, run(fixed, unmapped)):
            for k, result in enumerate(results):
                score(*row, k, result)
        for a in names if mapped else []:
            targets = [b for b in names if b != a]
            x1 = np.asarray(features[a][u1], dtype=np.float64)
            try:
                sf = SourceFolds(a, np.asarray(features[a][i1[fit]], dtype=np.float64),
                                 {b: features[b][i2[fit]] for b in targets}, pairs.fold[fit], pairs.n_folds,
                                 opts["precision"], run)
                for method in mapped:
                    def fold(k, w, c, penalty):
                        d = mapped_distances(x1, w, c, sf.slices, first, y2, ny2)
                        return {b: (fold_accuracy(d[b], same, in_fold, k), penalty[b]) for b in sf.slices}

                    for k, out in enumerate(fold_maps(sf, method, opts, run, fold)):
                        for b, (result, penalty) in out.items():
                            score(a, b, method.name, k, result, sf.n_fit(k), penalty)
            except FitError as e:
                raise FitError(f"pairs file {pairs.source}: {e}") from None
            sf = x1 = None  # one source's blocks in memory at a time
    rows = [found[(a, b, method, k)] for k in range(pairs.n_folds) for a, b, method in table_methods]
    folds = pd.DataFrame(rows, columns=FOLD_COLUMNS)
    boot = bootstrap_of(intervals, len(same), strata=in_fold)
    spread = compared(table_methods, right, boot)
    return pd.concat([summarise(folds), spread[TABLE_COLUMNS[len(POINT_COLUMNS):]]], axis=1), folds


def mapped_distances(x1: np.ndarray, w: np.ndarray, c: np.ndarray, slices: dict, first: np.ndarray,
                     y2: dict, ny2: dict, block: int = 512) -> dict:
    """Cosine distances of every pair through one map to every target: target -> float [n_pairs].

    ``x1`` [n_first, d_a] holds each distinct first image once; ``w`` [d_a, D]
    and ``c`` [D] map to all targets side by side (``slices`` their columns).
    Pair p's first image is row ``first[p]`` (non-decreasing: pairs grouped by
    first image); ``y2[b]`` [n_pairs, d_b] and ``ny2[b]`` [n_pairs] are target
    b's second images and their norms. Each block of first images is mapped
    once, to all targets in one product, and meets its pairs as one run of
    rows. Memory: one block of mapped rows.
    """
    if np.any(np.diff(first) < 0):
        raise ValueError("pairs must be grouped by first image (first non-decreasing)")
    d = {b: np.empty(len(first)) for b in slices}
    ends = np.searchsorted(first, np.arange(0, len(x1) + block, block))
    for i, lo in enumerate(range(0, len(x1), block)):
        p0, p1 = ends[i], ends[i + 1]
        m = x1[lo:lo + block] @ w
        m += c
        at = first[p0:p1] - lo  # the rows of this block's pairs
        for b, sl in slices.items():
            mb = m[:, sl]
            norm = np.sqrt(np.einsum("ij,ij->i", mb, mb))[at]
            num = np.einsum("ij,ij->i", mb[at], y2[b][p0:p1])
            d[b][p0:p1] = 1.0 - num / np.maximum(norm * ny2[b][p0:p1], 1e-300)
    return d


def summarise(folds: pd.DataFrame) -> pd.DataFrame:
    """Mean and population standard deviation (ddof 0) of the fold accuracies, mean threshold."""
    g = folds.groupby(["source", "target", "method"], sort=False)
    t = g.agg(accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", lambda x: float(np.std(x))),
              threshold_mean=("threshold", "mean")).reset_index()
    return t[POINT_COLUMNS]
