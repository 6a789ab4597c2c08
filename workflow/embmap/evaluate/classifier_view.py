"""What the classifier sees: the part of each map's residual in the row space of the target's classifier.

B's classifier reads its features only through ``C_B f_B`` (``C_B``: weight
[classes, d_B]), so an error of a mapped ``f_B`` in the null space of ``C_B``
changes no logit. For every mapped pair A -> B (every fitted method and the
analytic map of Theorem 3.2) the residual ``r = mapped f_B - f_B`` on the
evaluation split is split with an orthonormal basis Q_B of the row space of
``C_B`` (the right singular vectors of ``C_B`` above numpy's ``matrix_rank``
tolerance, computed once per target) into ``r Q_B Q_B^T`` (what the classifier
sees) and the rest (what it ignores). This is the paper's section 3.4 caveat
as a number: a map can reach the target's accuracy with a poor feature fit when
its residual lies where the classifier does not look.

Columns (:data:`COLUMNS`, one row per source, target and method):

- ``accuracy`` (with its interval), ``target_accuracy`` (B's own),
  ``accuracy_loss`` = accuracy - target_accuracy with its paired interval;
- ``analytic_accuracy`` and ``analytic_gap`` = analytic_accuracy - accuracy
  with its paired interval (0 on the analytic rows; empty where the two
  classifiers share no label);
- ``r2``: the variance of f_B explained (as ``closed_set.csv``'s); ``r2_seen``
  and ``r2_ignored``: the same within the row space and within the null space
  (each: 1 - the residual's squared norm there / the centred f_B's there);
- ``seen_fraction`` = ``sum ||r Q_B||^2 / sum ||r||^2``, the share of the
  residual's squared norm the classifier sees;
- ``classifier_rank`` (the rank of C_B), ``target_dim`` (d_B) and ``sees_all``:
  True when C_B has full column rank (classes >= d_B, rank d_B): the row space
  is all of B's space, so ``seen_fraction`` is 1 by construction and
  ``r2_ignored`` is empty;
- ``n``: labelled evaluation samples.

Cost: the closed-set evaluation's applies of the maps, and one product of each
residual with Q_B ([n, d_B] x [d_B, rank]).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stores as st
from ..fit import FitError
from ..fit.linear import LinearMap
from .closed_set import Spread, analytic_factor, analytic_map, feature_chunks, predict, r2, setup
from .common import ANALYTIC, NATIVE

COLUMNS = ["source", "target", "method", "accuracy", "accuracy_low", "accuracy_high", "target_accuracy",
           "accuracy_loss", "accuracy_loss_low", "accuracy_loss_high", "analytic_accuracy", "analytic_gap",
           "analytic_gap_low", "analytic_gap_high", "r2", "r2_seen", "r2_ignored", "seen_fraction",
           "classifier_rank", "target_dim", "sees_all", "n"]


def row_space(weight: np.ndarray) -> np.ndarray:
    """An orthonormal basis [d, rank] of the row space of a classifier's weight [classes, d]: its right singular
    vectors whose singular values exceed numpy's ``matrix_rank`` tolerance (``max s max(shape) eps``)."""
    w = np.asarray(weight, dtype=np.float64)
    _, s, vt = np.linalg.svd(w, full_matrices=False)
    tol = s.max() * max(w.shape) * np.finfo(np.float64).eps if len(s) else 0.0
    return vt[s > tol].T


