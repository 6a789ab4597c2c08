"""Which cheap index predicts mapped accuracy, and how few fit samples a map needs (n95). From tables alone.

:func:`predicts`: across the ordered pairs (A, B) of an experiment's networks
that are not controls, the Spearman rank correlation of every similarity index
of ``tables/similarity.csv`` (a symmetric index's value of {A, B} stands for
both orders) and of each map's own fit R2 (``fit_r2`` of ``tables/closed_set.csv``)
with the mapped accuracy and with ``pct_change`` of every fitted method.

Its interval resamples **networks**, not pairs (pairs share networks, so they
are not independent): each resample draws N networks with replacement (seeded
by ``intervals.seed``; the draws depend only on the seed and N, so every
predictor, method and outcome is measured on the same resamples), and the
correlation is recomputed on the ordered pairs among the drawn networks. A
network drawn c_A times makes pair (A, B) count c_A c_B times (the pairs of the
resampled networks, as if the copies were distinct networks); a network is
never paired with its own copy. Spearman on counted pairs is the Pearson
correlation of weighted mid-ranks (the same as repeating each pair c_A c_B
times). A resample with no pair, or whose predictor or outcome is constant on
its pairs, has no correlation and is left out; ``resamples_defined`` says how
many were kept, and the interval is empty when fewer than half were.

:func:`n95`: from ``tables/sample_efficiency.csv``, per pair and method the
fewest fit samples whose accuracy reaches ``fraction`` (0.95) of the full map's
accuracy: the ``all`` size's (the whole fit split's map), or without it the
full map's row of ``tables/closed_set.csv``. Empty (NA) where no size reaches it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..fit.methods import METHODS

FIT_R2 = "fit_r2"
OUTCOMES = ("accuracy", "pct_change")
COLUMNS = ["predictor", "method", "outcome", "spearman", "spearman_low", "spearman_high", "pairs", "networks",
           "symmetric", "higher_is_similar", "resamples_defined"]
PAIR_COLUMNS = ["source", "target", "method", "predictor", "value", "accuracy", "pct_change"]
N95_COLUMNS = ["source", "target", "method", "n95", "reached", "accuracy_at_n95", "full_accuracy", "full", "threshold",
               "largest_n_fit", "largest_accuracy", "sizes", "control"]


def pair_values(closed: pd.DataFrame, similarity: pd.DataFrame | None = None, controls=()) -> pd.DataFrame:
    """The long table (:data:`PAIR_COLUMNS`) every correlation reads: one row per ordered pair without a control,
    fitted method and predictor (each index of ``similarity``, then ``fit_r2``), beside the pair's outcomes."""
    fitted = [m for m in METHODS if m in set(closed.method)]
    out = closed[closed.method.isin(fitted) & ~closed.source.isin(controls) & ~closed.target.isin(controls)]
    out = out[["source", "target", "method", "accuracy", "pct_change", "fit_r2"]]
    parts = []
    if similarity is not None and len(similarity):
        s = similarity[["source", "target", "index", "value"]]
        mirrored = s.rename(columns={"source": "target", "target": "source"})
        have = set(zip(s.source, s.target, s["index"]))
        mirrored = mirrored[[(a, b, i) not in have for a, b, i in zip(mirrored.source, mirrored.target,
                                                                           mirrored["index"])]]
        both = pd.concat([s, mirrored], ignore_index=True).rename(columns={"index": "predictor"})
        for index in dict.fromkeys(s["index"]):
            parts.append(out.drop(columns="fit_r2").merge(both[both.predictor == index], on=["source", "target"]))
    parts.append(out.rename(columns={"fit_r2": "value"}).assign(predictor=FIT_R2))
    return pd.concat(parts, ignore_index=True)[PAIR_COLUMNS]


