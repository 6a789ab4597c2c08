"""Sample-efficiency curves: maps fitted on the first n samples of the fit split, measured like the full maps.

For each n of ``mapping.sample_sizes`` the blocks of the first n rows of the
fit split (nested prefixes) give every method's maps for every ordered pair,
exactly as the whole split's blocks give the full maps (ridge with the
penalty of the pair's full map: ``mapping.alpha``, or the one its
cross-validation chose; one linear solve per source and penalty,
:func:`embmap.fit.ridge.fit_maps`). Each size is then measured on the evaluation split
by :func:`embmap.evaluate.closed_set.evaluate` (one pass over the evaluation
stores per size; ``all`` is the full maps).

The prefix blocks come from the pass (``Blocks.subsets``: each shard keeps
the blocks of its rows below n, the reduce pools them, :mod:`embmap.fit.gram`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stores as st
from ..fit import FitError, gram
from ..fit import methods as mt
from ..fit.ridge import LinearMap
from ..fit.ridge import fit_maps as ridge_maps
from . import closed_set
from .common import NATIVE

COLUMNS = ["source", "target", "method", "n_fit", "accuracy", "r2", "fit_r2", "alpha", "source_accuracy",
           "target_accuracy", "n"]


def check_sizes(sizes, n: int, where: str = "mapping.sample_sizes") -> None:
    """Every size below the split's ``n`` samples (``all`` is the split itself)."""
    bad = [m for m in sizes if m != "all" and int(m) >= n]
    if bad:
        raise FitError(f"{where}: {bad[0]} is not below the fit split's {n} samples; give smaller sizes or all")


def prefix_blocks(blocks: gram.Blocks, sizes: list[int]) -> dict[int, gram.Blocks]:
    """The pass's blocks of the first n fit samples for each n (``Blocks.subsets``)."""
    have = dict(blocks.subsets or {})
    missing = [m for m in sizes if m not in have]
    if missing:
        raise FitError(f"mapping.sample_sizes: the block store holds no blocks of the first {missing} samples "
                       f"(it has {sorted(have) or 'none'}); the pass keeps them when the sizes are configured, so "
                       "re-run the pass (delete fit/blocks.zarr)")
    return {m: have[m] for m in sizes}


def fit_all(blocks: gram.Blocks, method: str, alphas: dict, scale: str) -> dict[tuple[str, str], LinearMap]:
    """Every ordered pair's map of ``method`` from ``blocks`` (ridge: the pair's penalty in ``alphas``)."""
    if method != mt.RIDGE:
        return dict(mt.fit_pairs(blocks, list(blocks.names), method, scale=scale))
    out = {}
    for a in blocks.names:
        targets = [b for b in blocks.names if b != a]
        for alpha in sorted({alphas[(a, b)] for b in targets}):
            group = [b for b in targets if alphas[(a, b)] == alpha]
            for b, m in ridge_maps(blocks, a, group, alpha).items():
                out[(a, b)] = m
    return out


def sample_efficiency(eval_stores: dict, full_maps: dict[str, dict], subsets: dict[int, gram.Blocks],
                      n_whole: int | None, methods: list[str], scale: str = "none", log=None) -> pd.DataFrame:
    """The table of :data:`COLUMNS`: one row per (source, target, method, n_fit) and native rows (n_fit empty).

    ``full_maps`` holds each method's maps on the whole split ({method: {(a, b): map}}); ridge's give the
    penalty of every pair. ``n_whole`` adds the whole split's own rows (``all``), None leaves them out.
    """
    alphas = {pair: float(m.attrs["alpha"]) for pair, m in full_maps[mt.RIDGE].items()}
    runs = [(m, {method: fit_all(bl, method, alphas, scale) for method in methods}) for m, bl in subsets.items()]
    if n_whole is not None:
        runs.append((n_whole, full_maps))
    rows, native = [], None
    for n_fit, maps in runs:
        if log:
            log(f"measuring the maps fitted on {n_fit} samples")
        t = closed_set.evaluate(eval_stores, maps[mt.RIDGE], more={k: v for k, v in maps.items() if k != mt.RIDGE},
                                controls=False)
        if native is None:
            native = t[t.method == NATIVE]
        for r in t[t.method != NATIVE].itertuples():
            m = maps[r.method][(r.source, r.target)]
            rows.append({"source": r.source, "target": r.target, "method": r.method, "n_fit": n_fit,
                         "accuracy": r.accuracy, "r2": r.r2, "fit_r2": m.attrs.get("fit_r2", np.nan),
                         "alpha": m.attrs.get("alpha", np.nan), "source_accuracy": r.source_accuracy,
                         "target_accuracy": r.target_accuracy, "n": r.n})
    for r in native.itertuples():
        rows.append({"source": r.source, "target": r.target, "method": NATIVE, "n_fit": np.nan,
                     "accuracy": r.accuracy, "r2": r.r2, "fit_r2": np.nan, "alpha": np.nan,
                     "source_accuracy": r.source_accuracy, "target_accuracy": r.target_accuracy, "n": r.n})
    return pd.DataFrame(rows, columns=COLUMNS)
