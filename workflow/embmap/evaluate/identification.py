"""Identification across networks (beyond the paper): a face embedded by one network, found in another's gallery.

Identities with at least two images are dealt into folds by seed; for fold
k, network B embeds a gallery of one image per identity (its first id),
network A embeds the remaining images of those identities as probes, mapped
by a ridge map fitted on the other folds' identities only (probe of A ->
gallery image of B of the same identity; with a list of penalties, chosen by
inner cross-validation over the other folds). Rank-r rate: the share of
probes whose identity's gallery image is among the r most similar (cosine;
ties count against the probe), pooled over folds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.pairs import PairsError, identities_of
from ..fit.folds import fold_grams, leave_one_out_maps
from .common import RIDGE, pair_methods

COLUMNS = ["source", "target", "method", "rank1", "rank5", "n_probes", "gallery_size", "folds"]
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
    p = probes / np.maximum(np.linalg.norm(probes, axis=1, keepdims=True), 1e-300)
    g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-300)
    s = p @ g.T
    own = s[np.arange(len(s)), truth]
    return (s >= own[:, None]).sum(axis=1)


def identification(features: dict, ids, n_folds: int, seed: int, alpha, precision: str = "float64",
                   log=None) -> pd.DataFrame:
    """Rank-1 and rank-5 identification of A's probes against B's gallery, for every ordered pair and method.

    ``features`` maps network -> float [n_images, d] over the images ``ids``
    (``person/image``); ``alpha`` is a penalty or a list chosen per fold by
    inner cross-validation. Rates pool the probes of all folds. Returns a
    table with :data:`COLUMNS`.
    """
    names = list(features)
    feats = {k: np.asarray(v, dtype=np.float64) for k, v in features.items()}
    gallery, gfold, probes, pid = identification_split(ids, n_folds, seed)
    pfold = gfold[pid]
    fg = fold_grams({a: feats[a][probes] for a in names}, {b: feats[b][gallery[pid]] for b in names}, pfold,
                    n_folds, precision)
    methods = pair_methods(names, {k: v.shape[1] for k, v in feats.items()})
    hits = {m: np.zeros(len(RANKS), dtype=np.int64) for m in methods}
    sizes = []
    for k in range(n_folds):
        maps = leave_one_out_maps(fg, k, alpha)
        if log and isinstance(alpha, list):
            log(f"identification fold {k + 1}: alphas chosen by inner cross-validation: "
                + ", ".join(f"{a}->{b} {m.attrs['alpha']:g}" for (a, b), m in maps.items()))
        gk = np.flatnonzero(gfold == k)
        pk = np.flatnonzero(pfold == k)
        local = np.searchsorted(gk, pid[pk])  # probe identity -> row of this fold's gallery
        sizes.append(len(gk))
        for a, b, method in methods:
            x = feats[a][probes[pk]]
            if method == RIDGE:
                x = maps[(a, b)](x)
            r = rank_of_true(x, feats[b][gallery[gk]], local)
            hits[(a, b, method)] += np.array([(r <= q).sum() for q in RANKS])
    rows = []
    for (a, b, method), h in hits.items():
        rows.append({"source": a, "target": b, "method": method, "rank1": h[0] / len(probes),
                     "rank5": h[1] / len(probes), "n_probes": len(probes), "gallery_size": float(np.mean(sizes)),
                     "folds": n_folds})
    return pd.DataFrame(rows, columns=COLUMNS)
