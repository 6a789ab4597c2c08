"""Ridge maps between embedding spaces, fitted from the pass's cross-product blocks alone.

The paper's eq. 5 with an unpenalised intercept, for every ordered pair (A, B)::

    minimise  || X_A M + 1 c - X_B ||_F^2 + alpha ||M||_F^2

With centred data the solution is ``M = (S_AA + alpha I)^-1 S_AB`` and
``c = mean_B - mean_A M`` where ``S_AB = (X_A - mean_A)^T (X_B - mean_B)``
(:class:`embmap.fit.blocks.Blocks`). :func:`fit_maps` factors a source's Gram
once (an inverse from its Cholesky factor for one penalty, ``eigh`` for a list
or zero) and reuses it for every target and penalty; with a list of penalties,
:func:`cross_validate` scores each by K-fold cross-validation from the per-fold
blocks (no second pass over the data). Every fit is a Dask graph
(:func:`fit_graph`) of tasks on one BLAS thread each, run side by side on the
job's threads: the maps are the same to the bit on any number of them.
"""

from __future__ import annotations

import numpy as np
# loaded now, not inside a task: a BLAS library loaded after threadpoolctl set its limit keeps its own thread
# count, and scipy's OpenBLAS (the Cholesky) would then factor on several threads
import scipy.linalg  # noqa: F401

from . import FitError
from .gram import Blocks
from .linear import LinearMap
from .methods.ridge import alphas_of

CV_METRIC = ("1 - sum over folds of held-out squared error / sum over folds of held-out squared deviation "
             "from the fold's own mean (fraction of the target's held-out variance explained)")


def _singular(w: np.ndarray, alpha: float) -> bool:
    return bool(np.any(w + alpha <= 1e-12 * max(float(w.max()), 1.0)))


def _solve_eig(w: np.ndarray, p: np.ndarray, alpha: float) -> np.ndarray:
    """``(diag(w) + alpha I)^-1 p``: the ridge solve in the eigenbasis of ``S_AA`` (``p = V' S_AB``)."""
    if _singular(w, alpha):
        rank = int(np.sum(w > 1e-12 * max(float(w.max()), 1.0)))
        raise FitError(
            f"the source Gram matrix is singular (rank {rank} of {len(w)}) and alpha={alpha}; use alpha > 0"
        )
    return p / (w + alpha)[:, None]


def _fold_terms(blocks: Blocks, source: str, targets: list[str], alphas: list[float], k: int) -> tuple[dict, dict]:
    """Fold ``k``'s held-out RSS of every penalty ({target: [len(alphas)]}) and its held-out TSS ({target: float}):
    one ``eigh`` of the source's training Gram (every fold but k) serves every target and penalty."""
    a, n, mu = source, blocks.n, blocks.means
    f = blocks.folds[k]
    nk = f.n
    nt = n - nk
    if nk == 0 or nt == 0:
        raise FitError(f"fold {k} holds {nk} of {n} samples; cross-validation needs samples in and out of it")
    c = n * nk / nt
    da = mu[a] - f.means[a]
    fk_aa = f.gram(a, a)
    w, v = np.linalg.eigh(blocks.gram(a, a) - fk_aa - c * np.outer(da, da))
    t = v.T @ fk_aa @ v
    u = -(n / nt) * da @ v  # (fold mean - training mean) of the source, in the eigenbasis
    rss, tss = {}, {}
    for b in targets:
        db = mu[b] - f.means[b]
        fk_ab = f.gram(a, b)
        p = v.T @ (blocks.gram(a, b) - fk_ab - c * np.outer(da, db))
        # with q = p / (w + alpha) the coefficients are v @ q; every term below is linear or
        # quadratic in q, so one product p p' (not one per alpha) serves all penalties
        pp = p @ p.T
        tpp = t * pp
        pr = np.einsum("ij,ij->i", p, v.T @ fk_ab)
        dy = -(n / nt) * db
        py = p @ dy
        tss[b] = float(f.sumsq(b).sum())
        rss[b] = held_out_rss(w, alphas, tss[b], pr, tpp, pp, u, py, float(dy @ dy), nk)
    return rss, tss


