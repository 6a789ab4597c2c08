"""Map methods beyond the paper's ridge, fitted from the centred blocks alone.

Every method maps ``f_B ≈ f_A @ W + c`` with ``c = mean_B - mean_A @ W`` (the
intercept is never penalised or rotated); only ``W`` differs. With
``S_AA``, ``S_AB``, ``S_BB`` the centred cross products of the fit samples
(:class:`embmap.fit.gram.Blocks`):

- ``ridge``      ``W = (S_AA + alpha I)^-1 S_AB`` (eq. 5; :mod:`.ridge`, alpha fixed
  or chosen by cross-validation);
- ``lstsq``      ``W = S_AA^+ S_AB``: ordinary least squares, the minimum-norm solution
  when ``S_AA`` is singular (eigenvalues at or below ``max(w) d_A eps`` are
  dropped, numpy's ``matrix_rank`` tolerance); ``rank`` records what was kept;
- ``procrustes`` ``W = s U V^T`` with ``U Σ V^T`` the thin SVD of ``S_AB`` and
  ``s = tr Σ / tr S_AA``: the orthogonal map (rotation and reflection) after
  centring, with the best isotropic scale. When dimensions differ it is the
  square orthogonal Procrustes solution on features zero-padded to the larger
  dimension, cut back to ``d_A x d_B``. With ``scale: standard`` every feature
  is first divided by its standard deviation on the fit split
  (``σ = sqrt(diag S / n)``): ``W = diag(1/σ_A) s U V^T diag(σ_B)`` from the SVD
  of ``diag(1/σ_A) S_AB diag(1/σ_B)`` and ``s = tr Σ / (n d_A)``.

The fraction of B's fit-split variance a map explains is, from the blocks,
``1 - (tr S_BB - 2 tr(W' S_AB) + tr(W' S_AA W)) / tr S_BB`` (:func:`fit_r2`).

Why no ``cca_ridge``: a CCA map (regress B's canonical variates on A's) has
been used to align representations (SVCCA, Raghu et al. 2017), but as a map
into B's own coordinates it is ridge restricted to the top canonical
directions, and no published work we know of asks for it as a translation
method; CCA enters here as similarity indices (:mod:`embmap.evaluate.similarity`).
"""

from __future__ import annotations

import numpy as np

from . import FitError
from .gram import Blocks
from .ridge import LinearMap, fit_maps as ridge_maps

RIDGE, LSTSQ, PROCRUSTES = "ridge", "lstsq", "procrustes"
METHODS = (RIDGE, LSTSQ, PROCRUSTES)
SCALES = ("none", "standard")


