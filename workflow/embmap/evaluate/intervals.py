"""Intervals on the evaluations' rates: a seeded, paired bootstrap over evaluation samples, and exact McNemar tests.

Every rate embmap reports (closed-set accuracy and agreement, verification
accuracy, identification rank-r rates) is a mean, over evaluation samples, of a
per-sample value (1 if the sample is classified / verified / identified
correctly, else 0). An interval is computed from those per-sample vectors, so
its cost is independent of the feature dimensions:

- **What is resampled**: the evaluation samples, with replacement, ``resamples``
  times (multinomial counts, :meth:`Bootstrap.weights`); within each stratum
  when strata are given (the LFW folds: each fold keeps its number of pairs, and
  its threshold, chosen on the other folds, stays as it was). The maps and the
  thresholds are *not* refitted: the interval is the uncertainty of the
  measurement on a finite evaluation set, given the fitted maps.
- **Paired**: the counts depend only on ``(seed, n, strata)``, so every method,
  pair and network of a table (and every fit size of a sample-efficiency curve)
  is measured on the same resamples, and a difference of two rates is
  resampled as a difference (:meth:`Bootstrap.interval` of a difference column).
- **Exact sums**: the per-sample values are correctness (0 or 1) and the counts integers, so
  every resampled sum is an exact integer in float64 whatever BLAS's threads; the intervals are
  bit-identical across runs and thread counts.
- **Percentile interval** at ``level`` (default 95%): the ``(1 - level) / 2`` and
  ``(1 + level) / 2`` quantiles of the resampled statistic (linear interpolation,
  numpy's default). A rate of exactly 0 or 1 on the evaluation set gives the
  zero-width interval [0, 0] or [1, 1]; read it with ``n``.

:func:`mcnemar` is the exact (binomial) McNemar test of two classifiers'
correctness on the same samples: a paired test that a mapped network is as
accurate as the network it is compared with.

Memory: per-sample vectors of every row ([rows, n] float64, kept by the caller)
and one chunk of ``CHUNK`` resamples' counts ([CHUNK, n]) at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 50  # resamples whose counts are drawn and used at once (fixed: the draws do not depend on it)


@dataclass(frozen=True)
class Bootstrap:
    """Paired bootstrap resamples of ``n`` evaluation samples.

    Parameters
    ----------
    n : int
        Samples per resample.
    resamples : int
        How many resamples (``intervals.resamples``).
    seed : int
        The draws are a function of ``seed``, ``n`` and ``strata`` only.
    level : float
        Coverage of :meth:`interval` (``intervals.level``), in (0, 1).
    strata : int array [n], optional
        Resample within each stratum (every stratum keeps its size).
    """

    n: int
    resamples: int
    seed: int
    level: float = 0.95
    strata: np.ndarray | None = None

    def __post_init__(self):
        if self.n < 1:
            raise ValueError("a bootstrap needs at least one evaluation sample")
        if self.resamples < 1:
            raise ValueError(f"intervals.resamples: {self.resamples}; at least 1")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"intervals.level: {self.level}; a coverage between 0 and 1")
        if self.strata is not None and np.shape(self.strata) != (self.n,):
            raise ValueError(f"strata of shape {np.shape(self.strata)} for {self.n} samples")

    def weights(self):
        """Yield the resamples' counts in chunks: float64 [c, n], row r counting how often each sample is drawn.

        Chunk j comes from its own generator ``default_rng([seed, j])``, so the
        counts of resample r are the same however they are consumed.
        """
        groups = ([np.arange(self.n)] if self.strata is None
                  else [np.flatnonzero(self.strata == s) for s in np.unique(self.strata)])
        for j, start in enumerate(range(0, self.resamples, CHUNK)):
            c = min(CHUNK, self.resamples - start)
            rng = np.random.default_rng([self.seed, j])
            w = np.zeros((CHUNK, self.n))  # a whole chunk always: the last one's first rows are as if it were whole
            for g in groups:
                w[:, g] = rng.multinomial(len(g), np.full(len(g), 1.0 / len(g)), size=CHUNK)
            yield w[:c]

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Resampled sums of per-sample ``values`` [rows, n] (or [n]): float64 [resamples, rows] (or [resamples])."""
        v = np.asarray(values, dtype=np.float64)
        flat = v.reshape(-1, self.n) if v.ndim > 1 else v[None]
        if flat.shape[1] != self.n:
            raise ValueError(f"per-sample values of {flat.shape[1]} samples for a bootstrap of {self.n}")
        out = np.concatenate([w @ flat.T for w in self.weights()], axis=0)
        return out if v.ndim > 1 else out[:, 0]

    def means(self, values: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """Resampled means of per-sample ``values`` [rows, n]: [resamples, rows].

        ``where`` (bool [n]) restricts the mean to those samples (a ratio of
        resampled sums: labelled samples only, say); without strata the mean
        is over all n samples; with strata it is the mean of the strata's means
        (the folds' mean accuracy).
        """
        v = np.asarray(values, dtype=np.float64)
        v2 = v.reshape(-1, self.n) if v.ndim > 1 else v[None]
        if self.strata is not None:
            if where is not None:
                raise ValueError("a stratified mean restricted to some samples is not supported")
            strata, size = np.unique(self.strata, return_counts=True)
            # each stratum's sum first (exact for integer values), then the mean of the strata's means in order
            parts = [np.concatenate([w[:, self.strata == st] @ v2[:, self.strata == st].T for w in self.weights()])
                     for st in strata]
            out = sum(part / (n_s * len(strata)) for part, n_s in zip(parts, size))
        elif where is None:
            out = self.sums(v2) / self.n
        else:
            m = np.asarray(where, dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                out = self.sums(v2 * m) / self.sums(m)[:, None]
        return out if v.ndim > 1 else out[:, 0]

    def point(self, values: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """The statistic :meth:`means` resamples, on the evaluation samples as they are: [rows] (or a float)."""
        v = np.asarray(values, dtype=np.float64)
        v2 = v.reshape(-1, self.n) if v.ndim > 1 else v[None]
        if self.strata is not None:
            strata, idx, size = np.unique(self.strata, return_inverse=True, return_counts=True)
            out = (v2 / (size[idx] * len(strata))).sum(axis=1)
        elif where is None:
            out = v2.mean(axis=1)
        else:
            m = np.asarray(where, dtype=bool)
            out = v2[:, m].sum(axis=1) / max(int(m.sum()), 1) if m.any() else np.full(len(v2), np.nan)
        return out if v.ndim > 1 else float(out[0])

    def interval(self, resampled: np.ndarray, undefined_ok: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The percentile interval (low, high) of resampled statistics [resamples, ...] at :attr:`level`.

        NaN where a resample's statistic is NaN, unless ``undefined_ok``: then the resamples where it is
        undefined are left out (a relative change in a resample whose baseline rate is 0), and the interval
        is NaN only where more than half of them are.
        """
        r = np.asarray(resampled, dtype=np.float64)
        q = [(1.0 - self.level) / 2.0, (1.0 + self.level) / 2.0]
        bad = np.isnan(r)
        if undefined_ok:
            with np.errstate(invalid="ignore"):
                low, high = np.nanquantile(np.where(bad.all(axis=0), 0.0, r), q, axis=0)
            bad = bad.mean(axis=0) > 0.5
        else:
            low, high = np.quantile(r, q, axis=0)
            bad = bad.any(axis=0)
        return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def mcnemar(correct_x: np.ndarray, correct_y: np.ndarray) -> float:
    """Exact two-sided McNemar p-value of two classifiers' per-sample correctness (bool [n] each).

    Only the discordant samples count: ``b`` where x is right and y wrong,
    ``c`` the reverse; under the null both are equally likely, so
    ``p = min(1, 2 P(Binomial(b + c, 1/2) <= min(b, c)))`` (1 without discordant samples).
    """
    from scipy.stats import binom

    x, y = np.asarray(correct_x, dtype=bool), np.asarray(correct_y, dtype=bool)
    if x.shape != y.shape:
        raise ValueError(f"correctness vectors of {x.shape} and {y.shape} samples")
    b, c = int(np.sum(x & ~y)), int(np.sum(~x & y))
    if b + c == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(b, c), b + c, 0.5)))


COMPARED = ["accuracy_low", "accuracy_high", "pct_change_low", "pct_change_high", "diff_target", "diff_target_low",
            "diff_target_high", "p_target", "p_source"]


def compared(keys: list, right: dict, boot: Bootstrap, where: np.ndarray | None = None,
             prefix: str = "accuracy") -> "pd.DataFrame":
    """The interval and the paired comparisons of every row of a table of rates, in the order of ``keys``.

    ``keys`` are the rows' (source, target, method), with a ``native`` row (a, a, native) for every network;
    ``right[key]`` is the row's per-sample correctness (bool [n]; ``where`` the samples that count). Columns
    (:data:`COMPARED`, with ``accuracy`` replaced by ``prefix``): the rate's interval; ``pct_change`` as the
    paper's Table 2 (``100 (rate - source's native) / source's native``) resampled with the source's (resamples
    where the source's rate is 0 have none and are left out); and for rows
    with a map (not native) ``diff_target`` = rate - the target's native rate with its interval, and exact
    McNemar p-values against the target's (``p_target``) and the source's (``p_source``) native correctness.
    """
    import pandas as pd

    from .common import NATIVE

    index = {k: i for i, k in enumerate(keys)}
    native = {a: index[(a, a, NATIVE)] for a, _, m in keys if m == NATIVE}
    values = np.stack([right[k] for k in keys])
    rate, point = boot.means(values, where), boot.point(values, where)
    src, tgt = [native[a] for a, _, _ in keys], [native[b] for _, b, _ in keys]
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(rate[:, src] > 0, 100.0 * (rate - rate[:, src]) / rate[:, src], np.nan)
    mapped = np.array([m != NATIVE for _, _, m in keys])
    low, high = boot.interval(rate - rate[:, tgt])
    used = slice(None) if where is None else np.asarray(where, dtype=bool)
    out = {}
    out[f"{prefix}_low"], out[f"{prefix}_high"] = boot.interval(rate)
    out["pct_change_low"], out["pct_change_high"] = boot.interval(pct, undefined_ok=True)
    out["diff_target"] = np.where(mapped, point - point[tgt], np.nan)
    out["diff_target_low"], out["diff_target_high"] = np.where(mapped, low, np.nan), np.where(mapped, high, np.nan)
    for column, ends in (("p_target", tgt), ("p_source", src)):
        out[column] = [mcnemar(values[i][used] > 0, values[j][used] > 0) if m else np.nan
                       for i, (j, m) in enumerate(zip(ends, mapped))]
    return pd.DataFrame(out)


def bootstrap_of(options: dict | None, n: int, strata: np.ndarray | None = None) -> Bootstrap:
    """The :class:`Bootstrap` of an experiment's ``intervals`` block (the schema's defaults filled in)."""
    from .. import config

    o = config.defaults("intervals", options or {})
    return Bootstrap(n=n, resamples=int(o["resamples"]), seed=int(o["seed"]), level=float(o["level"]),
                     strata=strata)
