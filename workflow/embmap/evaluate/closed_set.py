"""Closed-set evaluation: the target network's classifier reading mapped features (the paper's Table 2).

For every ordered pair (A, B) and method, features ``f_A`` of the
evaluation split are mapped into B's space and fed to B's classifier:

- ``native``   A = B, no map: the network's own accuracy (the diagonal);
- ``ridge``    the fitted ridge map (paper eq. 5); every other map method of
  ``mapping.methods`` likewise (``lstsq``, ``procrustes``: :mod:`embmap.fit.methods`);
- ``analytic`` Theorem 3.2: ``pinv(C_B) (C_A f_A + b_A - b_B)``; equals A's own
  accuracy whenever ``C_B`` has full row rank (across label spaces see
  :func:`analytic_map`);
- ``identity`` ``f_A`` unchanged, wherever the dimensions agree (a control).

Table columns (``tables/closed_set.csv``, one row per source, target, method):
``source, target, method, accuracy, source_accuracy, target_accuracy,
pct_change, r2, cosine, agreement, n, fit_r2`` where ``pct_change`` is the
change relative to the source's native accuracy in percent (as in Table 2),
``r2`` the variance of ``f_B`` explained by the mapped features on the
evaluation split (pooled over features), ``fit_r2`` the same on the fit split
(the map's own, empty for rows without a fitted map: a large gap to ``r2``
is a map that fits its samples without carrying anything to new ones), ``cosine`` the mean cosine between mapped and
true ``f_B``, and ``agreement`` the share of samples where the mapped network
predicts the class B itself predicts.

Intervals (:mod:`.intervals`, the experiment's ``intervals`` block): a paired
bootstrap over the evaluation samples gives ``accuracy_low``/``accuracy_high``,
``agreement_low``/``agreement_high`` and ``pct_change_low``/``pct_change_high``
(the source's accuracy resampled with the row's); for rows with a map
(not ``native``) ``diff_target`` is ``accuracy - target_accuracy`` with its
interval ``diff_target_low``/``diff_target_high``, and ``p_target``/``p_source``
are exact McNemar p-values of the row's per-sample correctness against the
target's / the source's own on the same samples (small: the map changes which
samples are right). ``r2`` and ``cosine`` stay point estimates.

Label spaces: a classifier's class k predicts dataset label k +
``label_offset`` (the store records it: 0 where the classifier has the
dataset's classes, 1 for a 1,000-class ImageNet head beside 1,001 labels
whose 0 is the background), so networks of both conventions are compared on
the dataset's labels in one table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import stores as st
from ..fit import FitError
from ..fit.linear import LinearMap
from ..fit.methods import METHODS
from .common import ANALYTIC, IDENTITY, NATIVE, cosine

POINT_COLUMNS = ["source", "target", "method", "accuracy", "source_accuracy", "target_accuracy", "pct_change",
                 "r2", "cosine", "agreement", "n", "fit_r2"]
INTERVAL_COLUMNS = ["accuracy_low", "accuracy_high", "agreement_low", "agreement_high", "pct_change_low",
                    "pct_change_high", "diff_target", "diff_target_low", "diff_target_high", "p_target", "p_source"]
COLUMNS = POINT_COLUMNS + INTERVAL_COLUMNS


class _Tally:
    __slots__ = ("correct", "agree", "cos", "sse", "n")

    def __init__(self):
        self.correct = self.agree = self.n = 0
        self.cos = self.sse = 0.0


def eval_labels(stores: dict[str, st.EmbeddingStore]) -> np.ndarray:
    """The evaluation split's labels (int [n], -1 where unlabelled), refused when none is labelled."""
    first = next(iter(stores.values()))
    labels = first.labels
    if (labels < 0).all():
        raise st.StoreError(f"store {first.path}: no labels in the evaluation split; closed_set needs them")
    return labels