def weighted_ranks(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mid-ranks of ``v`` when each value counts ``w`` times (as :func:`scipy.stats.rankdata` of the repeats)."""
    uniq, inv = np.unique(v, return_inverse=True)
    per = np.bincount(inv, weights=w, minlength=len(uniq))
    before = np.concatenate([[0.0], np.cumsum(per)[:-1]])
    return (before + (per + 1.0) / 2.0)[inv]


def weighted_spearman(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """Spearman's rho of ``x`` and ``y`` with integer counts ``w`` (default 1): NaN for fewer than two counted
    pairs or a constant side."""
    w = np.ones(len(x)) if w is None else np.asarray(w, dtype=np.float64)
    keep = w > 0
    x, y, w = np.asarray(x, float)[keep], np.asarray(y, float)[keep], w[keep]
    if w.sum() < 2:
        return float("nan")
    rx, ry = weighted_ranks(x, w), weighted_ranks(y, w)
    mx, my = np.average(rx, weights=w), np.average(ry, weights=w)
    sxy = np.sum(w * (rx - mx) * (ry - my))
    sxx, syy = np.sum(w * (rx - mx) ** 2), np.sum(w * (ry - my) ** 2)
    return float(sxy / np.sqrt(sxx * syy)) if sxx > 0 and syy > 0 else float("nan")


def network_draws(n_networks: int, resamples: int, seed: int) -> np.ndarray:
    """Counts [resamples, networks]: how often each network is drawn in each resample (a function of the seed and
    the number of networks only)."""
    rng = np.random.default_rng([int(seed), int(n_networks)])
    draws = rng.integers(0, n_networks, size=(int(resamples), int(n_networks)))
    return np.stack([np.bincount(d, minlength=n_networks) for d in draws]).astype(np.float64)


def predicts(pairs: pd.DataFrame, networks: list[str], intervals: dict | None = None,
             symmetric: dict | None = None, higher: dict | None = None) -> pd.DataFrame:
    """Spearman of every predictor with every outcome per method (:data:`COLUMNS`), from :func:`pair_values`, with
    intervals from resampling ``networks`` (those without a control, in the table's order; module docstring).
    ``symmetric`` and ``higher`` {predictor: bool} fill the columns of those names (empty where not given)."""
    from .. import config

    o = config.defaults("intervals", intervals or {})
    level = float(o["level"])
    counts = network_draws(len(networks), int(o["resamples"]), int(o["seed"]))
    at = {k: i for i, k in enumerate(networks)}
    rows = []
    for (predictor, method), t in pairs.groupby(["predictor", "method"], sort=False):
        for outcome in OUTCOMES:
            sub = t[np.isfinite(t.value.to_numpy(float)) & np.isfinite(t[outcome].to_numpy(float))]
            x, y = sub.value.to_numpy(float), sub[outcome].to_numpy(float)
            ia = np.array([at[a] for a in sub.source], dtype=int)
            ib = np.array([at[b] for b in sub.target], dtype=int)
            rho = weighted_spearman(x, y)
            boot = np.array([weighted_spearman(x, y, c[ia] * c[ib]) for c in counts]) if len(sub) else np.array([])
            ok = np.isfinite(boot)
            low = high = np.nan
            if ok.sum() > len(boot) / 2:
                low, high = np.quantile(boot[ok], [(1 - level) / 2, (1 + level) / 2])
            rows.append({"predictor": predictor, "method": method, "outcome": outcome, "spearman": rho,
                         "spearman_low": float(low), "spearman_high": float(high), "pairs": len(sub),
                         "networks": len(set(sub.source) | set(sub.target)),
                         "symmetric": (symmetric or {}).get(predictor, pd.NA),
                         "higher_is_similar": (higher or {}).get(predictor, pd.NA),
                         "resamples_defined": int(ok.sum())})
    return pd.DataFrame(rows, columns=COLUMNS)


def index_traits(names) -> tuple[dict, dict]:
    """``symmetric`` and ``higher_is_similar`` of each predictor: the index registry's, ``fit_r2`` per ordered pair
    and higher-is-better."""
    from .indices import INDICES

    sym = {n: INDICES[n].symmetric for n in names if n in INDICES}
    hi = {n: INDICES[n].higher_is_similar for n in names if n in INDICES}
    sym[FIT_R2], hi[FIT_R2] = False, True
    return sym, hi


def n95(efficiency: pd.DataFrame, closed: pd.DataFrame | None = None, whole: bool = True,
        fraction: float = 0.95, controls=()) -> pd.DataFrame:
    """Per pair and fitted method of a sample-efficiency table, the fewest fit samples whose accuracy reaches
    ``fraction`` of the full map's (:data:`N95_COLUMNS`). The full map is the curve's largest ``n_fit`` when
    ``whole`` (the sizes list ``all``: the whole fit split's map, the largest), else the pair's row of ``closed`` (``closed_set.csv``);
    ``full`` says which (``all`` or ``closed_set``). ``n95`` is the first size on the curve at or above the
    threshold (a later dip below it does not undo it), NA where none is."""
    t = efficiency[efficiency.method != "native"].dropna(subset=["n_fit"])
    ref = {} if closed is None else {(r.source, r.target, r.method): float(r.accuracy) for r in closed.itertuples()}
    rows = []
    for (a, b, m), curve in t.groupby(["source", "target", "method"], sort=False):
        curve = curve.sort_values("n_fit")
        n_fit, acc = curve.n_fit.to_numpy(int), curve.accuracy.to_numpy(float)
        if whole:
            full, which = float(acc[-1]), "all"
        elif (a, b, m) in ref:
            full, which = ref[(a, b, m)], "closed_set"
        else:
            full, which = float(acc[-1]), "largest"
        threshold = fraction * full
        hit = np.flatnonzero(acc >= threshold - 1e-12)
        rows.append({"source": a, "target": b, "method": m,
                     "n95": int(n_fit[hit[0]]) if len(hit) else pd.NA, "reached": bool(len(hit)),
                     "accuracy_at_n95": float(acc[hit[0]]) if len(hit) else np.nan, "full_accuracy": full,
                     "full": which, "threshold": threshold, "largest_n_fit": int(n_fit[-1]),
                     "largest_accuracy": float(acc[-1]), "sizes": ";".join(str(v) for v in n_fit),
                     "control": bool(a in controls or b in controls)})
    out = pd.DataFrame(rows, columns=N95_COLUMNS)
    out["n95"] = out["n95"].astype("Int64")
    return out
