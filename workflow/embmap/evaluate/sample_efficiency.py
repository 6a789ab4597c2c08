"""Sample-efficiency curves: maps fitted on the first n samples of the fit split, measured like the full maps.

For each n of ``mapping.sample_sizes`` the blocks of the first n rows of the
fit split (nested prefixes) give every method's maps for every ordered pair,
exactly as the whole split's blocks give the full maps, with the choices the
full maps made (each method's ``fit_like``, :mod:`embmap.fit.methods`: ridge
keeps the penalty of the pair's full map, ``mapping.alpha`` or the one its
cross-validation chose, one linear solve per source and penalty). Each size is then measured on the evaluation split
by :func:`embmap.evaluate.closed_set.evaluate` (one pass over the evaluation
stores per size; ``all`` is the full maps).

The prefix blocks come from the pass (``Blocks.subsets``: each shard keeps
the blocks of its rows below n, the reduce pools them, :mod:`embmap.fit.gram`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..fit import FitError
from ..fit.blocks import Blocks
from ..fit import methods as mt
from . import closed_set
from .common import NATIVE

COLUMNS = ["source", "target", "method", "n_fit", "accuracy", "r2", "fit_r2", "alpha", "source_accuracy",
           "target_accuracy", "n", "accuracy_low", "accuracy_high", "diff_target", "diff_target_low",
           "diff_target_high"]


def check_sizes(sizes, n: int, where: str = "mapping.sample_sizes") -> None:
    """Every size below the split's ``n`` samples (``all`` is the split itself)."""
    bad = [m for m in sizes if m != "all" and int(m) >= n]
    if bad:
        raise FitError(f"{where}: {bad[0]} is not below the fit split's {n} samples; give smaller sizes or all")


def prefix_blocks(blocks: Blocks, sizes: list[int]) -> dict[int, Blocks]:
    """The pass's blocks of the first n fit samples for each n (``Blocks.subsets``)."""
    have = dict(blocks.subsets or {})
    missing = [m for m in sizes if m not in have]
    if missing:
        raise FitError(f"mapping.sample_sizes: the block store holds no blocks of the first {missing} samples "
                       f"(it has {sorted(have) or 'none'}); the pass keeps them when the sizes are configured, so "
                       "re-run the pass (delete fit/blocks.zarr)")
    return {m: have[m] for m in sizes}


def sample_efficiency(eval_stores: dict, full_maps: dict[str, dict], subsets: dict[int, Blocks],
                      n_whole: int | None, mapping: dict | None = None, log=None, first_rows: dict | None = None,
                      intervals: dict | None = None, **keys) -> pd.DataFrame:
    """The table of :data:`COLUMNS`: one row per (source, target, method, n_fit) and native rows (n_fit empty).

    ``full_maps`` holds each method's maps on the whole split ({method: {(a, b): map}}), whose choices the
    prefixes' maps keep (ridge: each pair's penalty); ``mapping`` is the experiment's mapping block (``keys``
    such as ``methods=`` override it). ``n_whole`` adds the whole split's own rows (``all``), None leaves them
    out. ``first_rows`` ({network: float [m_max, d]}, the fit split's first rows) lets a method with a sample-space
    route (:attr:`embmap.fit.methods.Method.like_samples`) fit the prefixes of fewer samples than the widest
    network's features from them (cost ``m^2 d`` instead of ``d^3``; the same maps up to rounding).
    ``intervals`` is the experiment's ``intervals`` block: every size is measured on the same bootstrap
    resamples of the evaluation split (:mod:`embmap.evaluate.intervals`), so curves and sizes are paired.
    """
    import time

    opts = mt.options(mapping, **keys)
    methods = mt.fitted(opts["methods"])
    say = log or (lambda *a: None)

    def fitted_on(m: int, bl: Blocks) -> dict:
        """Every method's maps on the first ``m`` samples, saying how long each method took and by which route."""
        out = {}
        rows = ({k: np.asarray(r[:m], np.float64) for k, r in first_rows.items()}
                if first_rows is not None and m < max(bl.dims) else None)
        for method in methods:
            start = time.perf_counter()
            got = None
            if rows is not None and method.like_samples is not None:
                got = method.like_samples(rows, list(bl.names), opts, full_maps[method.name])
            route = "in the sample space" if got is not None else "from the blocks"
            out[method.name] = got if got is not None else method.fit_like(bl, list(bl.names), opts,
                                                                           full_maps[method.name])
            say(f"{m} fit samples: {method.name} maps of {len(out[method.name])} pairs {route} in "
                f"{time.perf_counter() - start:.1f} s")
        return out

    runs = [(m, (lambda m=m, bl=bl: fitted_on(m, bl))) for m, bl in subsets.items()]
    if n_whole is not None:
        runs.append((n_whole, lambda: full_maps))
    rows, native = [], None
    for k, (n_fit, fit) in enumerate(runs):
        maps = fit()
        start = time.perf_counter()
        t = closed_set.evaluate(eval_stores, maps, controls=False, intervals=intervals)
        say(f"{n_fit} fit samples: measured on the evaluation split in {time.perf_counter() - start:.1f} s "
            f"({k + 1} of {len(runs)} sizes)")
        if native is None:
            native = t[t.method == NATIVE]
        for r in t[t.method != NATIVE].itertuples():
            m = maps[r.method][(r.source, r.target)]
            rows.append({"source": r.source, "target": r.target, "method": r.method, "n_fit": n_fit,
                         "accuracy": r.accuracy, "r2": r.r2, "fit_r2": m.attrs.get("fit_r2", np.nan),
                         "alpha": m.attrs.get("alpha", np.nan), "source_accuracy": r.source_accuracy,
                         "target_accuracy": r.target_accuracy, "n": r.n, **_spread(r)})
    for r in native.itertuples():
        rows.append({"source": r.source, "target": r.target, "method": NATIVE, "n_fit": np.nan,
                     "accuracy": r.accuracy, "r2": r.r2, "fit_r2": np.nan, "alpha": np.nan,
                     "source_accuracy": r.source_accuracy, "target_accuracy": r.target_accuracy, "n": r.n,
                     **_spread(r)})
    return pd.DataFrame(rows, columns=COLUMNS)


def _spread(row) -> dict:
    """The interval columns a sample-efficiency row takes from its closed-set row."""
    return {k: getattr(row, k) for k in COLUMNS[COLUMNS.index("accuracy_low"):]}