def feature_chunks(stores: dict[str, st.EmbeddingStore], block_rows: int = 4096):
    """Yield ``(start, stop, {network: float64 [stop - start, d]})`` over the matched stores' samples, ``block_rows``
    at a time, refusing a non-finite embedding (naming its network, row and store)."""
    first = next(iter(stores.values()))
    for start, stop in st.sample_chunks(first.n, block_rows):
        feats = {k: np.asarray(s.embeddings[start:stop], dtype=np.float64) for k, s in stores.items()}
        for k, f in feats.items():
            if not np.isfinite(f).all():
                row = start + int(np.flatnonzero(~np.isfinite(f).all(axis=1))[0])
                raise st.StoreError(f"network {k!r}: non-finite embedding at row {row} of {stores[k].path}")
        yield start, stop, feats


def checked_maps(maps: dict, names: list[str]) -> dict:
    """``maps`` {method: {(source, target): LinearMap}} in the registry's order of methods, refused (KeyError) when a
    method is unknown or lacks a map of an ordered pair of distinct ``names``."""
    unknown = [m for m in maps if m not in METHODS]
    if unknown:
        raise KeyError(f"maps of an unknown method {unknown[0]!r}; the map methods are {', '.join(METHODS)}")
    maps = {m: maps[m] for m in METHODS if m in maps}
    for method, fitted in maps.items():
        missing = [(a, b) for a in names for b in names if a != b and (a, b) not in fitted]
        if missing:
            raise KeyError(f"no {method} map from {missing[0][0]!r} to {missing[0][1]!r}")
    return maps


@dataclass
class Setup:
    """What every measure of the evaluation split reads (:func:`setup`): the networks in the table's order, the
    labels (int [n], -1 where unlabelled) and which are ``known``, the maps in the registry's order of methods,
    each network's classifier (weight, bias) and label ``offset``."""

    names: list
    labels: np.ndarray
    known: np.ndarray
    maps: dict
    cls: dict
    offset: dict


def setup(stores: dict[str, st.EmbeddingStore], maps: dict) -> Setup:
    """The :class:`Setup` of matched evaluation ``stores`` with classifiers and ``maps`` {method: {(source, target):
    LinearMap}}, refused without labels or with a map missing (:func:`eval_labels`, :func:`checked_maps`)."""
    names = list(stores)
    labels = eval_labels(stores)
    return Setup(names, labels, labels >= 0, checked_maps(maps, names), {k: s.classifier() for k, s in stores.items()},
                 {k: s.label_offset for k, s in stores.items()})


class Spread:
    """``sum ||x - mean(x)||^2`` of rows added chunk by chunk (one-pass sums, as the tables' ``r2`` take it)."""

    def __init__(self, dim: int):
        self.sum, self.sq, self.n = np.zeros(dim), 0.0, 0

    def add(self, x: np.ndarray) -> None:
        self.sum += x.sum(axis=0)
        self.sq += float(np.sum(x ** 2))
        self.n += len(x)

    @property
    def total(self) -> float:
        return self.sq - float(self.sum @ self.sum) / self.n if self.n else 0.0


def r2(sse: float, spread: float) -> float:
    """``1 - sse / spread``: the variance explained (NaN for a constant target)."""
    return 1.0 - sse / spread if spread > 0 else np.nan


def predict(features: np.ndarray, classifier: tuple, offset: int = 0) -> np.ndarray:
    """The dataset labels a classifier (weight [class, d], bias [class]) predicts for ``features`` [n, d]."""
    return np.argmax(features @ classifier[0].T + classifier[1], axis=1) + offset


def analytic_factor(cls_b: tuple) -> tuple[np.ndarray, bool]:
    """``pinv(C_B)`` and whether ``C_B`` has full row rank, from one SVD of B's classifier.

    The same cut-offs as numpy's ``pinv`` (singular values above ``1e-15 max s``)
    and ``matrix_rank`` (above ``max s max(shape) eps``). Computed once per
    target network and shared by every source's analytic map.
    """
    cb = np.asarray(cls_b[0], dtype=np.float64)
    u, s, vt = np.linalg.svd(cb, full_matrices=False)
    large = s > 1e-15 * s.max() if len(s) else s > 0
    inv = np.zeros_like(s)
    inv[large] = 1.0 / s[large]
    pinv_b = vt.T @ (inv[:, None] * u.T)
    rank = int(np.sum(s > (s.max() * max(cb.shape) * np.finfo(np.float64).eps if len(s) else 0.0)))
    return pinv_b, rank == cb.shape[0]


