"""``procrustes``: the scaled orthogonal map after centring, ``W = s U V^T``.

``U Σ V^T`` is the thin SVD of ``S_AB`` and ``s = tr Σ / tr S_AA`` the best
isotropic scale. When dimensions differ it is the square orthogonal Procrustes
solution on features zero-padded to the larger dimension, cut back to
``d_A x d_B``. With ``mapping.scale: standard`` every feature is first divided
by its standard deviation on the fit split (``σ = sqrt(diag S / n)``):
``W = diag(1/σ_A) s U V^T diag(σ_B)`` from the SVD of
``diag(1/σ_A) S_AB diag(1/σ_B)`` and ``s = tr Σ / (n d_A)``.

``S_BA = S_AB^T`` has the same singular values and its vectors swapped, so the
job fits every ordered pair with one SVD per unordered pair (``jobs="pairs"``).
"""

from __future__ import annotations

from .. import FitError
from . import PAIR_JOBS, Method

SCALES = ("none", "standard")


def constant_features(sumsq, mean, n: int):
    """Indices of features whose spread is below float32 resolution of their mean (or exactly zero)."""
    import numpy as np

    resolution = np.finfo(np.float32).eps * np.maximum(np.abs(mean), np.finfo(np.float64).tiny)
    return np.flatnonzero(np.asarray(sumsq) <= n * resolution ** 2)


def check_standard(name: str, sumsq, mean, n: int) -> None:
    """Refuse ``scale: standard`` for a network with a constant feature (its standard deviation is 0)."""
    const = constant_features(sumsq, mean, n)
    if len(const):
        shown = ", ".join(str(i) for i in const[:5]) + (", ..." if len(const) > 5 else "")
        raise FitError(f"network {name!r}: {len(const)} constant feature(s) over the fit samples (index {shown}); "
                       "mapping.scale: standard divides every feature by its standard deviation: use scale: none")


def check_features(name: str, sumsq, mean, n: int, options: dict) -> None:
    if _scale(options) == "standard":
        check_standard(name, sumsq, mean, n)


def _scale(options: dict) -> str:
    scale = options["scale"]
    if scale not in SCALES:
        raise FitError(f"mapping.scale {scale!r}: use one of {SCALES}")
    return scale


def _factor(s_ab, n: int, scale: str, sumsq_a=None, sumsq_b=None):
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
    import numpy as np

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


def _weights_of(q, trace_sv: float, s_aa_trace: float, n: int, scale: str, sd_a, sd_b):
    """``W`` (d_A x d_B) and ``s`` from the factor ``q`` of :func:`_factor`."""
    if scale == "standard":
        s = trace_sv / (n * len(sd_a))
        return (s / sd_a)[:, None] * q * sd_b[None, :], s
    s = trace_sv / s_aa_trace if s_aa_trace > 0 else 0.0
    return s * q, s


def procrustes_weights(s_aa_trace: float, s_ab, n: int, scale: str, sumsq_a=None, sumsq_b=None):
    """The scaled orthogonal map ``W`` (d_A x d_B), its isotropic scale ``s`` and the rank of ``S_AB`` it spans
    (see :func:`_factor`)."""
    q, trace_sv, sd_a, sd_b, rank = _factor(s_ab, n, scale, sumsq_a, sumsq_b)
    return (*_weights_of(q, trace_sv, s_aa_trace, n, scale, sd_a, sd_b), rank)


def _map(blocks, src: str, tgt: str, w, s: float, rank: int, rank_of: int, scale: str, s_st, sumsq_t):
    from ..linear import LinearMap, fit_r2

    attrs = {"source": src, "target": tgt, "method": METHOD.name, "n": blocks.n, "scale": scale,
             "isotropic_scale": s, "rank": rank, "rank_of": rank_of,
             "fit_r2": fit_r2(w, blocks.gram(src, src), s_st, float(sumsq_t.sum()))}
    return LinearMap(w, blocks.means[tgt] - blocks.means[src] @ w, attrs)


def _check_blocks(blocks, names, options: dict) -> str:
    scale = _scale(options)
    for k in names:  # every network before any SVD
        check_features(k, blocks.sumsq(k), blocks.means[k], blocks.n, options)
    return scale


def from_blocks(blocks, source: str, targets: list[str], options: dict) -> dict:
    """One SVD of ``S_AB`` per target."""
    scale = _check_blocks(blocks, [source, *targets], options)
    sumsq_a = blocks.sumsq(source)
    out = {}
    for b in targets:
        s_ab, sumsq_b = blocks.gram(source, b), blocks.sumsq(b)
        w, s, rank = procrustes_weights(float(sumsq_a.sum()), s_ab, blocks.n, scale, sumsq_a, sumsq_b)
        out[b] = _map(blocks, source, b, w, s, rank, min(s_ab.shape), scale, s_ab, sumsq_b)
    return out