def pinv_eigh(s_aa: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Eigenvectors ``v`` and inverted eigenvalues (0 past the rank) of a symmetric PSD matrix, and its rank."""
    w, v = np.linalg.eigh(s_aa)
    tol = max(float(w.max()), 0.0) * len(w) * np.finfo(np.float64).eps
    keep = w > tol
    inv = np.zeros_like(w)
    inv[keep] = 1.0 / w[keep]
    return v, inv, int(keep.sum())


def lstsq_weights(s_aa: np.ndarray, s_ab: np.ndarray) -> tuple[np.ndarray, int]:
    """``S_AA^+ S_AB`` and the rank of ``S_AA``."""
    v, inv, rank = pinv_eigh(s_aa)
    return v @ (inv[:, None] * (v.T @ s_ab)), rank


def constant_features(sumsq: np.ndarray, mean: np.ndarray, n: int) -> np.ndarray:
    """Indices of features whose spread is below float32 resolution of their mean (or exactly zero)."""
    resolution = np.finfo(np.float32).eps * np.maximum(np.abs(mean), np.finfo(np.float64).tiny)
    return np.flatnonzero(np.asarray(sumsq) <= n * resolution ** 2)


def check_standard(name: str, sumsq: np.ndarray, mean: np.ndarray, n: int) -> None:
    """Refuse ``scale: standard`` for a network with a constant feature (its standard deviation is 0)."""
    const = constant_features(sumsq, mean, n)
    if len(const):
        shown = ", ".join(str(i) for i in const[:5]) + (", ..." if len(const) > 5 else "")
        raise FitError(f"network {name!r}: {len(const)} constant feature(s) over the fit samples (index {shown}); "
                       "mapping.scale: standard divides every feature by its standard deviation: use scale: none")


def _procrustes_factor(s_ab: np.ndarray, n: int, scale: str, sumsq_a=None, sumsq_b=None):
    """``(Q, tr Σ, sd_a, sd_b, rank)``: ``Q = U_r V_r^T`` over the singular values of the thin SVD ``U Σ V^T`` of
    ``S_AB`` (standardised with ``scale``) above ``max(d_A, d_B) ε σ_1`` (numpy's ``matrix_rank`` tolerance),
    ``rank`` of them.

    With full rank ``Q`` is the orthogonal factor ``U V^T``. Below it (units that are dead on the fit
    samples, or fewer samples than features) the orthogonal factor is not determined on the null space of
    ``S_AB``: every orthonormal completion fits the blocks equally well, and the one an SVD returns
    depends on rounding. ``U_r V_r^T`` is the one element of least norm among the maximisers of
    ``tr(Q^T S_AB)`` over ``||Q||_2 <= 1``: directions the fit samples do not correlate map to zero, as
    ``pinv`` does for least squares. ``S_BA = S_AB^T`` has the same factors swapped, so ``Q^T``, the
    same ``tr Σ`` and the same rank serve the map B -> A.
    """
    if scale not in SCALES:
        raise FitError(f"mapping.scale {scale!r}: use one of {SCALES}")
    sd_a = sd_b = None
    k = s_ab
    if scale == "standard":
        sd_a = np.sqrt(np.asarray(sumsq_a) / n)
        sd_b = np.sqrt(np.asarray(sumsq_b) / n)
        k = s_ab / sd_a[:, None] / sd_b[None, :]
    u, sv, vt = np.linalg.svd(k, full_matrices=False)
    tol = sv[0] * max(k.shape) * np.finfo(np.float64).eps if sv.size else 0.0
    rank = int(np.count_nonzero(sv > tol))
    return u[:, :rank] @ vt[:rank], float(sv.sum()), sd_a, sd_b, rank


def _procrustes_map(q: np.ndarray, trace_sv: float, s_aa_trace: float, n: int, scale: str, sd_a, sd_b
                    ) -> tuple[np.ndarray, float]:
    """``W`` (d_A x d_B) and ``s`` from the factor ``q`` of :func:`_procrustes_factor`."""
    if scale == "standard":
        s = trace_sv / (n * len(sd_a))
        return (s / sd_a)[:, None] * q * sd_b[None, :], s
    s = trace_sv / s_aa_trace if s_aa_trace > 0 else 0.0
    return s * q, s


def procrustes_weights(s_aa_trace: float, s_ab: np.ndarray, n: int, scale: str = "none",
                       sumsq_a: np.ndarray | None = None, sumsq_b: np.ndarray | None = None
                       ) -> tuple[np.ndarray, float, int]:
    """The scaled orthogonal map ``W`` (d_A x d_B), its isotropic scale ``s`` and the rank of ``S_AB`` it spans
    (see :func:`_procrustes_factor`)."""
    q, trace_sv, sd_a, sd_b, rank = _procrustes_factor(s_ab, n, scale, sumsq_a, sumsq_b)
    return (*_procrustes_map(q, trace_sv, s_aa_trace, n, scale, sd_a, sd_b), rank)


def fit_r2(w: np.ndarray, s_aa: np.ndarray, s_ab: np.ndarray, s_bb_trace: float) -> float:
    """Fraction of the target's fit-split variance explained by ``f_A @ w + c``, from the blocks."""
    if s_bb_trace <= 0:
        return float("nan")
    rss = s_bb_trace - 2.0 * float(np.sum(w * s_ab)) + float(np.sum(w * (s_aa @ w)))
    return 1.0 - rss / s_bb_trace


def check_method(method: str, scale: str = "none") -> None:
    if method not in METHODS:
        raise FitError(f"mapping.methods: unknown method {method!r}; use any of {', '.join(METHODS)}")
    if scale not in SCALES:
        raise FitError(f"mapping.scale {scale!r}: use one of {SCALES}")


def fit_maps(blocks: Blocks, source: str, targets: list[str], method: str = RIDGE, alpha=1.0,
             scale: str = "none") -> dict[str, LinearMap]:
    """Maps of ``method`` from ``source`` to each target, one factorisation of the source's blocks.

    ``ridge`` is :func:`embmap.fit.ridge.fit_maps` (``alpha`` a number or a
    cross-validated list); ``lstsq`` factors ``S_AA`` once (``eigh``) for every
    target; ``procrustes`` takes one SVD of ``S_AB`` per target.
    """
    check_method(method, scale)
    if method == RIDGE:
        return ridge_maps(blocks, source, targets, alpha)
    n, mu = blocks.n, blocks.means
    s_aa = blocks.gram(source, source)
    sumsq_a = blocks.sumsq(source)
    if method == PROCRUSTES and scale == "standard":
        for k in [source, *targets]:  # every network before any SVD
            check_standard(k, blocks.sumsq(k), mu[k], n)
    factor = pinv_eigh(s_aa) if method == LSTSQ else None
    out = {}
    for b in targets:
        s_ab = blocks.gram(source, b)
        sumsq_b = blocks.sumsq(b)
        attrs = {"source": source, "target": b, "method": method, "n": n}
        if method == LSTSQ:
            v, inv, rank = factor
            w = v @ (inv[:, None] * (v.T @ s_ab))
            attrs.update({"alpha": 0.0, "rank": rank, "rank_of": len(inv)})
        else:
            w, s, rank = procrustes_weights(float(sumsq_a.sum()), s_ab, n, scale, sumsq_a, sumsq_b)
            attrs.update({"scale": scale, "isotropic_scale": s, "rank": rank, "rank_of": min(s_ab.shape)})
        attrs["fit_r2"] = fit_r2(w, s_aa, s_ab, float(sumsq_b.sum()))
        out[b] = LinearMap(w, mu[b] - mu[source] @ w, attrs)
    return out


def fit_pairs(blocks: Blocks, names: list[str], method: str = RIDGE, alpha=1.0, scale: str = "none"):
    """Every ordered pair's map of ``method``: yields ``((source, target), LinearMap)``, one at a time.

    ``procrustes`` takes one SVD per unordered pair: ``S_BA = S_AB^T`` has the
    same singular values and its vectors swapped, so ``B -> A`` is ``Q^T``
    with its own scale (half the SVDs of :func:`fit_maps` per source). The
    other methods run :func:`fit_maps` per source.
    """
    check_method(method, scale)
    if method != PROCRUSTES:
        for a in names:
            yield from (((a, b), m) for b, m in fit_maps(blocks, a, [b for b in names if b != a], method, alpha,
                                                          scale).items())
        return
    n, mu = blocks.n, blocks.means
    if scale == "standard":
        for k in names:  # every network before any SVD
            check_standard(k, blocks.sumsq(k), mu[k], n)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            s_ab = blocks.gram(a, b)
            sumsq_a, sumsq_b = blocks.sumsq(a), blocks.sumsq(b)
            q, trace_sv, sd_a, sd_b, rank = _procrustes_factor(s_ab, n, scale, sumsq_a, sumsq_b)
            for (src, tgt, qq, sd_s, sd_t, ss_s, ss_t, s_st) in (
                    (a, b, q, sd_a, sd_b, sumsq_a, sumsq_b, s_ab), (b, a, q.T, sd_b, sd_a, sumsq_b, sumsq_a, s_ab.T)):
                w, s = _procrustes_map(qq, trace_sv, float(ss_s.sum()), n, scale, sd_s, sd_t)
                attrs = {"source": src, "target": tgt, "method": method, "n": n, "scale": scale, "isotropic_scale": s,
                         "rank": rank, "rank_of": min(s_ab.shape),
                         "fit_r2": fit_r2(w, blocks.gram(src, src), s_st, float(ss_t.sum()))}
                yield (src, tgt), LinearMap(w, mu[tgt] - mu[src] @ w, attrs)
