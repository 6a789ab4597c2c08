"""Ridge maps between embedding spaces, fitted from shared cross-product blocks.

The paper's eq. 5 with an unpenalised intercept, for every ordered pair (A, B)::

    minimise  || X_A M + 1 c - X_B ||_F^2 + alpha ||M||_F^2

With centred data the solution is ``M = (S_AA + alpha I)^-1 S_AB`` and
``c = mean_B - mean_A M`` where ``S_AB = (X_A - mean_A)^T (X_B - mean_B)``.
Every ``S_AB`` of every pair is a block of one joint Gram matrix over the
concatenated features of all networks, so one streaming pass over the stores
(:func:`cross_products`) gives every map; :func:`fit_maps` factors a source's
``S_AA`` once (``eigh``) and reuses it for every target.

Numerics: each network's features are shifted by a fixed vector (the mean of
its first rows) before the per-chunk products (float64 by default, float32 on
request), and chunks are summed in float64; centring is exact afterwards
(``S = G - s s^T / n``). The shift keeps products accurate when features have
large means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas

from . import stores as st

SHIFT_ROWS = 1024


class FitError(ValueError):
    """A map cannot be fitted as configured (singular system, bad blocks)."""


# -- the one pass ---------------------------------------------------------------------
def shift_of(array, rows: int = SHIFT_ROWS) -> np.ndarray:
    """Per-feature shift: the mean of the first ``rows`` samples, float32 [feature]."""
    head = np.asarray(array[: min(rows, array.shape[0])], dtype=np.float64)
    return head.mean(axis=0).astype(np.float32)


PRECISIONS = ("float64", "float32")


def gram_chunk(x: np.ndarray, shift: np.ndarray, precision: str = "float64") -> np.ndarray:
    """Upper triangle of ``[x - shift, 1]^T [x - shift, 1]``, float64 [D+1, D+1].

    One symmetric rank-k update (BLAS ``syrk``: half the work of a general
    product) in ``precision``; the appended column of ones makes the last row
    hold the column sums and the corner the sample count. ``float32`` halves
    the time; its rounding (about 1e-7 of each entry) is amplified by the
    condition number of ``S_AA + alpha I`` in the coefficients.
    """
    if precision not in PRECISIONS:
        raise FitError(f"precision {precision!r}: use one of {PRECISIONS}")
    n, d = x.shape
    dtype = np.dtype(precision)
    aug = np.empty((n, d + 1), dtype=dtype)
    np.subtract(x, shift, out=aug[:, :d], casting="unsafe")
    aug[:, d] = 1.0
    # aug is C-ordered (n, D+1), i.e. aug.T is Fortran-ordered: no copy inside BLAS.
    syrk = blas.ssyrk if dtype == np.float32 else blas.dsyrk
    g = syrk(1.0, aug.T, trans=0, lower=0)
    return np.asarray(g, dtype=np.float64)


def cross_products(arrays: dict, start: int = 0, stop: int | None = None, chunk_rows: int = 4096,
                   shifts: dict | None = None, num_workers: int | None = None,
                   precision: str = "float64") -> dict:
    """Joint shifted Gram of all networks over samples ``[start, stop)``, one pass.

    Parameters
    ----------
    arrays : dict name -> array-like [n, d_name]
        Zarr arrays (or anything sliceable); read lazily through Dask, one
        sample chunk at a time, each sample read once.
    start, stop : int
        Sample range (a shard of the pass).
    chunk_rows : int
        Samples per Dask task.
    shifts : dict name -> float32 [d_name], optional
        Defaults to :func:`shift_of` each array; shards of one run must share them.
    precision : {"float64", "float32"}
        Arithmetic of the per-chunk products (see :func:`gram_chunk`); chunks
        are always summed in float64.

    Returns
    -------
    dict with ``names``, ``dims``, ``shifts``, ``n`` and ``gram`` float64
    [D+1, D+1] (upper triangle valid; the last row/column hold sums and n).
    """
    import dask
    import dask.array as da

    names = list(arrays)
    n = arrays[names[0]].shape[0]
    stop = n if stop is None else stop
    if shifts is None:
        shifts = {k: shift_of(a) for k, a in arrays.items()}
    dims = [int(arrays[k].shape[1]) for k in names]
    parts = []
    for k in names:
        a = arrays[k]
        if a.shape[0] != n:
            raise FitError(f"network {k!r}: {a.shape[0]} samples, network {names[0]!r} has {n}")
        x = da.from_array(a, chunks=(chunk_rows, -1), asarray=True, inline_array=True)[start:stop]
        parts.append(x)
    joint = da.concatenate(parts, axis=1).rechunk((chunk_rows, -1))
    shift = np.concatenate([shifts[k] for k in names]).astype(np.float32)
    D = joint.shape[1]
    nchunks = len(joint.chunks[0])
    grams = joint.map_blocks(
        lambda b: gram_chunk(b, shift, precision)[None], dtype=np.float64, new_axis=2,
        chunks=((1,) * nchunks, (D + 1,), (D + 1,)),
    )
    with dask.config.set(scheduler="threads", num_workers=num_workers):
        total = grams.sum(axis=0, split_every=2).compute()
    return {"names": names, "dims": dims, "shifts": shifts, "n": int(round(total[D, D])), "gram": total,
            "precision": precision}


def centred_blocks(cp: dict) -> tuple[dict, dict]:
    """Means and centred cross-product blocks from :func:`cross_products` output.

    Returns ``means`` (name -> float64 [d]) and ``blocks`` ((A, B) -> float64
    [d_A, d_B]) for A at or before B in ``cp['names']`` order.
    """
    g = np.triu(cp["gram"])
    g = g + np.triu(g, 1).T
    D = g.shape[0] - 1
    n = cp["n"]
    if n < 2:
        raise FitError(f"cross products over {n} sample(s); at least 2 are needed")
    sums = g[D, :D]
    off = np.cumsum([0] + cp["dims"])
    names = cp["names"]
    means, blocks = {}, {}
    for i, a in enumerate(names):
        sa = sums[off[i] : off[i + 1]]
        if not np.isfinite(sa).all():
            raise FitError(f"network {a!r}: non-finite values in its features (NaN or inf) over the fit split")
        means[a] = cp["shifts"][a].astype(np.float64) + sa / n
        for j in range(i, len(names)):
            b = names[j]
            sb = sums[off[j] : off[j + 1]]
            blocks[(a, b)] = g[off[i] : off[i + 1], off[j] : off[j + 1]] - np.outer(sa, sb) / n
        spread = np.diag(blocks[(a, a)])
        scale = float(np.abs(means[a]).max()) ** 2 * n + 1e-300
        if not np.any(spread > 1e-12 * scale):
            raise FitError(f"network {a!r}: every feature is constant over the fit split ({n} samples); "
                           "its embedding carries nothing to map")
    return means, blocks


def write_blocks(path, cp: dict, **attrs) -> None:
    """Store means and centred blocks: ``mean/{A}`` [d_A], ``gram/{A}/{B}`` [d_A, d_B] for A <= B."""
    means, blocks = centred_blocks(cp)
    with st.atomic_group(path) as g:
        for a, m in means.items():
            g.create_array(f"mean/{a}", data=m, dimension_names=[f"{a}_feature"])
        for (a, b), s in blocks.items():
            g.create_array(f"gram/{a}/{b}", data=s, dimension_names=[f"{a}_feature", f"{b}_feature"])
        g.attrs.update({"networks": cp["names"], "dims": cp["dims"], "n": cp["n"], "created": st.now(),
                        "precision": cp.get("precision", "float64"),
                        "convention": "gram/A/B = (X_A - mean_A)^T (X_B - mean_B) over the fit split, A <= B "
                                      "in the order of 'networks'", **attrs})


@dataclass
class Blocks:
    """Cross-product blocks read back from a block store."""

    names: list
    n: int
    means: dict
    group: object

    def gram(self, a: str, b: str) -> np.ndarray:
        ia, ib = self.names.index(a), self.names.index(b)
        if ia <= ib:
            return np.asarray(self.group[f"gram/{a}/{b}"][:])
        return np.asarray(self.group[f"gram/{b}/{a}"][:]).T


def open_blocks(path) -> Blocks:
    g = st.open_group(path, "block store")
    names = list(g.attrs["networks"])
    means = {a: np.asarray(g[f"mean/{a}"][:]) for a in names}
    return Blocks(names, int(g.attrs["n"]), means, g)


# -- fitting ------------------------------------------------------------------------
@dataclass
class LinearMap:
    """``f_B ≈ f_A @ weight + intercept``; weight [d_A, d_B], intercept [d_B]."""

    weight: np.ndarray
    intercept: np.ndarray
    attrs: dict

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight + self.intercept


def solve_from_blocks(s_aa: np.ndarray, s_ab: np.ndarray, alpha: float, eig=None) -> np.ndarray:
    """Ridge coefficients ``(S_AA + alpha I)^-1 S_AB`` through the eigendecomposition of ``S_AA``.

    ``eig`` = (w, V) from ``numpy.linalg.eigh(s_aa)`` may be passed to reuse one
    factorisation across targets and penalties.
    """
    w, v = np.linalg.eigh(s_aa) if eig is None else eig
    denom = w + alpha
    scale = max(float(w.max()), 1.0)
    if np.any(denom <= 1e-12 * scale):
        rank = int(np.sum(w > 1e-12 * scale))
        raise FitError(
            f"the source Gram matrix is singular (rank {rank} of {len(w)}) and alpha={alpha}; use alpha > 0"
        )
    return v @ ((v.T @ s_ab) / denom[:, None])


def fit_maps(blocks: Blocks, source: str, targets: list[str], alpha: float) -> dict[str, LinearMap]:
    """Fit the ridge maps from ``source`` to each target, sharing one ``eigh`` of the source Gram."""
    s_aa = blocks.gram(source, source)
    eig = np.linalg.eigh(s_aa)
    mu_a = blocks.means[source]
    out = {}
    for b in targets:
        s_ab = blocks.gram(source, b)
        m = solve_from_blocks(s_aa, s_ab, alpha, eig)
        c = blocks.means[b] - mu_a @ m
        s_bb_trace = float(np.trace(blocks.gram(b, b)))
        # residual sum of squares on the fit split, from the blocks alone
        rss = s_bb_trace - 2.0 * float(np.sum(m * s_ab)) + float(np.sum(m * (s_aa @ m)))
        r2 = 1.0 - rss / s_bb_trace if s_bb_trace > 0 else float("nan")
        out[b] = LinearMap(m, c, {"source": source, "target": b, "alpha": float(alpha), "n": blocks.n,
                                  "method": "ridge", "fit_r2": r2})
    return out


def analytic_map(cls_a: tuple, cls_b: tuple) -> LinearMap:
    """The paper's Theorem 3.2 map: ``f_B = pinv(C_B) (C_A f_A + b_A - b_B)``.

    ``cls_a`` and ``cls_b`` are (weight [class, feature], bias [class]). When
    ``C_B`` has full row rank the mapped features give exactly the source
    network's logits under B's classifier.
    """
    ca, ba = (np.asarray(t, dtype=np.float64) for t in cls_a)
    cb, bb = (np.asarray(t, dtype=np.float64) for t in cls_b)
    if ca.shape[0] != cb.shape[0]:
        raise FitError(f"classifiers have {ca.shape[0]} and {cb.shape[0]} classes; the analytic map needs equal")
    pinv_b = np.linalg.pinv(cb)
    full_rank = np.linalg.matrix_rank(cb) == cb.shape[0]
    return LinearMap(ca.T @ pinv_b.T, pinv_b @ (ba - bb), {"method": "analytic", "exact": bool(full_rank)})


def write_map(path, m: LinearMap, **attrs) -> None:
    """Store a map: ``weight`` [d_A, d_B], ``intercept`` [d_B], attributes with provenance."""
    with st.atomic_group(path) as g:
        g.create_array("weight", data=np.asarray(m.weight, np.float64),
                       dimension_names=["source_feature", "target_feature"])
        g.create_array("intercept", data=np.asarray(m.intercept, np.float64), dimension_names=["target_feature"])
        g.attrs.update({**m.attrs, "d_source": int(m.weight.shape[0]), "d_target": int(m.weight.shape[1]),
                        "convention": "f_target ≈ f_source @ weight + intercept", "created": st.now(),
                        "versions": st.versions(), **attrs})


def read_map(path) -> LinearMap:
    g = st.open_group(path, "map store")
    return LinearMap(np.asarray(g["weight"][:]), np.asarray(g["intercept"][:]), dict(g.attrs))