def pairs(blocks, names: list[str], options: dict):
    """Every ordered pair from one SVD per unordered pair: ``B -> A`` is ``Q^T`` with its own scale. Unordered
    pairs run side by side on the job's threads, each SVD on one BLAS thread (:func:`embmap.engine.side_by_side`:
    no map depends on the thread count)."""
    from ...engine import side_by_side

    scale = _check_blocks(blocks, names, options)
    n = blocks.n

    def both(pair):
        a, b = pair
        s_ab = blocks.gram(a, b)
        sumsq_a, sumsq_b = blocks.sumsq(a), blocks.sumsq(b)
        q, trace_sv, sd_a, sd_b, rank = _factor(s_ab, n, scale, sumsq_a, sumsq_b)
        out = []
        for (src, tgt, qq, sd_s, sd_t, ss_s, ss_t, s_st) in (
                (a, b, q, sd_a, sd_b, sumsq_a, sumsq_b, s_ab), (b, a, q.T, sd_b, sd_a, sumsq_b, sumsq_a, s_ab.T)):
            w, s = _weights_of(qq, trace_sv, float(ss_s.sum()), n, scale, sd_s, sd_t)
            out.append(((src, tgt), _map(blocks, src, tgt, w, s, rank, min(s_ab.shape), scale, s_st, ss_t)))
        return out

    for got in side_by_side(both, [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]):
        yield from got


def _factor_of_samples(xa, xb, n: int, scale: str):
    """:func:`_factor` from centred samples ``xa`` [m, d_A], ``xb`` [m, d_B] in the m-dimensional sample space:
    with ``X_A^T = Q_A R_A`` and ``X_B^T = Q_B R_B`` (thin QR), ``S_AB = Q_A (R_A R_B^T) Q_B^T``, so the SVD of the
    small core gives ``S_AB``'s singular values and, through ``Q_A`` and ``Q_B``, its vectors (same tolerance)."""
    import numpy as np

    sd_a = sd_b = None
    if scale == "standard":
        sd_a = np.sqrt((xa * xa).sum(axis=0) / n)
        sd_b = np.sqrt((xb * xb).sum(axis=0) / n)
        xa, xb = xa / sd_a, xb / sd_b
    qa, ra = np.linalg.qr(xa.T)
    qb, rb = np.linalg.qr(xb.T)
    uc, sv, vct = np.linalg.svd(ra @ rb.T, full_matrices=False)
    tol = sv[0] * max(xa.shape[1], xb.shape[1]) * np.finfo(np.float64).eps if sv.size else 0.0
    rank = int(np.count_nonzero(sv > tol))
    q = (qa @ uc[:, :rank]) @ (vct[:rank] @ qb.T)
    return q, float(sv.sum()), sd_a, sd_b, rank


def like_samples(rows: dict, names: list[str], options: dict, full: dict) -> dict:
    """Every ordered pair's map from the m samples themselves (fewer than the features): one thin QR per network
    and one SVD of an m x m core per unordered pair (:func:`_factor_of_samples`), ``m^2 (d_A + d_B)`` flops
    against ``14 d_A d_B min(d_A, d_B)``; the maps of :func:`pairs` on the same samples."""
    import numpy as np

    from ..linear import LinearMap

    scale = _scale(options)
    centred, means, sumsq = {}, {}, {}
    for k in names:
        x = np.asarray(rows[k], np.float64)
        means[k] = x.mean(axis=0)
        centred[k] = x - means[k]
        sumsq[k] = (centred[k] ** 2).sum(axis=0)
        check_features(k, sumsq[k], means[k], len(x), options)
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            n = len(centred[a])
            q, trace_sv, sd_a, sd_b, rank = _factor_of_samples(centred[a], centred[b], n, scale)
            for src, tgt, qq, sd_s, sd_t in ((a, b, q, sd_a, sd_b), (b, a, q.T, sd_b, sd_a)):
                w, s = _weights_of(qq, trace_sv, float(sumsq[src].sum()), n, scale, sd_s, sd_t)
                tss = float(sumsq[tgt].sum())
                rss = float(((centred[tgt] - centred[src] @ w) ** 2).sum())
                out[(src, tgt)] = LinearMap(w, means[tgt] - means[src] @ w, {
                    "source": src, "target": tgt, "method": METHOD.name, "n": n, "scale": scale,
                    "isotropic_scale": s, "rank": rank, "rank_of": min(len(means[a]), len(means[b])),
                    "fit_r2": 1.0 - rss / tss if tss > 0 else float("nan")})
    return out


def from_part(t, slices: dict, source: str, options: dict, chosen):
    """One SVD per target of the fold's training blocks (``t.sbb`` the targets' sums of squares)."""
    import numpy as np

    scale = _scale(options)
    w = np.empty_like(t.sab)
    sumsq_a = np.diag(t.saa)
    if scale == "standard":
        check_standard(source, sumsq_a, t.ma, t.n)
        for b, sl in slices.items():
            check_standard(b, t.sbb[sl], t.mb[sl], t.n)
    for b, sl in slices.items():
        w[:, sl], *_ = procrustes_weights(float(sumsq_a.sum()), t.sab[:, sl], t.n, scale, sumsq_a, t.sbb[sl])
    return w, dict.fromkeys(slices, float("nan"))


def warning(m) -> str | None:
    if m.attrs["rank"] < m.attrs["rank_of"]:
        return (f"S_AB has rank {m.attrs['rank']} of {m.attrs['rank_of']} (units without variance on the fit "
                "split, or fewer samples than features); procrustes maps the directions outside it to zero")
    return None


def describe(m) -> str:
    return f"rank {m.attrs['rank']} of {m.attrs['rank_of']}"


METHOD = Method(
    name="procrustes",
    summary="the orthogonal map after centring with the best isotropic scale (scale: standard divides by the "
            "features' standard deviations first)",
    options=("scale",),
    jobs=PAIR_JOBS,
    from_blocks=from_blocks,
    from_part=from_part,
    pairs=pairs,
    like_samples=like_samples,
    check_features=check_features,
    warning=warning,
    describe=describe,
)
