"""Ridge maps between embedding spaces, fitted from the pass's cross-product blocks alone.

The paper's eq. 5 with an unpenalised intercept, for every ordered pair (A, B)::

    minimise  || X_A M + 1 c - X_B ||_F^2 + alpha ||M||_F^2

With centred data the solution is ``M = (S_AA + alpha I)^-1 S_AB`` and
``c = mean_B - mean_A M`` where ``S_AB = (X_A - mean_A)^T (X_B - mean_B)``
(:class:`embmap.fit.blocks.Blocks`). :func:`fit_maps` factors a source's Gram
once (``eigh``) and reuses the factorisation for every target and penalty;
with a list of penalties, :func:`cross_validate` scores each by K-fold
cross-validation from the per-fold blocks (no second pass over the data).
"""

from __future__ import annotations

import numpy as np

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


def cross_validate(blocks: Blocks, source: str, targets: list[str], alphas: list[float]) -> dict[str, np.ndarray]:
    """Held-out score of every penalty for every target, K-fold, from the per-fold blocks alone.

    For fold k the training blocks are the whole split's minus fold k's
    (``S_t = S - S_k - n n_k / n_t (m - m_k)(m - m_k)^T``); one ``eigh`` of the
    source's training Gram serves every target and penalty, and the held-out
    squared error of the map fitted on the other folds comes from fold k's
    blocks (no further pass over the data). Returns target -> [len(alphas)]
    scores (:data:`CV_METRIC`); ``nan`` where ``S_t + alpha I`` is singular.
    """
    if len(blocks.folds) < 2:
        raise FitError("alpha is a list, which is chosen by cross-validation, but the blocks hold no folds; "
                       "re-run the pass with mapping.alpha as a list")
    a, n, mu = source, blocks.n, blocks.means
    s_aa = blocks.gram(a, a)
    rss = {b: np.zeros(len(alphas)) for b in targets}
    tss = dict.fromkeys(targets, 0.0)
    for k, f in enumerate(blocks.folds):
        nk = f.n
        nt = n - nk
        if nk == 0 or nt == 0:
            raise FitError(f"fold {k} holds {nk} of {n} samples; cross-validation needs samples in and out of it")
        c = n * nk / nt
        da = mu[a] - f.means[a]
        fk_aa = f.gram(a, a)
        w, v = np.linalg.eigh(s_aa - fk_aa - c * np.outer(da, da))
        t = v.T @ fk_aa @ v
        u = -(n / nt) * da @ v  # (fold mean - training mean) of the source, in the eigenbasis
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
            tk = float(f.sumsq(b).sum())
            tss[b] += tk
            rss[b] += held_out_rss(w, alphas, tk, pr, tpp, pp, u, py, float(dy @ dy), nk)
    return {b: 1.0 - rss[b] / tss[b] if tss[b] > 0 else np.full(len(alphas), np.nan) for b in targets}


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


def fit_maps(blocks: Blocks, source: str, targets: list[str], alpha) -> dict[str, LinearMap]:
    """Fit the ridge maps from ``source`` to each target, sharing one factorisation of the source Gram.

    With one penalty ``alpha > 0`` the system ``(S_AA + alpha I) M = S_AB`` is
    solved once for all targets side by side (an LU of ``d_A x d_A``, about a
    ninth of an ``eigh``); with ``alpha = 0`` (where singularity must be
    detected) or a list of penalties, one ``eigh`` of ``S_AA`` serves every
    target and penalty. A list is chosen per target by K-fold cross-validation
    on the blocks' folds (:func:`cross_validate`); the map attributes then hold
    ``alphas``, ``cv_score`` (one per alpha), ``cv_folds``, ``cv_metric`` and, from
    a block store, ``cv_block_rows`` (sample i is in fold ``(i // cv_block_rows) % cv_folds``)
    beside the chosen ``alpha``. ``fit_r2`` comes from the blocks alone.
    """
    alphas = alphas_of(alpha)
    s_aa = blocks.gram(source, source)
    mu_a = blocks.means[source]
    # with alpha above the singularity threshold for any eigenvalue (<= the trace), S_AA + alpha I is regular
    if len(alphas) == 1 and alphas[0] > 1e-12 * max(float(np.trace(s_aa)), 1.0):
        return _fit_one_alpha(blocks, source, targets, alphas[0], s_aa, mu_a)
    scores = cross_validate(blocks, source, targets, alphas) if len(alphas) > 1 else None
    w, v = np.linalg.eigh(s_aa)
    out = {}
    for b in targets:
        chosen = choose_alpha(alphas, scores[b]) if scores is not None else alphas[0]
        p = v.T @ blocks.gram(source, b)
        q = _solve_eig(w, p, chosen)
        m = v @ q
        # residual sum of squares on the fit split, from the blocks alone (in the eigenbasis of S_AA:
        # tr(M' S_AB) = sum(q * p), tr(M' S_AA M) = sum(w q^2))
        rss_fit = float(np.sum(q * p)) * 2.0 - float(np.sum(w[:, None] * q * q))
        attrs = {"alpha": float(chosen)}
        if scores is not None:
            attrs.update({"alphas": alphas, "cv_score": [None if not np.isfinite(s) else float(s) for s in scores[b]],
                          "cv_folds": len(blocks.folds), "cv_metric": CV_METRIC,
                          **({"cv_block_rows": int(blocks.attrs["block_rows"])} if "block_rows" in blocks.attrs
                             else {})})
        out[b] = _ridge_map(blocks, source, b, m, mu_a, rss_fit, attrs)
    return out


def _fit_one_alpha(blocks: Blocks, source: str, targets: list[str], alpha: float, s_aa, mu_a) -> dict:
    """``(S_AA + alpha I) M = [S_AB ...]``: one solve for every target (numpy's LAPACK only)."""
    cols = [blocks.gram(source, b) for b in targets]
    rhs = np.concatenate(cols, axis=1) if cols else np.zeros((len(s_aa), 0))
    m_all = np.linalg.solve(s_aa + alpha * np.eye(len(s_aa)), rhs)
    out, start = {}, 0
    for b, p in zip(targets, cols):
        m = m_all[:, start:start + p.shape[1]]
        start += p.shape[1]
        # tss - rss = 2 tr(M' S_AB) - tr(M' S_AA M), and (S_AA + alpha I) M = S_AB makes the last term
        # tr(M' S_AB) - alpha |M|^2
        explained = float(np.sum(m * p)) + alpha * float(np.sum(m * m))
        out[b] = _ridge_map(blocks, source, b, np.ascontiguousarray(m), mu_a, explained, {"alpha": float(alpha)})
    return out


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
