"""Composition: for every ordered triple (A, B, C) of distinct networks, the map A -> B -> C against A -> C.

If the pairwise maps were one consistent system, going through B would change
nothing. The composed map is ``x -> (x W_AB + c_AB) W_BC + c_BC``, that is the
linear map ``W_AB W_BC`` with intercept ``c_AB W_BC + c_BC`` (maps are
``f_B ~ f_A @ weight + intercept``, :class:`embmap.fit.linear.LinearMap`). It is
applied as the two maps in turn on the mapped features A -> B, which every C
shares (the same numbers up to rounding as the composed weights, without a
``d_A x d_C`` product per triple); both maps' outputs go through C's
classifier on the evaluation split.

Columns (:data:`COLUMNS`, one row per triple and fitted method):

- ``accuracy_direct``, ``accuracy_composed`` and their intervals; ``diff`` =
  composed - direct with its paired interval (:mod:`.intervals`: the same
  resamples for both): the accuracy one more hop costs;
- ``r2_direct``, ``r2_composed``: the variance of f_C explained by each map's
  output on the evaluation split (pooled over features);
- ``distance``: ``sum ||composed - direct||^2 / sum ||direct - mean(direct)||^2``
  over the evaluation samples, the share of the direct map's own spread by
  which the two maps' outputs differ (0: the maps agree; 1: as far apart as a
  constant at the direct map's mean);
- ``target_accuracy``: C's own; ``n``: labelled evaluation samples.

:func:`summary` gives the experiment's mean loss per hop (``-mean(diff)`` over
triples, with its interval from the same resamples).

Cost: N (N - 1) (N - 2) triples per method, each one apply of a ``d_B x d_C``
map and of C's classifier to the evaluation split (N (N - 1) more for the
first hops): for 11 networks about 3 times the closed-set evaluation's
applies. Memory: the N - 1 first hops of one source on ``block_rows`` samples,
and one correctness vector (n bytes) per triple; the bootstrap takes one
method's triples at a time ([triples, n] float64).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stores as st
from ..fit.linear import LinearMap
from .closed_set import Spread, feature_chunks, predict, r2, setup

COLUMNS = ["source", "via", "target", "method", "accuracy_direct", "accuracy_direct_low", "accuracy_direct_high",
           "accuracy_composed", "accuracy_composed_low", "accuracy_composed_high", "diff", "diff_low", "diff_high",
           "r2_direct", "r2_composed", "distance", "target_accuracy", "n"]
SUMMARY_COLUMNS = ["method", "networks", "triples", "loss_per_hop", "loss_per_hop_low", "loss_per_hop_high",
                   "distance", "r2_drop"]


def triples(names: list[str]) -> list[tuple[str, str, str]]:
    """Every ordered triple (source, via, target) of distinct networks, in the networks' order."""
    return [(a, b, c) for a in names for b in names for c in names if len({a, b, c}) == 3]


