"""Identification across networks (beyond the paper): a face embedded by one network, found in another's gallery.

Identities with at least two images are dealt into folds by seed; for fold
k, network B embeds a gallery of one image per identity (its first id),
network A embeds the remaining images of those identities as probes, mapped
by a ridge map fitted on the other folds' identities only (probe of A ->
gallery image of B of the same identity; with a list of penalties, chosen by
inner cross-validation over the other folds). Rank-r rate: the share of
probes whose identity's gallery image is among the r most similar (cosine;
ties count against the probe), pooled over folds. ``rank1_low``/``rank1_high``
(and rank 5's) are a percentile bootstrap interval resampling the probes (the
maps and galleries stay; the same resamples for every row,
:mod:`embmap.evaluate.intervals`); probes of one identity are resampled
independently, so the interval is on the probes measured, not on new identities.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.pairs import PairsError, identities_of
from ..fit import methods as mt
from ..fit.folds import SourceFolds, check_features, fold_maps, workers
from .common import pair_methods
from .intervals import bootstrap_of

COLUMNS = ["source", "target", "method", "rank1", "rank5", "n_probes", "gallery_size", "folds", "rank1_low",
           "rank1_high", "rank5_low", "rank5_high"]
RANKS = (1, 5)


def identification_split(ids, n_folds: int, seed: int):
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
    return _ranks(_unit(probes), _unit(gallery), truth)


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)


def _ranks(p: np.ndarray, g: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """:func:`rank_of_true` of unit rows ``p`` [n_probe, d] against unit rows ``g`` [n_gallery, d]."""
    s = p @ g.T
    own = s[np.arange(len(s)), truth]
    return np.count_nonzero(s >= own[:, None], axis=1)


def identification(features: dict, ids, n_folds: int, seed: int, mapping: dict | None = None, log=None,
                   threads: int | None = None, intervals: dict | None = None, **keys) -> pd.DataFrame:
    """Rank-1 and rank-5 identification of A's probes against B's gallery, for every ordered pair and method.

    ``features`` maps network -> float [n_images, d] over the images ``ids``
    (``person/image``); ``mapping`` the experiment's mapping block (``keys`` such as
    ``alpha=``, ``methods=`` override it): its ``methods`` are fitted per fold
    (:data:`embmap.fit.methods.METHODS`; ridge's ``alpha`` a penalty, or a list
    chosen per fold by inner cross-validation). Rates
    pool the probes of all folds; ``threads`` folds are fitted side by side
    (:func:`embmap.fit.folds.workers`); ``intervals`` the ``intervals`` block. Returns a table with
    :data:`COLUMNS`.
    """
    opts = mt.options(mapping, **keys)
    names = list(features)
    dims = {k: int(np.shape(v)[1]) for k, v in features.items()}
    gallery, gfold, probes, pid = identification_split(ids, n_folds, seed)
    pfold = gfold[pid]
    table_methods = pair_methods(names, dims, opts["methods"])
    ranked = {m: np.zeros(len(probes), dtype=np.int64) for m in table_methods}  # each probe's rank, per row
    folds = []
    for k in range(n_folds):
        gk = np.flatnonzero(gfold == k)
        pk = np.flatnonzero(pfold == k)
        folds.append((gk, pk, np.searchsorted(gk, pid[pk])))  # probe identity -> row of this fold's gallery
    sizes = [len(gk) for gk, _, _ in folds]
    gal = {b: np.asarray(features[b][gallery], dtype=np.float64) for b in names}
    gal_unit = {b: _unit(g) for b, g in gal.items()}  # every fold's gallery rows, normalised once
    mapped = mt.fitted(opts["methods"])
    check_features({k: features[k][probes] for k in names} if mapped else {}, mapped, opts)  # before any fold
    with workers(threads) as run:
        unmapped = [(a, b, method) for a, b, method in table_methods if method not in mt.METHODS]

        def fixed(row):  # ranks that need no map
            a, b, _ = row
            x = _unit(np.asarray(features[a][probes], dtype=np.float64))
            return [_ranks(x[pk], gal_unit[b][gk], local) for gk, pk, local in folds]

        for row, ranks in zip(unmapped, run(fixed, unmapped)):
            for (_, pk, _), r in zip(folds, ranks):
                ranked[row][pk] = r
        for a in names if mapped else []:
            targets = [b for b in names if b != a]
            xa = np.asarray(features[a][probes], dtype=np.float64)
            sf = SourceFolds(a, xa, {b: gal[b][pid] for b in targets}, pfold, n_folds, opts["precision"], run)
            for method in mapped:
                def fold(k, w, c, penalty):
                    gk, pk, local = folds[k]
                    m = xa[pk] @ w + c
                    return {b: _ranks(_unit(m[:, sl]), gal_unit[b][gk], local) for b, sl in sf.slices.items()}

                for (_, pk, _), ranks in zip(folds, fold_maps(sf, method, opts, run, fold, log=log)):
                    for b, r in ranks.items():
                        ranked[(a, b, method.name)][pk] = r
            sf = xa = None  # one source's blocks in memory at a time
    boot = bootstrap_of(intervals, len(probes))
    keys = list(ranked)
    spread = {q: boot.interval(boot.means(np.stack([ranked[k] <= q for k in keys]))) for q in RANKS}
    rows = []
    for i, (a, b, method) in enumerate(keys):
        r = ranked[(a, b, method)]
        rows.append({"source": a, "target": b, "method": method, "rank1": float(np.mean(r <= 1)),
                     "rank5": float(np.mean(r <= 5)), "n_probes": len(probes), "gallery_size": float(np.mean(sizes)),
                     "folds": n_folds, **{f"rank{q}_{end}": spread[q][j][i] for q in RANKS
                                          for j, end in enumerate(("low", "high"))}})
    return pd.DataFrame(rows, columns=COLUMNS)