def analytic_map(cls_a: tuple, cls_b: tuple, offset_a: int = 0, offset_b: int = 0,
                 factor: tuple | None = None) -> LinearMap:
    """The paper's Theorem 3.2 map: ``f_B = pinv(C_B) (C_A f_A + b_A - b_B)``.

    ``cls_a`` and ``cls_b`` are (weight [class, feature], bias [class]). When
    ``C_B`` has full row rank the mapped features give exactly the source
    network's logits under B's classifier. ``factor`` is B's
    :func:`analytic_factor` (computed here when not given).

    Across label spaces (``offset_*``: the dataset label of each classifier's
    class 0) the map targets A's logits on the labels both classifiers have;
    a class of B that A lacks (the background of a 1,001-class B beside a
    1,000-class A) is given the mean of those logits, which never exceeds
    their maximum, so B predicts what A predicts among the shared labels.
    That equals A's own prediction unless A predicts a class B lacks.
    """
    ca, ba = (np.asarray(t, dtype=np.float64) for t in cls_a)
    cb, bb = (np.asarray(t, dtype=np.float64) for t in cls_b)
    lo, hi = max(offset_a, offset_b), min(ca.shape[0] + offset_a, cb.shape[0] + offset_b)
    if hi <= lo:
        raise FitError(f"classifiers of {ca.shape[0]} classes (labels from {offset_a}) and {cb.shape[0]} classes "
                       f"(labels from {offset_b}) share no label; the analytic map needs shared classes")
    rows_a, rows_b = np.arange(lo, hi) - offset_a, np.arange(lo, hi) - offset_b
    if len(rows_a) == ca.shape[0] == cb.shape[0]:  # one label space: A's logits as they are
        target_w, target_b = ca, ba
    else:
        target_w = np.repeat(ca[rows_a].mean(axis=0)[None], cb.shape[0], axis=0)  # B's logits as a function of f_A
        target_b = np.full(cb.shape[0], ba[rows_a].mean())
        target_w[rows_b], target_b[rows_b] = ca[rows_a], ba[rows_a]
    pinv_b, full_rank = factor if factor is not None else analytic_factor(cls_b)
    return LinearMap(target_w.T @ pinv_b.T, pinv_b @ (target_b - bb),
                     {"method": "analytic", "exact": bool(full_rank), "shared_labels": int(hi - lo)})