def _scores(targets: list[str], alphas: list[float], *folds) -> dict[str, np.ndarray]:
    """:data:`CV_METRIC` of every penalty per target from the folds' ``(rss, tss)``, summed in fold order."""
    out = {}
    for b in targets:
        rss, tss = np.zeros(len(alphas)), 0.0
        for f_rss, f_tss in folds:
            rss += f_rss[b]
            tss += f_tss[b]
        out[b] = 1.0 - rss / tss if tss > 0 else np.full(len(alphas), np.nan)
    return out


def _cv_graph(blocks: Blocks, source: str, targets: list[str], alphas: list[float], tag: tuple = ()) -> tuple[dict, tuple]:
    """The tasks of :func:`cross_validate`: one per fold (side by side), and their sum in fold order."""
    if len(blocks.folds) < 2:
        raise FitError("alpha is a list, which is chosen by cross-validation, but the blocks hold no folds; "
                       "re-run the pass with mapping.alpha as a list")
    g = {(*tag, "cv-fold", k): (_fold_terms, blocks, source, targets, alphas, k) for k in range(len(blocks.folds))}
    g[(*tag, "cv-scores")] = (_scores, targets, alphas, *[(*tag, "cv-fold", k) for k in range(len(blocks.folds))])
    return g, (*tag, "cv-scores")


def cross_validate(blocks: Blocks, source: str, targets: list[str], alphas: list[float],
                   get=None) -> dict[str, np.ndarray]:
    """Held-out score of every penalty for every target, K-fold, from the per-fold blocks alone.

    For fold k the training blocks are the whole split's minus fold k's
    (``S_t = S - S_k - n n_k / n_t (m - m_k)(m - m_k)^T``); one ``eigh`` of the
    source's training Gram serves every target and penalty, and the held-out
    squared error of the map fitted on the other folds comes from fold k's
    blocks (no further pass over the data). Returns target -> [len(alphas)]
    scores (:data:`CV_METRIC`); ``nan`` where ``S_t + alpha I`` is singular.
    One Dask task per fold (``get``, default :func:`embmap.engine.in_job`), summed in fold order.
    """
    graph, key = _cv_graph(blocks, source, targets, alphas)
    return _compute(graph, [key], get)[0]


def held_out_rss(w, alphas, tk: float, pr, tpp, pp, u, py, dd: float, nk: int) -> np.ndarray:
    """The held-out residual sum of squares of every penalty, from terms shared by all of them.

    In the eigenbasis of the training Gram (eigenvalues ``w``) the coefficients
    are ``q = p / (w + alpha)``; every term of the held-out error is linear or
    quadratic in ``q``: ``tk`` (held-out sum of squares about the held-out
    mean), ``pr`` = rowwise p . (v' F_ab), ``tpp`` = (v' F_aa v) * p p', ``pp`` =
    p p', ``u`` the held-out minus training source mean in the eigenbasis,
    ``py`` = p dy and ``dd`` = |dy|^2 with ``dy`` the target's mean shift, ``nk``
    held-out samples. NaN where ``S + alpha I`` is singular.
    """
    out = np.empty(len(alphas))
    for i, alpha in enumerate(alphas):
        if _singular(w, alpha):
            out[i] = np.nan
            continue
        h = 1.0 / (w + alpha)
        uh = u * h
        # held-out residual mean: dy - u q; its squared norm, expanded
        shift2 = dd - 2.0 * float(uh @ py) + float(uh @ pp @ uh)
        out[i] = tk - 2.0 * float(h @ pr) + float(h @ tpp @ h) + nk * shift2
    return out


