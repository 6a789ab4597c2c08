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
    warning=warning,
    describe=describe,
)
