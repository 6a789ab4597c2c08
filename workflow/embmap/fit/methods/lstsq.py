"""``lstsq``: ordinary least squares, ``W = S_AA^+ S_AB``.

The minimum-norm solution where ``S_AA`` is singular: eigenvalues at or below
``max(w) d_A eps`` (numpy's ``matrix_rank`` tolerance) are dropped, and the map
records ``rank`` (of ``rank_of``) it kept. One ``eigh`` of ``S_AA`` serves every
target of a source. ``alpha`` is recorded as 0.
"""

from __future__ import annotations

from . import PAIR_JOBS, Method


def pinv_eigh(s_aa):
    """Eigenvectors ``v`` and inverted eigenvalues (0 past the rank) of a symmetric PSD matrix, and its rank."""
    import numpy as np

    w, v = np.linalg.eigh(s_aa)
    tol = max(float(w.max()), 0.0) * len(w) * np.finfo(np.float64).eps
    keep = w > tol
    inv = np.zeros_like(w)
    inv[keep] = 1.0 / w[keep]
    return v, inv, int(keep.sum())


def lstsq_weights(s_aa, s_ab):
    """``S_AA^+ S_AB`` [d_A, d_B] and the rank of ``S_AA``."""
    v, inv, rank = pinv_eigh(s_aa)
    return v @ (inv[:, None] * (v.T @ s_ab)), rank


def from_blocks(blocks, source: str, targets: list[str], options: dict) -> dict:
    from ..linear import LinearMap, fit_r2

    n, mu = blocks.n, blocks.means
    s_aa = blocks.gram(source, source)
    v, inv, rank = pinv_eigh(s_aa)
    out = {}
    for b in targets:
        s_ab = blocks.gram(source, b)
        w = v @ (inv[:, None] * (v.T @ s_ab))
        attrs = {"source": source, "target": b, "method": METHOD.name, "n": n, "alpha": 0.0, "rank": rank,
                 "rank_of": len(inv), "fit_r2": fit_r2(w, s_aa, s_ab, float(blocks.sumsq(b).sum()))}
        out[b] = LinearMap(w, mu[b] - mu[source] @ w, attrs)
    return out


def like_samples(rows: dict, names: list[str], options: dict, full: dict) -> dict:
    """The maps of :func:`from_blocks` for every pair from the samples themselves (fewer than the features), in
    the m-dimensional sample space: with ``X`` centred, ``S_AA^+ X^T Y = X^T (X X^T)^+ Y``, and ``X X^T`` has
    the nonzero eigenvalues of ``S_AA``, cut at the same tolerance (``max(w) d_A eps``); one ``eigh`` of the
    m x m Gram per source, ``m^2 (d_A + D)`` flops against ``9 d_A^3``."""
    import numpy as np

    from ..linear import LinearMap

    out = {}
    for a in names:
        x = np.asarray(rows[a], np.float64)
        mu_a = x.mean(axis=0)
        xc = x - mu_a
        w, v = np.linalg.eigh(xc @ xc.T)
        d_a = x.shape[1]
        keep = w > max(float(w.max()), 0.0) * d_a * np.finfo(np.float64).eps
        inv = np.zeros_like(w)
        inv[keep] = 1.0 / w[keep]
        for b in names:
            if b == a:
                continue
            y = np.asarray(rows[b], np.float64)
            mu_b = y.mean(axis=0)
            yc = y - mu_b
            m = xc.T @ (v @ (inv[:, None] * (v.T @ yc)))
            tss = float(np.sum(yc * yc))
            r2 = 1.0 - float(np.sum((yc - xc @ m) ** 2)) / tss if tss > 0 else float("nan")
            out[(a, b)] = LinearMap(m, mu_b - mu_a @ m, {
                "source": a, "target": b, "method": METHOD.name, "n": len(x), "alpha": 0.0,
                "rank": int(keep.sum()), "rank_of": d_a, "fit_r2": r2})
    return out


def from_part(t, slices: dict, source: str, options: dict, chosen):
    w, _ = lstsq_weights(t.saa, t.sab)
    return w, dict.fromkeys(slices, 0.0)


def warning(m) -> str | None:
    if m.attrs["rank"] < m.attrs["rank_of"]:
        return (f"S_AA is singular (rank {m.attrs['rank']} of {m.attrs['rank_of']}); lstsq took the minimum-norm "
                "solution")
    return None


def describe(m) -> str:
    return f"rank {m.attrs['rank']} of {m.attrs['rank_of']}"


METHOD = Method(
    name="lstsq",
    summary="least squares without a penalty; the minimum-norm solution where S_AA is singular (rank recorded)",
    options=(),
    jobs=PAIR_JOBS,
    from_blocks=from_blocks,
    from_part=from_part,
    like_samples=like_samples,
    warning=warning,
    describe=describe,
)
