"""The one pass: centred cross products of every pair of networks over the fit split, in row blocks.

Every ridge map A -> B needs only ``S_AA``, ``S_AB`` and the means, and every
such ``S_AB`` is a block of one joint Gram matrix over the concatenated
features of all networks; so one streaming pass over the stores gives every
map (:mod:`.ridge` solves them).

:func:`cross_products` cuts the fit split into *row blocks* of
``Layout.block_rows`` samples. Shard ``j`` of ``S`` (one Snakemake job)
processes the blocks ``b = j, j + S, j + 2S, ...`` with Dask over blocks;
every block of every store is read by exactly one shard. For K-fold
cross-validation block ``b`` belongs to fold ``b mod K`` (sample ``i`` to
fold ``(i // block_rows) mod K``), and the pass keeps one set of blocks per
fold, so when ``S`` is a multiple of ``K`` each shard touches one fold only.
:func:`pool` combines the centred blocks of disjoint sample sets exactly
(shards into folds, folds into the whole split; :func:`reduce` checks and
pools a pass's shard partials).

Numerics: inside a shard each network's features are shifted by the mean of
the shard's first block before the products (float64 by default, float32 on
request); products are summed over blocks in float64 and centred exactly at
the end (``S = G - s s^T / n``). Shards and folds are combined from their own
means (:func:`pool`), so they need no common shift. Products are formed per
pair of networks (``syrk`` on the diagonal, ``gemm`` above it), the work of
one symmetric product of the joint feature matrix, and only the upper
triangle of blocks is kept.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.linalg import blas

from . import FitError

BLOCK_ROWS = 4096  # samples per row block of the pass (rounded down to whole store chunks)
PRECISIONS = ("float64", "float32")


# -- how samples are cut into blocks, shards and folds ------------------------------------
@dataclass(frozen=True)
class Layout:
    """Row blocks of the fit split, their shards and their cross-validation folds.

    Block ``b`` holds samples ``[b * block_rows, min(n, (b + 1) * block_rows))``;
    shard ``j`` of ``shards`` processes blocks ``b = j (mod shards)``; block
    ``b`` lies in fold ``b mod folds``.
    """

    n: int
    block_rows: int
    shards: int = 1
    folds: int = 1

    @property
    def n_blocks(self) -> int:
        return -(-self.n // self.block_rows)

    def blocks(self, shard: int) -> range:
        return range(shard, self.n_blocks, self.shards)

    def span(self, block: int) -> tuple[int, int]:
        return block * self.block_rows, min(self.n, (block + 1) * self.block_rows)

    def fold(self, block: int) -> int:
        return block % self.folds

    def fold_of(self, samples) -> np.ndarray:
        """Fold of each sample index: ``(i // block_rows) % folds``."""
        return (np.asarray(samples) // self.block_rows) % self.folds

    def folds_of_shard(self, shard: int) -> list[int]:
        return sorted({self.fold(b) for b in self.blocks(shard)})


def layout(n: int, shards: int = 1, folds: int = 1, block_rows: int = BLOCK_ROWS, chunk_rows: int = 1) -> Layout:
    """The :class:`Layout` of ``n`` samples; every shard of a run computes the same one.

    With ``folds > 1`` blocks shrink (down to ``n // (4 folds)`` rows) so that
    every fold gets at least four blocks spread over the split. Blocks are
    rounded down to whole store chunks (``chunk_rows``) when they are at least
    one chunk long, so each chunk is read by one block.
    """
    n, shards, folds, rows = int(n), int(shards), int(folds), int(block_rows)
    if shards < 1 or folds < 1 or rows < 1:
        raise FitError(f"shards ({shards}), folds ({folds}) and block_rows ({rows}) must be at least 1")
    if folds > 1:
        if n < 2 * folds:
            raise FitError(f"{n} samples cannot be cut into {folds} cross-validation folds of 2 or more")
        rows = min(rows, max(1, n // (4 * folds)))
    if chunk_rows > 1 and rows >= chunk_rows:
        rows -= rows % chunk_rows
    return Layout(n, rows, shards, folds)


def pass_layout(arrays: dict, shards: int = 1, folds: int = 1, block_rows: int = BLOCK_ROWS) -> Layout:
    """The :func:`layout` of a pass over ``arrays``, aligned to the first array's stored chunks."""
    first = next(iter(arrays.values()))
    native = getattr(first, "chunks", None)
    return layout(first.shape[0], shards, folds, block_rows, chunk_rows=int(native[0]) if native else 1)


# -- centred cross-product blocks -------------------------------------------------------
@dataclass
class Blocks:
    """Centred cross products of several networks over one set of samples.

    ``read(a, b)`` returns float64 [d_a, d_b] = (X_a - mean_a)^T (X_b - mean_b)
    for ``a`` at or before ``b`` in ``names`` order (:meth:`gram` takes either
    order). ``folds`` holds the same for each cross-validation fold (empty
    without folds). Reads are lazy: stored blocks come from disk and pooled
    blocks are combined when asked for, one block at a time.
    """

    names: list
    dims: list
    n: int
    means: dict
    read: Callable
    folds: list = field(default_factory=list)
    attrs: dict = field(default_factory=dict)
    diag: Callable | None = None

    def gram(self, a: str, b: str) -> np.ndarray:
        if self.names.index(a) <= self.names.index(b):
            return self.read(a, b)
        return self.read(b, a).T

    def sumsq(self, a: str) -> np.ndarray:
        """Diagonal of ``gram(a, a)``: per-feature sums of squared deviations, float64 [d_a]."""
        return self.diag(a) if self.diag is not None else np.diag(self.read(a, a)).copy()

    def pairs(self) -> list[tuple[str, str]]:
        return [(a, b) for i, a in enumerate(self.names) for b in self.names[i:]]

    def dim(self, a: str) -> int:
        return self.dims[self.names.index(a)]


def pool_block(parts: list[Blocks], a: str, b: str, means: dict, grams: list | None = None) -> np.ndarray:
    """``sum_k S_k + sum_k n_k (m_k,a - m_a)(m_k,b - m_b)^T``: exact for disjoint sample sets."""
    grams = [p.read(a, b) for p in parts] if grams is None else grams
    out = np.array(grams[0], dtype=np.float64, copy=True)
    for g in grams[1:]:
        out += g
    for p in parts:
        out += p.n * np.outer(p.means[a] - means[a], p.means[b] - means[b])
    return out


def pool(parts: list[Blocks], folds: list | None = None, attrs: dict | None = None) -> Blocks:
    """Blocks of the union of disjoint sample sets, from each set's own blocks (Chan et al.'s update).

    Lazy: each block is combined when read. Empty parts are skipped.
    """
    parts = [p for p in parts if p.n > 0]
    if not parts:
        raise FitError("no samples to pool")
    names, dims = parts[0].names, parts[0].dims
    for p in parts[1:]:
        if p.names != names or p.dims != dims:
            raise FitError(f"blocks of networks {p.names} {p.dims} cannot be pooled with {names} {dims}")
    n = sum(p.n for p in parts)
    means = {a: sum(p.n * p.means[a] for p in parts) / n for a in names}

    def diag(a):
        return sum(p.sumsq(a) for p in parts) + sum(p.n * (p.means[a] - means[a]) ** 2 for p in parts)

    return Blocks(names, dims, n, means, lambda a, b: pool_block(parts, a, b, means), folds or [],
                  attrs or {}, diag)


def empty_blocks(names, dims) -> Blocks:
    return Blocks(list(names), list(dims), 0, {}, lambda a, b: None)


# -- the one pass ---------------------------------------------------------------------
class _Accumulator:
    """Shifted cross products of one fold, summed in float64: upper blocks, column sums, count."""

    def __init__(self, dims: list[int], shifts: list[np.ndarray]):
        self.dims, self.shifts = dims, shifts
        self.n = 0
        self.sums = [np.zeros(d) for d in dims]
        self.grams = {(i, j): np.zeros((dims[i], dims[j]), order="F")
                      for i in range(len(dims)) for j in range(i, len(dims))}

    def add(self, xs: list[np.ndarray], dtype) -> None:
        """Add one block: ``xs[k]`` [rows, d_k] already shifted, C-ordered, in ``dtype``."""
        self.n += len(xs[0])
        for k, x in enumerate(xs):
            self.sums[k] += x.sum(axis=0, dtype=np.float64)
        double = dtype == np.float64
        for (i, j), g in self.grams.items():
            # x.T of a C-ordered [rows, d] block is Fortran-ordered: BLAS reads it without a copy
            if i == j:
                if double:
                    self.grams[i, j] = blas.dsyrk(1.0, xs[i].T, beta=1.0, c=g, trans=0, lower=0, overwrite_c=1)
                else:
                    g += blas.ssyrk(1.0, xs[i].T, trans=0, lower=0)
            elif double:
                self.grams[i, j] = blas.dgemm(1.0, xs[i].T, xs[j].T, beta=1.0, c=g, trans_b=1, overwrite_c=1)
            else:
                g += blas.sgemm(1.0, xs[i].T, xs[j].T, trans_b=1)

    def centred(self, names: list[str], attrs: dict) -> Blocks:
        """Means and blocks centred exactly on this fold's own mean."""
        if self.n == 0:
            return empty_blocks(names, self.dims)
        for k, a in enumerate(names):
            if not np.isfinite(self.sums[k]).all() or not np.isfinite(np.diag(self.grams[k, k])).all():
                raise FitError(f"network {a!r}: non-finite values in its features (NaN or inf) over the fit split")
        n, s = self.n, self.sums
        means = {a: self.shifts[k] + s[k] / n for k, a in enumerate(names)}
        blocks = {}
        for (i, j), g in self.grams.items():  # in place: no second copy of the accumulator
            g -= np.outer(s[i] / n, s[j])
            if i == j:  # syrk fills the upper triangle only
                lower = np.tril_indices(len(g), -1)
                g[lower] = g.T[lower]
            blocks[names[i], names[j]] = g
        self.grams = None
        for a in names:
            spread = np.diag(blocks[a, a])
            scale = float(np.abs(means[a]).max()) ** 2 * n + 1e-300
            if not np.any(spread > 1e-12 * scale):
                raise FitError(f"network {a!r}: every feature is constant over the fit split ({n} samples); "
                               "its embedding carries nothing to map")
        return Blocks(list(names), list(self.dims), n, means, lambda a, b: blocks[a, b], attrs=attrs)


def blocks_in_memory(features: dict, precision: str = "float64") -> Blocks:
    """Centred blocks of features held in memory, ``features[name]`` [n, d_name] (e.g. one open-set fold).

    The same arithmetic as one block of :func:`cross_products`; :func:`pool`
    combines such blocks of disjoint sample sets.
    """
    if precision not in PRECISIONS:
        raise FitError(f"precision {precision!r}: use one of {PRECISIONS}")
    dtype = np.dtype(precision)
    names = list(features)
    xs = [np.asarray(features[k]) for k in names]
    dims = [int(x.shape[1]) for x in xs]
    if len(xs[0]) == 0:
        return empty_blocks(names, dims)
    shifts = [x[:BLOCK_ROWS].mean(axis=0, dtype=np.float64).astype(dtype) for x in xs]
    acc = _Accumulator(dims, [sh.astype(np.float64) for sh in shifts])
    acc.add([np.ascontiguousarray(np.subtract(x, sh, dtype=dtype)) for x, sh in zip(xs, shifts)], dtype)
    return acc.centred(names, {"precision": precision})


def cross_products(arrays: dict, shard: int = 0, shards: int = 1, folds: int = 1, block_rows: int = BLOCK_ROWS,
                   precision: str = "float64", num_workers: int | None = None) -> Blocks:
    """Centred joint cross products of all networks over one shard of the samples, in one pass.

    Parameters
    ----------
    arrays : dict name -> array-like [n, d_name]
        Zarr arrays (or anything sliceable) with the same samples in the same
        order; read through Dask one row block at a time, each block once.
    shard, shards : int
        This job processes shard ``shard`` of ``shards`` (see :class:`Layout`).
    folds : int
        Cross-validation folds to keep blocks for (1 = none).
    block_rows : int
        Samples per row block (a Dask task); smaller with folds, see :func:`layout`.
    precision : {"float64", "float32"}
        Arithmetic of the per-block products; sums over blocks are float64.
        ``float32`` halves the time; its rounding (about 1e-7 of each entry,
        relative to the shifted features) is amplified by the condition number
        of ``S_AA + alpha I`` in the coefficients.
    num_workers : int, optional
        Dask threads (reading and decompressing overlap the products).

    Returns
    -------
    :class:`Blocks` of the shard's samples; with ``folds > 1`` its ``folds``
    hold one :class:`Blocks` per fold (``n = 0`` for folds the shard does not
    touch) and the shard's own blocks pool them lazily. ``attrs`` records the
    layout, the shifts and the precision.
    """
    import dask

    if precision not in PRECISIONS:
        raise FitError(f"precision {precision!r}: use one of {PRECISIONS}")
    dtype = np.dtype(precision)
    names = list(arrays)
    n = int(arrays[names[0]].shape[0])
    for k in names:
        if arrays[k].ndim != 2 or arrays[k].shape[0] != n:
            raise FitError(f"network {k!r}: features of shape {arrays[k].shape}, network {names[0]!r} has {n} samples")
    dims = [int(arrays[k].shape[1]) for k in names]
    lay = pass_layout(arrays, shards, folds, block_rows)
    if not 0 <= shard < lay.shards:
        raise FitError(f"shard {shard} of {lay.shards} does not exist")
    mine = list(lay.blocks(shard))
    attrs = {"n_total": n, "block_rows": lay.block_rows, "folds": lay.folds, "shard": shard, "shards": lay.shards,
             "precision": precision, "blocks_read": len(mine)}
    if not mine:
        return Blocks(names, dims, 0, {}, lambda a, b: None, [empty_blocks(names, dims)] * (folds if folds > 1 else 0),
                      attrs)

    def shifted(block_rows: list[np.ndarray], shifts) -> list[np.ndarray]:
        """Rows minus the shift in ``dtype``; float32 rows freshly read are shifted in place."""
        out = []
        for x, s in zip(block_rows, shifts):
            if dtype == np.float32:
                x -= s.astype(np.float32)  # exact: s holds float32 values
                out.append(x)
            else:
                out.append(np.subtract(x, s, dtype=np.float64))
        return out

    # the shard's first block sets the shift and is accumulated at once: nothing is read twice
    s0, e0 = lay.span(mine[0])
    first = [_read_rows(arrays[k], s0, e0) for k in names]
    # in the products' precision, so that the recorded shift is exactly the one subtracted
    shifts = [x.mean(axis=0, dtype=np.float64).astype(dtype).astype(np.float64) for x in first]
    attrs["shift_rows"] = [s0, e0]
    acc = {f: _Accumulator(dims, shifts) for f in lay.folds_of_shard(shard)}
    lock = threading.Lock()
    acc[lay.fold(mine[0])].add(shifted(first, shifts), dtype)
    del first

    def add(block: int) -> None:
        # one task reads its own block: at most num_workers blocks are in memory, whatever n
        lo, hi = lay.span(block)
        xs = shifted([_read_rows(arrays[k], lo, hi) for k in names], shifts)
        with lock:  # BLAS is threaded itself; the lock serialises updates of the accumulators
            acc[lay.fold(block)].add(xs, dtype)

    if len(mine) > 1:
        tasks = [dask.delayed(add, pure=False)(b) for b in mine[1:]]
        dask.compute(*tasks, scheduler="threads", num_workers=num_workers)
    attrs["shifts"] = {a: s.tolist() for a, s in zip(names, shifts)}
    if folds == 1:
        return acc[0].centred(names, attrs)
    per_fold = [acc[f].centred(names, {}) if f in acc else empty_blocks(names, dims) for f in range(lay.folds)]
    return pool(per_fold, folds=per_fold, attrs=attrs)


def _read_rows(array, lo: int, hi: int) -> np.ndarray:
    """Rows ``[lo, hi)`` as a C-ordered float32 array owned by the caller (it is shifted in place)."""
    x = array[lo:hi]
    if isinstance(array, np.ndarray):  # a view into the caller's array: copy
        return np.array(x, dtype=np.float32, order="C")
    return np.ascontiguousarray(x, dtype=np.float32)  # zarr returns a fresh array


def reduce(parts: list[Blocks], names: list[str] | None = None) -> Blocks:
    """Pool the shard partials of one pass (opened :class:`Blocks`) into the blocks of the whole split.

    Checks that the partials come from one layout and cover every shard once,
    so that blocks with missing or foreign shards are never pooled.
    ``names`` labels the partials in messages (their paths).
    """
    if not parts:
        raise FitError("no shard partials to reduce")
    names = names or [f"partial {i}" for i in range(len(parts))]
    a0 = parts[0].attrs
    keys = ("networks", "dims", "n_total", "block_rows", "folds", "shards", "precision")
    for p, name in zip(parts, names):
        diff = [k for k in keys if p.attrs.get(k) != a0.get(k)]
        if diff:
            raise FitError(f"shard partial {name}: {', '.join(diff)} differ from {names[0]}; the partials are not "
                           "from one pass, re-run the pass")
    shards = sorted(int(p.attrs["shard"]) for p in parts)
    if shards != list(range(int(a0["shards"]))):
        raise FitError(f"shard partials {shards} do not cover shards 0..{int(a0['shards']) - 1} once each")
    n = sum(p.n for p in parts)
    if n != int(a0["n_total"]):
        raise FitError(f"shard partials hold {n} samples, the fit split has {a0['n_total']}")
    info = {k: a0[k] for k in ("block_rows", "shards", "precision", "n_total")}
    if int(a0["folds"]) > 1:
        folds = [pool([p.folds[k] for p in parts]) for k in range(int(a0["folds"]))]
        return pool(folds, folds=folds, attrs=info)
    return pool(parts, attrs=info)