def choose_alpha(alphas: list[float], scores: np.ndarray) -> float:
    """The penalty with the best held-out score; ties go to the larger penalty."""
    ok = [i for i, s in enumerate(scores) if np.isfinite(s)]
    if not ok:
        raise FitError(f"no alpha in {alphas} gives a solvable system on every fold; use larger alphas")
    return alphas[max(ok, key=lambda i: (scores[i], alphas[i]))]


def fit_maps(blocks: Blocks, source: str, targets: list[str], alpha, get=None) -> dict[str, LinearMap]:
    """Fit the ridge maps from ``source`` to each target, sharing one factorisation of the source Gram.

    With one penalty ``alpha > 0`` the system ``(S_AA + alpha I) M = S_AB`` is
    solved for all targets from one inverse by its Cholesky factor (``d_A^3``
    flops, a fraction of an ``eigh``'s); with ``alpha = 0`` (where singularity must be
    detected) or a list of penalties, one ``eigh`` of ``S_AA`` serves every
    target and penalty. A list is chosen per target by K-fold cross-validation
    on the blocks' folds (:func:`cross_validate`); the map attributes then hold
    ``alphas``, ``cv_score`` (one per alpha), ``cv_folds``, ``cv_metric`` and, from
    a block store, ``cv_block_rows`` (sample i is in fold ``(i // cv_block_rows) % cv_folds``)
    beside the chosen ``alpha``. ``fit_r2`` comes from the blocks alone.

    The work is a Dask graph (:func:`fit_graph`) computed by ``get`` (default
    :func:`embmap.engine.in_job`): every task runs on one BLAS thread with fixed inputs,
    so the maps are the same to the bit on any number of threads or workers.
    """
    return fit_many(blocks, [(source, targets, alpha)], get)[0]


def fit_many(blocks: Blocks, fits: list[tuple], get=None) -> list[dict[str, LinearMap]]:
    """:func:`fit_maps` of every ``(source, targets, alpha)`` in ``fits``, all in one Dask graph (sources side by
    side): one {target: LinearMap} per entry."""
    graph, keys = {}, []
    for i, (source, targets, alpha) in enumerate(fits):
        g, k = fit_graph(blocks, source, list(targets), alphas_of(alpha), tag=(i,))
        graph.update(g)
        keys.append([k[b] for b in targets])
    try:
        got = _compute(graph, [k for ks in keys for k in ks], get)
    except _NotPositive:
        if len(fits) > 1:  # find the fit at the edge and let it alone take the eigenbasis route
            return [fit_many(blocks, [f], get)[0] for f in fits]
        # rounding made S_AA + alpha I indefinite (alpha at the edge of the threshold): the eigenbasis route
        source, targets, alpha = fits[0]
        graph, k = fit_graph(blocks, source, list(targets), alphas_of(alpha), cholesky=False)
        return [dict(zip(targets, _compute(graph, [k[b] for b in targets], get)))]
    it = iter(got)
    return [{b: next(it) for b in targets} for _, targets, _ in fits]


RHS_TILE = 2048  # right-hand columns per solve task at most (a target of up to this many is one task): fixed by
# the shapes, so that no result depends on the thread count


class _NotPositive(FitError):
    """``S_AA + alpha I`` is not positive definite to rounding (the Cholesky route gives way to ``eigh``)."""


def _cuts(n: int, width: int) -> list[tuple[int, int]]:
    return [(i, min(n, i + width)) for i in range(0, n, width)]


def _inverse(s_aa: np.ndarray, alpha: float) -> np.ndarray:
    """``(S_AA + alpha I)^-1`` [d_a, d_a] from its Cholesky factor (LAPACK ``potrf``, ``potri``: ``d_a^3`` flops).

    An explicit inverse, so that every solve after it is a GEMM: GEMMs release the GIL and run side by side
    on the scheduler's threads (scipy's LAPACK calls hold it), and a GEMM is BLAS's fastest kernel. For a
    symmetric positive-definite system its forward error is of the order of a Cholesky solve's
    (``cond(S_AA + alpha I)`` times the rounding unit).
    """
    from scipy.linalg import lapack

    c, info = lapack.dpotrf(s_aa + alpha * np.eye(len(s_aa)), lower=1, clean=1)
    if info == 0:
        c, info = lapack.dpotri(c, lower=1)
    if info != 0:
        raise _NotPositive(f"S_AA + {alpha} I is not positive definite to rounding (LAPACK info {info})")
    c = np.tril(c)
    return c + np.tril(c, -1).T