def composition(stores: dict[str, st.EmbeddingStore], maps: dict[str, dict[tuple[str, str], LinearMap]],
                block_rows: int = 2048, intervals: dict | None = None,
                controls=()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every triple and fitted method in one pass over the evaluation ``stores`` (as
    :func:`embmap.evaluate.closed_set.evaluate` takes them, at least three networks).

    Returns the table (:data:`COLUMNS`) and its :func:`summary` (every network, and without ``controls`` when
    there are any).
    """
    from .intervals import bootstrap_of

    names = list(stores)
    if len(names) < 3:
        raise ValueError(f"composition needs three networks or more; the experiment has {len(names)}")
    e = setup(stores, maps)
    labels, known, maps, cls, offset = e.labels, e.known, e.maps, e.cls, e.offset
    pairs = [(a, c) for a in names for c in names if a != c]
    trip = triples(names)
    native = {a: [] for a in names}
    direct = {(a, c, m): [] for m in maps for a, c in pairs}
    composed = {(a, b, c, m): [] for m in maps for a, b, c in trip}
    sse_d, sse_c, dist = dict.fromkeys(direct, 0.0), dict.fromkeys(composed, 0.0), dict.fromkeys(composed, 0.0)
    out_spread = {k: Spread(stores[k[1]].dim) for k in direct}  # of the direct maps' outputs
    spread = {c: Spread(stores[c].dim) for c in names}
    for start, stop, feats in feature_chunks(stores, block_rows):
        y, mask = labels[start:stop], known[start:stop]
        for c in names:
            spread[c].add(feats[c])
            native[c].append((predict(feats[c], cls[c], offset[c]) == y) & mask)
        for m, fitted in maps.items():
            for a in names:
                hop = {b: fitted[(a, b)](feats[a]) for b in names if b != a}  # A -> B, shared by every C
                for c, out in hop.items():
                    direct[(a, c, m)].append((predict(out, cls[c], offset[c]) == y) & mask)
                    sse_d[(a, c, m)] += float(np.sum((out - feats[c]) ** 2))
                    out_spread[(a, c, m)].add(out)
                for b, mid in hop.items():
                    for c in names:
                        if c in (a, b):
                            continue
                        out = fitted[(b, c)](mid)
                        composed[(a, b, c, m)].append((predict(out, cls[c], offset[c]) == y) & mask)
                        sse_c[(a, b, c, m)] += float(np.sum((out - feats[c]) ** 2))
                        dist[(a, b, c, m)] += float(np.sum((out - hop[c]) ** 2))
    n = len(labels)
    sst = {c: spread[c].total for c in names}
    spread_d = {k: out_spread[k].total for k in direct}
    boot = bootstrap_of(intervals, n)
    nat = np.stack([np.concatenate(native[c]) for c in names])
    nat_point = dict(zip(names, boot.point(nat, known)))
    rows, hop_losses = [], {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for m in maps:
            dkeys = [(a, c, m) for a, c in pairs]
            ckeys = [(a, b, c, m) for a, b, c in trip]
            dv = np.stack([np.concatenate(direct[k]) for k in dkeys])
            cv = np.stack([np.concatenate(composed[k]) for k in ckeys])
            d_rate, c_rate = boot.means(dv, known), boot.means(cv, known)
            d_point, c_point = boot.point(dv, known), boot.point(cv, known)
            d_low, d_high = boot.interval(d_rate)
            c_low, c_high = boot.interval(c_rate)
            at = {k: i for i, k in enumerate(dkeys)}
            of = [at[(a, c, m)] for a, _, c, _ in ckeys]
            diff = c_rate - d_rate[:, of]
            f_low, f_high = boot.interval(diff)
            hop_losses[m] = -diff  # [resamples, triples]: the loss of one more hop
            for j, (a, b, c, _) in enumerate(ckeys):
                i = of[j]
                rows.append({
                    "source": a, "via": b, "target": c, "method": m,
                    "accuracy_direct": d_point[i], "accuracy_direct_low": d_low[i], "accuracy_direct_high": d_high[i],
                    "accuracy_composed": c_point[j], "accuracy_composed_low": c_low[j],
                    "accuracy_composed_high": c_high[j], "diff": c_point[j] - d_point[i], "diff_low": f_low[j],
                    "diff_high": f_high[j],
                    "r2_direct": r2(sse_d[(a, c, m)], sst[c]), "r2_composed": r2(sse_c[(a, b, c, m)], sst[c]),
                    "distance": (dist[(a, b, c, m)] / spread_d[(a, c, m)] if spread_d[(a, c, m)] > 0
                                 else np.nan),
                    "target_accuracy": nat_point[c], "n": int(known.sum()),
                })
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table, summary(table, hop_losses, boot, controls)


def summary(table: pd.DataFrame, hop_losses: dict | None = None, boot=None, controls=()) -> pd.DataFrame:
    """Per method, over its triples: ``loss_per_hop`` = ``-mean(diff)`` (the accuracy one more hop costs, on
    average), with its interval when ``hop_losses`` {method: resampled -diff [resamples, triples in the table's
    order]} and ``boot`` are given; the mean ``distance``; and ``r2_drop`` = mean ``r2_direct - r2_composed``. One row
    per method over every triple (``networks`` = ``all``), and one over the triples without any of ``controls``."""
    rows = []
    for m, t in table.groupby("method", sort=False):
        scopes = [("all", np.ones(len(t), dtype=bool))]
        if len(controls):
            plain = ~(t.source.isin(controls) | t.via.isin(controls) | t.target.isin(controls)).to_numpy()
            scopes.append(("without controls", plain))
        for scope, keep in scopes:
            if not keep.any():
                continue
            low = high = np.nan
            if hop_losses is not None and boot is not None:
                low, high = boot.interval(hop_losses[m][:, keep].mean(axis=1))
            sub = t[keep]
            rows.append({"method": m, "networks": scope, "triples": int(keep.sum()),
                         "loss_per_hop": float(-sub["diff"].mean()), "loss_per_hop_low": float(low),
                         "loss_per_hop_high": float(high), "distance": float(sub.distance.mean()),
                         "r2_drop": float((sub.r2_direct - sub.r2_composed).mean())})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