def classifier_view(stores: dict[str, st.EmbeddingStore], maps: dict[str, dict[tuple[str, str], LinearMap]],
                    block_rows: int = 4096, intervals: dict | None = None) -> pd.DataFrame:
    """Every mapped pair of every fitted method, and the analytic map, in one pass over the evaluation ``stores``
    (as :func:`embmap.evaluate.closed_set.evaluate` takes them). Returns a DataFrame of :data:`COLUMNS`."""
    from .intervals import bootstrap_of

    e = setup(stores, maps)
    names, labels, known, maps, cls, offset = e.names, e.labels, e.known, e.maps, e.cls, e.offset
    basis = {b: row_space(cls[b][0]) for b in names}
    sees_all = {b: basis[b].shape[1] == stores[b].dim for b in names}
    factors = {b: analytic_factor(cls[b]) for b in names}
    mapped: dict[tuple[str, str, str], LinearMap | None] = {(a, a, NATIVE): None for a in names}
    for a in names:
        for b in names:
            if a == b:
                continue
            for m, fitted in maps.items():
                mapped[(a, b, m)] = fitted[(a, b)]
            try:
                mapped[(a, b, ANALYTIC)] = analytic_map(cls[a], cls[b], offset[a], offset[b], factors[b])
            except FitError:  # no label in common
                pass
    right = {k: [] for k in mapped}
    sse, seen = dict.fromkeys(mapped, 0.0), dict.fromkeys(mapped, 0.0)
    spread = {b: Spread(stores[b].dim) for b in names}
    spread_seen = {b: Spread(basis[b].shape[1]) for b in names}  # of f_B's coordinates in the row space
    for start, stop, feats in feature_chunks(stores, block_rows):
        y, mask = labels[start:stop], known[start:stop]
        for b in names:
            spread[b].add(feats[b])
            spread_seen[b].add(feats[b] @ basis[b])
        for (a, b, m), fmap in mapped.items():
            out = feats[a] if fmap is None else fmap(feats[a])
            right[(a, b, m)].append((predict(out, cls[b], offset[b]) == y) & mask)
            if fmap is not None:
                r = out - feats[b]
                sse[(a, b, m)] += float(np.sum(r ** 2))
                seen[(a, b, m)] += float(np.sum((r @ basis[b]) ** 2))
    n = len(labels)
    sst = {b: spread[b].total for b in names}
    sst_seen = {b: spread_seen[b].total for b in names}
    keys = list(mapped)
    at = {k: i for i, k in enumerate(keys)}
    boot = bootstrap_of(intervals, n)
    values = np.stack([np.concatenate(right[k]) for k in keys])
    rate, point = boot.means(values, known), boot.point(values, known)
    low, high = boot.interval(rate)
    rows = []
    for (a, b, m) in keys:
        if m == NATIVE:
            continue
        i, t = at[(a, b, m)], at[(b, b, NATIVE)]
        lo_loss, hi_loss = boot.interval(rate[:, i] - rate[:, t])
        j = at.get((a, b, ANALYTIC))
        gap = gap_low = gap_high = analytic = np.nan
        if j is not None:
            analytic, gap = point[j], point[j] - point[i]
            gap_low, gap_high = boot.interval(rate[:, j] - rate[:, i])
        ign_sst, ign_sse = sst[b] - sst_seen[b], sse[(a, b, m)] - seen[(a, b, m)]
        rows.append({
            "source": a, "target": b, "method": m, "accuracy": point[i], "accuracy_low": low[i],
            "accuracy_high": high[i], "target_accuracy": point[t], "accuracy_loss": point[i] - point[t],
            "accuracy_loss_low": float(lo_loss), "accuracy_loss_high": float(hi_loss),
            "analytic_accuracy": analytic, "analytic_gap": gap, "analytic_gap_low": float(gap_low),
            "analytic_gap_high": float(gap_high),
            "r2": r2(sse[(a, b, m)], sst[b]), "r2_seen": r2(seen[(a, b, m)], sst_seen[b]),
            "r2_ignored": (1.0 - ign_sse / ign_sst if not sees_all[b] and ign_sst > 1e-12 * sst[b] else np.nan),
            "seen_fraction": 1.0 if sees_all[b] else (seen[(a, b, m)] / sse[(a, b, m)] if sse[(a, b, m)] > 0
                                                       else np.nan),
            "classifier_rank": int(basis[b].shape[1]), "target_dim": int(stores[b].dim), "sees_all": sees_all[b],
            "n": int(known.sum()),
        })
    return pd.DataFrame(rows, columns=COLUMNS)
