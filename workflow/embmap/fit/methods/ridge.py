"""``ridge``: the paper's eq. 5, ``W = (S_AA + alpha I)^-1 S_AB`` (alpha fixed or chosen by cross-validation).

The numerics (one factorisation of ``S_AA`` per source shared by every target
and penalty, K-fold cross-validation from the per-fold blocks, the held-out
error of every penalty from shared terms) are :mod:`embmap.fit.ridge`; this
module declares the method: which ``mapping`` keys it reads (``alpha``, and
``folds`` through the pass), how it fits per fold of the pairs protocols
(inner cross-validation when ``alpha`` is a list) and on the sample-size
prefixes (each pair keeps the penalty its whole-split map has).
"""

from __future__ import annotations

from . import SOURCE_JOBS, Method


def alphas_of(alpha) -> list[float]:
    """The candidate penalties of a ``mapping.alpha`` value (a number or a list): the one reading of it
    (the plan, the fits and the tables ask this); more than one means cross-validation."""
    import math

    from .. import FitError

    many = isinstance(alpha, (list, tuple)) or getattr(alpha, "ndim", 0) > 0
    values = [float(a) for a in (alpha if many else [alpha])]
    if not values or any(not math.isfinite(a) or a < 0 for a in values):
        raise FitError(f"alpha {alpha!r}: give a number >= 0 or a non-empty list of them")
    return values


def from_blocks(blocks, source: str, targets: list[str], options: dict) -> dict:
    from .. import ridge

    return ridge.fit_maps(blocks, source, targets, options["alpha"])


def _by_penalty(names: list[str], full: dict, fit) -> dict:
    """Each pair of ``full`` (whole-split maps {(source, target): LinearMap}, sources and targets among ``names``)
    again with its map's penalty: ``fit(groups)`` of the ``(source, targets, alpha)`` of every source and distinct
    penalty, one {target: LinearMap} per group. ``full`` holds every ordered pair of the networks, or (layer by
    layer) every node into every other network's embedding."""
    alphas = {pair: float(m.attrs["alpha"]) for pair, m in full.items()}
    groups = []
    for a in names:
        targets = [b for b in names if (a, b) in alphas]
        for alpha in sorted({alphas[(a, b)] for b in targets}):
            groups.append((a, [b for b in targets if alphas[(a, b)] == alpha], alpha))
    return {(a, b): m for (a, _, _), got in zip(groups, fit(groups)) for b, m in got.items()}


def like(blocks, names: list[str], options: dict, full: dict) -> dict:
    """Each pair's map with the penalty of its whole-split map (one solve per source and distinct penalty, all
    in one Dask graph: :func:`embmap.fit.ridge.fit_many`)."""
    from .. import ridge

    return _by_penalty(names, full, lambda groups: ridge.fit_many(blocks, groups))


def like_samples(rows: dict, names: list[str], options: dict, full: dict) -> dict:
    """:func:`like` from the samples (fewer than the features): each pair keeps its whole-split map's penalty,
    one Cholesky of the m x m Gram per source and distinct penalty (:func:`embmap.fit.ridge.fit_maps_dual`).
    The centred samples' Gram is singular, so a penalty at or below the blocks' own threshold for an
    eigenbasis solve (``1e-12`` of the trace) has no sample-space route: None (the blocks' route then runs)."""
    import numpy as np

    from ...engine import side_by_side
    from .. import ridge

    trace = {a: max(float(np.sum((rows[a] - rows[a].mean(axis=0)) ** 2)), 1.0) for a in names}
    if any(float(m.attrs["alpha"]) <= 1e-12 * trace[a] for (a, _), m in full.items()):
        return None
    # sources side by side, each on one BLAS thread: the same maps on any number of threads
    return _by_penalty(names, full,
                       lambda groups: list(side_by_side(lambda g: ridge.fit_maps_dual(rows, *g), groups)))


def select(source_folds, options: dict, run) -> dict | None:
    """With a list of penalties, the penalty of every outer fold and target by inner cross-validation."""
    from .. import folds

    alphas = alphas_of(options["alpha"])
    return folds.inner_cv(source_folds, alphas, run) if len(alphas) > 1 else None


def from_part(t, slices: dict, source: str, options: dict, chosen: dict | None):
    """One factorisation per distinct penalty for the targets that share it (all of them with one alpha)."""
    import numpy as np

    from .. import ridge

    targets = list(slices)
    per_target = chosen or dict.fromkeys(targets, alphas_of(options["alpha"])[0])
    d_a = t.saa.shape[0]
    w = np.empty_like(t.sab)
    for value in sorted(set(per_target.values())):
        chosen_b = [b for b in targets if per_target[b] == value]
        cols = (slice(None) if len(chosen_b) == len(targets) else  # no scatter of columns
                np.concatenate([np.arange(slices[b].start, slices[b].stop) for b in chosen_b]))
        if value > 0:  # S + alpha I is positive definite: one solve serves these targets
            w[:, cols] = np.linalg.solve(t.saa + value * np.eye(d_a), t.sab[:, cols])
        else:
            ev, v = np.linalg.eigh(t.saa)
            w[:, cols] = v @ ridge._solve_eig(ev, v.T @ t.sab[:, cols], value)
    return w, {b: float(per_target[b]) for b in targets}


def describe(m) -> str:
    curve = ""
    if "cv_score" in m.attrs:
        curve = ", CV " + " ".join(f"{a:g}:{s if s is None else round(s, 5)}"
                                   for a, s in zip(m.attrs["alphas"], m.attrs["cv_score"]))
    return f"alpha {m.attrs['alpha']:g}{curve}"


METHOD = Method(
    name="ridge",
    summary="ridge regression with an unpenalised intercept (eq. 5); alpha fixed or chosen by cross-validation",
    options=("alpha", "folds"),
    jobs=SOURCE_JOBS,
    from_blocks=from_blocks,
    from_part=from_part,
    like=like,
    like_samples=like_samples,
    select=select,
    describe=describe,
)