def _times(inverse: np.ndarray, rhs: np.ndarray, c0: int, c1: int) -> np.ndarray:
    """One tile of the solve: ``inverse @ rhs[:, c0:c1]``, a GEMM on the columns in place (BLAS packs its operands
    whatever their layout); an array at an odd byte offset, as a distributed worker may receive one, is copied
    first, or numpy would multiply it without BLAS, summing in another order."""
    tile = rhs[:, c0:c1] if (c0, c1) != (0, rhs.shape[1]) else rhs
    return inverse @ (tile if tile.flags.aligned else np.array(tile))


def _eigh(s_aa: np.ndarray):
    return np.linalg.eigh(s_aa)


def _one_alpha_map(blocks: Blocks, source: str, b: str, alpha: float, mu_a, p: np.ndarray, *tiles) -> LinearMap:
    m = np.concatenate(tiles, axis=1) if len(tiles) != 1 else tiles[0]
    # tss - rss = 2 tr(M' S_AB) - tr(M' S_AA M), and (S_AA + alpha I) M = S_AB makes the last term
    # tr(M' S_AB) - alpha |M|^2
    explained = float(np.sum(m * p)) + alpha * float(np.sum(m * m))
    return _ridge_map(blocks, source, b, np.ascontiguousarray(m), mu_a, explained, {"alpha": float(alpha)})


def _eig_map(blocks: Blocks, source: str, b: str, alphas: list[float], mu_a, wv, scores) -> LinearMap:
    w, v = wv
    chosen = choose_alpha(alphas, scores[b]) if scores is not None else alphas[0]
    p = v.T @ blocks.gram(source, b)
    q = _solve_eig(w, p, chosen)
    m = v @ q
    # residual sum of squares on the fit split, from the blocks alone (in the eigenbasis of S_AA:
    # tr(M' S_AB) = sum(q * p), tr(M' S_AA M) = sum(w q^2))
    explained = float(np.sum(q * p)) * 2.0 - float(np.sum(w[:, None] * q * q))
    attrs = {"alpha": float(chosen)}
    if scores is not None:
        attrs.update({"alphas": alphas, "cv_score": [None if not np.isfinite(s) else float(s) for s in scores[b]],
                      "cv_folds": len(blocks.folds), "cv_metric": CV_METRIC,
                      **({"cv_block_rows": int(blocks.attrs["block_rows"])} if "block_rows" in blocks.attrs
                         else {})})
    return _ridge_map(blocks, source, b, m, mu_a, explained, attrs)


