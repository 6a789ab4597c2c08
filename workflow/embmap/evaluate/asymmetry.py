"""Asymmetry: for every unordered pair {A, B} and map method, A -> B against B -> A, and the order it implies.

A map A -> B that keeps nearly all of B's accuracy says B's information is
(linearly) in A's features; if B -> A keeps less of A's, A's features contain
B's and not the reverse (the follow-up to the paper found this of Inception and
ResNet). Both directions are measured in one pass over the evaluation split,
through the target's classifier as in :mod:`.closed_set`:

- ``relative_ab`` = accuracy(A -> B) / accuracy(B native): the share of B's own
  accuracy that A's mapped features keep; ``relative_ba`` likewise for B -> A;
- ``relative_diff`` = ``relative_ab - relative_ba``, with a paired bootstrap
  interval (:mod:`.intervals`): every resample draws the same evaluation
  images for the four rates (both directions and both natives), so the
  difference is resampled as a difference;
- ``order``: ``a_contains_b`` when the interval lies above 0 (A -> B keeps more
  of B's accuracy than B -> A keeps of A's: A's features contain B's),
  ``b_contains_a`` when it lies below 0, else ``undecided``.

Table columns (:data:`COLUMNS`, one row per unordered pair, ``a`` before ``b``
in the networks' order, and fitted method): ``fit_r2_*`` are the maps' own
fit-split R2 (their stores' ``fit_r2``); ``r2_*`` the variance of the target's
features explained on the evaluation split (pooled over features, as
``closed_set.csv``'s ``r2``); ``accuracy_*`` with their intervals equal the
rows of ``closed_set.csv`` (the same resamples). A target at chance makes its
relative accuracy a ratio of two small numbers: read a control's pairs with
that in mind.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stores as st
from ..fit.linear import LinearMap
from .closed_set import Spread, feature_chunks, predict, r2, setup
from .common import NATIVE

COLUMNS = ["a", "b", "method", "fit_r2_ab", "fit_r2_ba", "r2_ab", "r2_ba", "accuracy_ab", "accuracy_ab_low",
           "accuracy_ab_high", "accuracy_ba", "accuracy_ba_low", "accuracy_ba_high", "accuracy_a", "accuracy_b",
           "relative_ab", "relative_ba", "relative_diff", "relative_diff_low", "relative_diff_high", "order", "n"]
A_CONTAINS_B, B_CONTAINS_A, UNDECIDED = "a_contains_b", "b_contains_a", "undecided"


def decide(low: float, high: float) -> str:
    """The order a paired interval of ``relative_ab - relative_ba`` implies (NaN ends: undecided)."""
    if low > 0:
        return A_CONTAINS_B
    if high < 0:
        return B_CONTAINS_A
    return UNDECIDED


def asymmetry(stores: dict[str, st.EmbeddingStore], maps: dict[str, dict[tuple[str, str], LinearMap]],
              block_rows: int = 4096, intervals: dict | None = None) -> pd.DataFrame:
    """Both directions of every unordered pair and method, in one pass over the evaluation ``stores``.

    ``stores`` and ``maps`` as :func:`embmap.evaluate.closed_set.evaluate` takes them (matched evaluation stores with
    classifiers; {method: {(source, target): map}} of every ordered pair); ``intervals``: the experiment's
    ``intervals`` block. Returns a DataFrame of :data:`COLUMNS`. Memory: the features of ``block_rows`` samples and
    one correctness vector (n bytes) per ordered pair and method.
    """
    from .intervals import bootstrap_of

    e = setup(stores, maps)
    names, labels, known, maps = e.names, e.labels, e.known, e.maps
    keys = [(a, a, NATIVE) for a in names] + [(a, b, m) for m in maps for a in names for b in names if a != b]
    right = {k: [] for k in keys}
    sse = dict.fromkeys(keys, 0.0)
    spread = {b: Spread(stores[b].dim) for b in names}
    for start, stop, feats in feature_chunks(stores, block_rows):
        y, mask = labels[start:stop], known[start:stop]
        for b in names:
            spread[b].add(feats[b])
        for a, b, m in keys:
            mapped = feats[a] if m == NATIVE else maps[m][(a, b)](feats[a])
            right[(a, b, m)].append((predict(mapped, e.cls[b], e.offset[b]) == y) & mask)
            if m != NATIVE:
                sse[(a, b, m)] += float(np.sum((mapped - feats[b]) ** 2))
    n = len(labels)
    boot = bootstrap_of(intervals, n)
    values = np.stack([np.concatenate(right[k]) for k in keys])
    rate, point = boot.means(values, known), boot.point(values, known)
    low, high = boot.interval(rate)
    at = {k: i for i, k in enumerate(keys)}

    rows = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for m in maps:
            for i, a in enumerate(names):
                for b in names[i + 1:]:
                    ab, ba, na, nb = at[(a, b, m)], at[(b, a, m)], at[(a, a, NATIVE)], at[(b, b, NATIVE)]
                    rel_ab, rel_ba = point[ab] / point[nb], point[ba] / point[na]
                    diff = rate[:, ab] / rate[:, nb] - rate[:, ba] / rate[:, na]
                    d_low, d_high = boot.interval(diff, undefined_ok=True)
                    rows.append({
                        "a": a, "b": b, "method": m,
                        "fit_r2_ab": float(maps[m][(a, b)].attrs.get("fit_r2", np.nan)),
                        "fit_r2_ba": float(maps[m][(b, a)].attrs.get("fit_r2", np.nan)),
                        "r2_ab": r2(sse[(a, b, m)], spread[b].total),
                        "r2_ba": r2(sse[(b, a, m)], spread[a].total),
                        "accuracy_ab": point[ab], "accuracy_ab_low": low[ab], "accuracy_ab_high": high[ab],
                        "accuracy_ba": point[ba], "accuracy_ba_low": low[ba], "accuracy_ba_high": high[ba],
                        "accuracy_a": point[na], "accuracy_b": point[nb],
                        "relative_ab": rel_ab, "relative_ba": rel_ba, "relative_diff": rel_ab - rel_ba,
                        "relative_diff_low": float(d_low), "relative_diff_high": float(d_high),
                        "order": decide(float(d_low), float(d_high)), "n": int(known.sum()),
                    })
    return pd.DataFrame(rows, columns=COLUMNS)


def readings(table: pd.DataFrame, labels: dict[str, str] | None = None) -> list[str]:
    """One sentence per decided row of an asymmetry table: "METHOD: A's features contain B's (...)"."""
    labels = labels or {}
    out = []
    for r in table.itertuples():
        if r.order == UNDECIDED:
            continue
        big, small = (r.a, r.b) if r.order == A_CONTAINS_B else (r.b, r.a)
        out.append(f"{r.method}: {labels.get(big, big)}'s features contain {labels.get(small, small)}'s "
                   f"(relative accuracy {r.relative_ab:.3f} a->b, {r.relative_ba:.3f} b->a; difference "
                   f"{r.relative_diff:+.3f}, interval {r.relative_diff_low:+.3f} to {r.relative_diff_high:+.3f})")
    return out