def evaluate(stores: dict[str, st.EmbeddingStore], maps: dict[str, dict[tuple[str, str], LinearMap]],
             block_rows: int = 4096, controls: bool = True, intervals: dict | None = None) -> pd.DataFrame:
    """Measure every pair and method in one pass over the evaluation stores.

    Parameters
    ----------
    stores : dict network -> EmbeddingStore
        Matched stores of the evaluation split (see :func:`embmap.stores.open_matched`),
        each with a classifier; their order is the table's order.
    maps : dict method -> {(source, target): LinearMap}
        Each map method's maps (:mod:`embmap.fit.methods`) for every ordered pair of
        distinct networks, measured in rows of their own ``method`` (in the
        registry's order).
    controls : bool
        Also measure the analytic and identity maps (False: native and fitted maps only).
    block_rows : int
        Samples read per step; the features' memory is bounded by this, not by the split size.
    intervals : dict, optional
        The ``intervals`` block (level, resamples, seed; the schema fills the rest).

    Returns
    -------
    DataFrame with :data:`COLUMNS` (:data:`POINT_COLUMNS`, then :data:`INTERVAL_COLUMNS`). Beside the features, two
    bool vectors per row of the table are kept for the intervals (``2 n`` bytes a row).
    """
    names = list(stores)
    labels = eval_labels(stores)
    cls = {k: s.classifier() for k, s in stores.items()}
    offset = {k: s.label_offset for k, s in stores.items()}
    maps = checked_maps(maps, names)
    factors = {}  # one factorisation per target classifier, shared by every source
    methods: dict[tuple[str, str, str], LinearMap | None] = {}
    for a in names:
        methods[(a, a, NATIVE)] = None
        for b in names:
            if a == b:
                continue
            for method, fitted in maps.items():
                methods[(a, b, method)] = fitted[(a, b)]
            if controls:
                if b not in factors:
                    factors[b] = analytic_factor(cls[b])
                try:
                    methods[(a, b, ANALYTIC)] = analytic_map(cls[a], cls[b], offset[a], offset[b], factors[b])
                except FitError:  # no label in common: the theorem has nothing to say
                    pass
            if controls and stores[a].dim == stores[b].dim:
                methods[(a, b, IDENTITY)] = LinearMap(np.eye(stores[a].dim), np.zeros(stores[a].dim),
                                                      {"method": IDENTITY})
    tallies = {key: _Tally() for key in methods}
    right = {key: [] for key in methods}  # per-sample correctness and agreement, chunk by chunk
    agreed = {key: [] for key in methods}
    ysum = {b: np.zeros(stores[b].dim) for b in names}
    ysq = {b: 0.0 for b in names}
    n_total = 0
    known = labels >= 0
    for start, stop, feats in feature_chunks(stores, block_rows):
        y = labels[start:stop]
        mask = known[start:stop]
        native_pred = {k: predict(f, cls[k], offset[k]) for k, f in feats.items()}
        for b in names:
            ysum[b] += feats[b].sum(axis=0)
            ysq[b] += float(np.sum(feats[b] ** 2))
        n_total += stop - start
        for (a, b, method), m in methods.items():
            mapped = feats[a] if m is None else m(feats[a])
            pred = predict(mapped, cls[b], offset[b])
            t = tallies[(a, b, method)]
            right[(a, b, method)].append((pred == y) & mask)
            agreed[(a, b, method)].append(pred == native_pred[b])
            t.correct += int(np.sum(pred[mask] == y[mask]))
            t.n += int(mask.sum())
            t.agree += int(np.sum(pred == native_pred[b]))
            t.cos += float(cosine(mapped, feats[b]).sum())
            t.sse += float(np.sum((mapped - feats[b]) ** 2))
    sst = {b: ysq[b] - float(ysum[b] @ ysum[b]) / n_total for b in names}
    native_acc = {a: tallies[(a, a, NATIVE)].correct / tallies[(a, a, NATIVE)].n for a in names}
    rows = []
    for (a, b, method), t in tallies.items():
        acc = t.correct / t.n
        rows.append({
            "source": a, "target": b, "method": method, "accuracy": acc,
            "source_accuracy": native_acc[a], "target_accuracy": native_acc[b],
            "pct_change": 100.0 * (acc - native_acc[a]) / native_acc[a] if native_acc[a] > 0 else np.nan,
            "r2": 1.0 - t.sse / sst[b] if sst[b] > 0 else np.nan,
            "cosine": t.cos / n_total, "agreement": t.agree / n_total, "n": t.n,
            "fit_r2": float(maps[method][(a, b)].attrs.get("fit_r2", np.nan)) if method in maps else np.nan,
        })
    table = pd.DataFrame(rows, columns=POINT_COLUMNS)
    right = {k: np.concatenate(v) for k, v in right.items()}
    agreed = {k: np.concatenate(v) for k, v in agreed.items()}
    return table.join(with_intervals(list(tallies), right, agreed, known, intervals))


def with_intervals(keys: list, right: dict, agreed: dict, known: np.ndarray, options: dict | None) -> pd.DataFrame:
    """:data:`INTERVAL_COLUMNS` of the rows ``keys`` [(source, target, method)], in that order, from their
    per-sample correctness ``right[key]`` (bool [n], False where unlabelled) and agreement ``agreed[key]``;
    ``known`` marks the labelled samples (accuracy's denominator)."""
    from .intervals import bootstrap_of, compared

    boot = bootstrap_of(options, len(known))
    out = compared(keys, right, boot, where=known)
    out["agreement_low"], out["agreement_high"] = boot.interval(boot.means(np.stack([agreed[k] for k in keys])))
    return out[INTERVAL_COLUMNS]