def fit_graph(blocks: Blocks, source: str, targets: list[str], alphas: list[float], cholesky: bool = True,
              tag: tuple = ()) -> tuple[dict, dict]:
    """The Dask graph of :func:`fit_maps` and the key of each target's :class:`LinearMap`.

    One penalty above the singularity threshold: a task inverts ``S_AA + alpha I``
    from its Cholesky factor (:func:`_inverse`), one task per tile of
    :data:`RHS_TILE` columns of each ``S_AB`` multiplies by it (tiles side by
    side, and beside the reads of the blocks), one task per target assembles
    its map. Otherwise: a task for ``eigh(S_AA)`` and, with a list of penalties,
    one per cross-validation fold beside it (:func:`cross_validate`), then one
    per target. Tiles and fold sums are fixed by the shapes alone. Every key
    starts with ``tag`` (graphs of several sources side by side).
    """
    mu_a = blocks.means[source]
    # S_AA is read by a task (on a distributed worker, from the block store), not carried in the graph
    g: dict = {(*tag, "s_aa"): (blocks.gram, source, source)}
    trace = float(blocks.sumsq(source).sum())
    # with alpha above the singularity threshold for any eigenvalue (<= the trace), S_AA + alpha I is regular
    if cholesky and len(alphas) == 1 and alphas[0] > 1e-12 * max(trace, 1.0):
        g[(*tag, "inverse")] = (_inverse, (*tag, "s_aa"), alphas[0])
        keys = {}
        for b in targets:
            g[(*tag, "rhs", b)] = (blocks.gram, source, b)
            tiles = []
            for c0, c1 in _cuts(blocks.dim(b), RHS_TILE):
                g[(*tag, "solve", b, c0)] = (_times, (*tag, "inverse"), (*tag, "rhs", b), c0, c1)
                tiles.append((*tag, "solve", b, c0))
            g[(*tag, "map", b)] = (_one_alpha_map, blocks, source, b, alphas[0], mu_a, (*tag, "rhs", b), *tiles)
            keys[b] = (*tag, "map", b)
        return g, keys
    scores = None
    if len(alphas) > 1:
        cv, scores = _cv_graph(blocks, source, targets, alphas, tag)
        g.update(cv)
    g[(*tag, "eigh")] = (_eigh, (*tag, "s_aa"))
    keys = {b: (*tag, "map", b) for b in targets}
    g.update({(*tag, "map", b): (_eig_map, blocks, source, b, alphas, mu_a, (*tag, "eigh"), scores) for b in targets})
    return g, keys


def _compute(graph: dict, keys: list, get=None) -> list:
    """The keys of ``graph`` computed by ``get``, else the job's active scheduler (:func:`embmap.engine.running`),
    else :func:`embmap.engine.in_job`."""
    from ..engine import active, in_job

    return list((get or active() or in_job())(graph, keys))


def fit_maps_dual(rows: dict, source: str, targets: list[str], alpha: float) -> dict[str, LinearMap]:
    """The ridge maps of :func:`fit_maps` from the samples themselves, in the m-dimensional sample space.

    ``rows`` holds each network's m fit samples (float64 [m, d]). With ``X``, ``Y`` centred,
    ``W = (X^T X + alpha I)^-1 X^T Y = X^T (X X^T + alpha I)^-1 Y``: one Cholesky of the m x m
    Gram serves every target, ``m^2 (d_A + D) + m^3 / 3`` flops against ``d_A^3`` from the blocks,
    the route for prefixes of fewer samples than features (``alpha > 0`` only).
    """
    x = np.asarray(rows[source], np.float64)
    mu_a = x.mean(axis=0)
    xc = x - mu_a
    k = xc @ xc.T
    k[np.diag_indices_from(k)] += alpha
    chol = np.linalg.cholesky(k)
    out = {}
    for b in targets:
        y = np.asarray(rows[b], np.float64)
        mu_b = y.mean(axis=0)
        yc = y - mu_b
        z = np.linalg.solve(chol.T, np.linalg.solve(chol, yc))
        m = xc.T @ z
        tss = float(np.sum(yc * yc))
        rss = float(np.sum((yc - xc @ m) ** 2))
        r2 = 1.0 - rss / tss if tss > 0 else float("nan")
        out[b] = LinearMap(m, mu_b - mu_a @ m, {"source": source, "target": b, "alpha": float(alpha), "n": len(x),
                                                "method": "ridge", "fit_r2": r2})
    return out


def _ridge_map(blocks: Blocks, a: str, b: str, m, mu_a, explained: float, attrs: dict) -> LinearMap:
    """The map ``a -> b`` with its intercept and fit R^2 (``explained`` = tss - rss on the fit split)."""
    c = blocks.means[b] - mu_a @ m
    tss = float(blocks.sumsq(b).sum())
    r2 = 1.0 - (tss - explained) / tss if tss > 0 else float("nan")
    return LinearMap(m, c, {"source": a, "target": b, **attrs, "n": blocks.n, "method": "ridge", "fit_r2": r2})
