"""Ridge maps between embedding spaces, fitted from shared cross-product blocks.

The paper's eq. 5 with an unpenalised intercept, for every ordered pair (A, B)::

    minimise  || X_A M + 1 c - X_B ||_F^2 + alpha ||M||_F^2

With centred data the solution is ``M = (S_AA + alpha I)^-1 S_AB`` and
``c = mean_B - mean_A M`` where ``S_AB = (X_A - mean_A)^T (X_B - mean_B)``.
Every ``S_AB`` of every pair is a block of one joint Gram matrix over the
concatenated features of all networks, so one streaming pass over the stores
gives every map.

The pass (:func:`cross_products`) cuts the fit split into *row blocks* of
``Layout.rows`` samples. Shard ``j`` of ``S`` (one Snakemake job) processes
the blocks ``b = j, j + S, j + 2S, ...`` with Dask over blocks; every block of
every store is read by exactly one shard. For K-fold cross-validation block
``b`` belongs to fold ``b mod K`` (sample ``i`` to fold ``(i // rows) mod K``),
and the pass keeps one set of blocks per fold, so when ``S`` is a multiple of
``K`` each shard touches one fold only. :func:`pool` combines the centred
blocks of disjoint sample sets exactly (shards into folds, folds into the
whole split); :func:`fit_maps` factors a source's Gram once (``eigh``) per
fold and once for the whole split, and reuses each factorisation for every
target and every penalty.

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

from . import stores as st

PASS_ROWS = 4096
PRECISIONS = ("float64", "float32")
CV_METRIC = ("1 - sum over folds of held-out squared error / sum over folds of held-out squared deviation "
             "from the fold's own mean (fraction of the target's held-out variance explained)")


class FitError(ValueError):
    """A map cannot be fitted as configured (singular system, bad blocks)."""


# -- how samples are cut into blocks, shards and folds ------------------------------------
@dataclass(frozen=True)
class Layout:
    """Row blocks of the fit split, their shards and their cross-validation folds.

    Block ``b`` holds samples ``[b * rows, min(n, (b + 1) * rows))``; shard ``j``
    of ``shards`` processes blocks ``b = j (mod shards)``; block ``b`` lies in
    fold ``b mod folds``.
    """

    n: int
    rows: int
    shards: int = 1
    folds: int = 1

    @property
    def n_blocks(self) -> int:
        return -(-self.n // self.rows)

    def blocks(self, shard: int) -> range:
        return range(shard, self.n_blocks, self.shards)

    def span(self, block: int) -> tuple[int, int]:
        return block * self.rows, min(self.n, (block + 1) * self.rows)

    def fold(self, block: int) -> int:
        return block % self.folds

    def fold_of(self, samples) -> np.ndarray:
        """Fold of each sample index: ``(i // rows) % folds``."""
        return (np.asarray(samples) // self.rows) % self.folds

    def folds_of_shard(self, shard: int) -> list[int]:
        return sorted({self.fold(b) for b in self.blocks(shard)})


def layout(n: int, shards: int = 1, folds: int = 1, rows: int = PASS_ROWS, align: int = 1) -> Layout:
    """The :class:`Layout` of ``n`` samples; every shard of a run computes the same one.

    With ``folds > 1`` blocks shrink (down to ``n // (4 folds)`` rows) so that
    every fold gets at least four blocks spread over the split. ``align``
    (the stores' chunk rows) rounds blocks down to whole chunks when they are
    at least one chunk long, so each chunk is read by one block.
    """
    n, shards, folds, rows = int(n), int(shards), int(folds), int(rows)
    if shards < 1 or folds < 1 or rows < 1:
        raise FitError(f"shards ({shards}), folds ({folds}) and rows ({rows}) must be at least 1")
    if folds > 1:
        if n < 2 * folds:
            raise FitError(f"{n} samples cannot be cut into {folds} cross-validation folds of 2 or more")
        rows = min(rows, max(1, n // (4 * folds)))
    if align > 1 and rows >= align:
        rows -= rows % align
    return Layout(n, rows, shards, folds)


def pass_layout(arrays: dict, shards: int = 1, folds: int = 1, chunk_rows: int = PASS_ROWS) -> Layout:
    """The :func:`layout` of a pass over ``arrays``, aligned to the first array's stored chunks."""
    first = next(iter(arrays.values()))
    native = getattr(first, "chunks", None)
    return layout(first.shape[0], shards, folds, chunk_rows, align=int(native[0]) if native else 1)


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


def _pool_block(parts: list[Blocks], a: str, b: str, means: dict, grams: list | None = None) -> np.ndarray:
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

    return Blocks(names, dims, n, means, lambda a, b: _pool_block(parts, a, b, means), folds or [],
                  attrs or {}, diag)


def _empty(names, dims) -> Blocks:
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
            return _empty(names, self.dims)
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
        return _empty(names, dims)
    shifts = [x[:PASS_ROWS].mean(axis=0, dtype=np.float64).astype(dtype) for x in xs]
    acc = _Accumulator(dims, [sh.astype(np.float64) for sh in shifts])
    acc.add([np.ascontiguousarray(np.subtract(x, sh, dtype=dtype)) for x, sh in zip(xs, shifts)], dtype)
    return acc.centred(names, {"precision": precision})


def cross_products(arrays: dict, shard: int = 0, shards: int = 1, folds: int = 1, chunk_rows: int = PASS_ROWS,
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
    chunk_rows : int
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
    lay = pass_layout(arrays, shards, folds, chunk_rows)
    if not 0 <= shard < lay.shards:
        raise FitError(f"shard {shard} of {lay.shards} does not exist")
    mine = list(lay.blocks(shard))
    attrs = {"n_total": n, "fold_rows": lay.rows, "folds": lay.folds, "shard": shard, "shards": lay.shards,
             "precision": precision, "blocks_read": len(mine)}
    if not mine:
        return Blocks(names, dims, 0, {}, lambda a, b: None, [_empty(names, dims)] * (folds if folds > 1 else 0),
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
    per_fold = [acc[f].centred(names, {}) if f in acc else _empty(names, dims) for f in range(lay.folds)]
    return pool(per_fold, folds=per_fold, attrs=attrs)


def _read_rows(array, lo: int, hi: int) -> np.ndarray:
    """Rows ``[lo, hi)`` as a C-ordered float32 array owned by the caller (it is shifted in place)."""
    x = array[lo:hi]
    if isinstance(array, np.ndarray):  # a view into the caller's array: copy
        return np.array(x, dtype=np.float32, order="C")
    return np.ascontiguousarray(x, dtype=np.float32)  # zarr returns a fresh array


# -- block stores ----------------------------------------------------------------------
def write_blocks(path, blocks: Blocks, full: bool = True, **attrs) -> None:
    """Store blocks one pair at a time (memory: a few blocks).

    Layout: ``mean/{A}`` [d_A], ``gram/{A}/{B}`` [d_A, d_B] for A at or before
    B, ``sumsq/{A}`` [d_A] (the diagonal of ``gram/{A}/{A}``); with folds the
    same under ``folds/{k}/`` for each fold with samples. ``full=False``
    writes only the folds (shard partials, whose whole is their pool).
    Gram blocks are stored uncompressed: float64 products do not compress.
    """
    folds = blocks.folds
    parts = [f for f in folds if f.n > 0]
    full = (full or not folds) and blocks.n > 0  # an empty shard writes its attributes only
    with st.atomic_group(path) as g:
        if full:
            for a, m in blocks.means.items():
                g.create_array(f"mean/{a}", data=m, dimension_names=[f"{a}_feature"])
        for k, f in enumerate(folds):
            for a, m in (f.means.items() if f.n else ()):
                g.create_array(f"folds/{k}/mean/{a}", data=m, dimension_names=[f"{a}_feature"])
        for a, b in blocks.pairs():
            dn = [f"{a}_feature", f"{b}_feature"]
            grams = []
            for k, f in enumerate(folds):
                if f.n:
                    grams.append(f.read(a, b))
                    g.create_array(f"folds/{k}/gram/{a}/{b}", data=grams[-1], dimension_names=dn, compressors=None)
                    if a == b:
                        g.create_array(f"folds/{k}/sumsq/{a}", data=np.diag(grams[-1]).copy(), dimension_names=dn[:1])
            if full:
                s = _pool_block(parts, a, b, blocks.means, grams) if folds else blocks.read(a, b)
                g.create_array(f"gram/{a}/{b}", data=s, dimension_names=dn, compressors=None)
                if a == b:
                    g.create_array(f"sumsq/{a}", data=np.diag(s).copy(), dimension_names=dn[:1])
            del grams
        g.attrs.update({**blocks.attrs, "networks": list(blocks.names), "dims": list(blocks.dims), "n": int(blocks.n),
                        "folds": max(1, len(folds)), "fold_n": [int(f.n) for f in folds], "created": st.now(),
                        "convention": "gram/A/B = (X_A - mean_A)^T (X_B - mean_B) over the samples, A at or "
                                      "before B in the order of 'networks'",
                        **({"fold_convention": "sample i (row of the fit split) is in fold (i // fold_rows) % folds; "
                                               "folds/k/ holds fold k's blocks centred on its own mean"}
                           if folds else {}),
                        **attrs})


def open_blocks(path) -> Blocks:
    """Blocks of a block store (or of a shard partial, whose whole is pooled from its folds)."""
    g = st.open_group(path, "block store")
    names, dims = list(g.attrs["networks"]), [int(d) for d in g.attrs["dims"]]
    attrs = dict(g.attrs)

    def stored(prefix: str, n: int) -> Blocks:
        if n == 0:
            return _empty(names, dims)
        means = {a: np.asarray(g[f"{prefix}mean/{a}"][:]) for a in names}
        diag = ((lambda a: np.asarray(g[f"{prefix}sumsq/{a}"][:])) if f"{prefix}sumsq" in g else None)
        return Blocks(names, dims, n, means, lambda a, b: np.asarray(g[f"{prefix}gram/{a}/{b}"][:]), attrs=attrs,
                      diag=diag)

    fold_n = [int(v) for v in attrs.get("fold_n", [])]
    folds = [stored(f"folds/{k}/", nk) for k, nk in enumerate(fold_n)]
    if int(attrs["n"]) == 0:  # a shard with no rows
        return Blocks(names, dims, 0, {}, lambda a, b: None, folds, attrs)
    if "gram" in g:
        whole = stored("", int(attrs["n"]))
        whole.folds = folds
        return whole
    return pool(folds, folds=folds, attrs=attrs)


def reduce_partials(paths: list, output, **attrs) -> Blocks:
    """Pool the shard partials of one pass into the block store at ``output``.

    Checks that the partials come from one layout and cover every shard once,
    so that a store with missing or foreign shards is never written.
    """
    parts = [open_blocks(p) for p in paths]
    if not parts:
        raise FitError("no shard partials to reduce")
    a0 = parts[0].attrs
    keys = ("networks", "dims", "n_total", "fold_rows", "folds", "shards", "precision")
    for p, path in zip(parts, paths):
        diff = [k for k in keys if p.attrs.get(k) != a0.get(k)]
        if diff:
            raise FitError(f"shard partial {path}: {', '.join(diff)} differ from {paths[0]}; the partials are not "
                           "from one pass, re-run the pass")
    shards = sorted(int(p.attrs["shard"]) for p in parts)
    if shards != list(range(int(a0["shards"]))):
        raise FitError(f"shard partials {shards} do not cover shards 0..{int(a0['shards']) - 1} once each")
    n = sum(p.n for p in parts)
    if n != int(a0["n_total"]):
        raise FitError(f"shard partials hold {n} samples, the fit split has {a0['n_total']}")
    info = {k: a0[k] for k in ("fold_rows", "shards", "precision", "n_total")}
    if int(a0["folds"]) > 1:
        folds = [pool([p.folds[k] for p in parts]) for k in range(int(a0["folds"]))]
        merged = pool(folds, folds=folds, attrs=info)
    else:
        merged = pool(parts, attrs=info)
    write_blocks(output, merged, **attrs)
    return merged


# -- fitting ------------------------------------------------------------------------
@dataclass
class LinearMap:
    """``f_B ≈ f_A @ weight + intercept``; weight [d_A, d_B], intercept [d_B]."""

    weight: np.ndarray
    intercept: np.ndarray
    attrs: dict

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight + self.intercept


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


def alphas_of(alpha) -> list[float]:
    """The candidate penalties of a ``mapping.alpha`` value (a number or a list)."""
    values = [float(a) for a in (alpha if isinstance(alpha, (list, tuple, np.ndarray)) else [alpha])]
    if not values or any(not np.isfinite(a) or a < 0 for a in values):
        raise FitError(f"alpha {alpha!r}: give a number >= 0 or a non-empty list of them")
    return values


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
            for i, alpha in enumerate(alphas):
                if _singular(w, alpha):
                    rss[b][i] = np.nan
                    continue
                h = 1.0 / (w + alpha)
                uh = u * h
                # held-out residual mean: dy - u q; its squared norm, expanded
                shift2 = float(dy @ dy) - 2.0 * float(uh @ py) + float(uh @ pp @ uh)
                rss[b][i] += tk - 2.0 * float(h @ pr) + float(h @ tpp @ h) + nk * shift2
    return {b: 1.0 - rss[b] / tss[b] if tss[b] > 0 else np.full(len(alphas), np.nan) for b in targets}


def choose_alpha(alphas: list[float], scores: np.ndarray) -> float:
    """The penalty with the best held-out score; ties go to the larger penalty."""
    ok = [i for i, s in enumerate(scores) if np.isfinite(s)]
    if not ok:
        raise FitError(f"no alpha in {alphas} gives a solvable system on every fold; use larger alphas")
    return alphas[max(ok, key=lambda i: (scores[i], alphas[i]))]


def fit_maps(blocks: Blocks, source: str, targets: list[str], alpha) -> dict[str, LinearMap]:
    """Fit the ridge maps from ``source`` to each target, sharing one ``eigh`` of the source Gram.

    ``alpha`` is a number, or a list chosen per target by K-fold
    cross-validation on the blocks' folds (:func:`cross_validate`); the map
    attributes then hold ``alphas``, ``cv_score`` (one per alpha), ``cv_folds``
    and ``cv_metric`` beside the chosen ``alpha``.
    """
    alphas = alphas_of(alpha)
    scores = cross_validate(blocks, source, targets, alphas) if len(alphas) > 1 else None
    w, v = np.linalg.eigh(blocks.gram(source, source))
    mu_a = blocks.means[source]
    out = {}
    for b in targets:
        chosen = choose_alpha(alphas, scores[b]) if scores is not None else alphas[0]
        p = v.T @ blocks.gram(source, b)
        q = _solve_eig(w, p, chosen)
        m = v @ q
        c = blocks.means[b] - mu_a @ m
        s_bb_trace = float(blocks.sumsq(b).sum())
        # residual sum of squares on the fit split, from the blocks alone (in the eigenbasis of S_AA:
        # tr(M' S_AB) = sum(q * p), tr(M' S_AA M) = sum(w q^2))
        rss = s_bb_trace - 2.0 * float(np.sum(q * p)) + float(np.sum(w[:, None] * q * q))
        r2 = 1.0 - rss / s_bb_trace if s_bb_trace > 0 else float("nan")
        attrs = {"source": source, "target": b, "alpha": float(chosen), "n": blocks.n, "method": "ridge",
                 "fit_r2": r2}
        if scores is not None:
            attrs.update({"alphas": alphas, "cv_score": [None if not np.isfinite(s) else float(s) for s in scores[b]],
                          "cv_folds": len(blocks.folds), "cv_metric": CV_METRIC})
        out[b] = LinearMap(m, c, attrs)
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
    """Store a map: ``weight`` [d_A, d_B], ``intercept`` [d_B], attributes with provenance.

    ``weight`` is stored uncompressed (float64 coefficients do not compress).
    """
    if "versions" not in attrs:  # callers writing many maps pass it once
        attrs["versions"] = st.versions()
    with st.atomic_group(path) as g:
        g.create_array("weight", data=np.asarray(m.weight, np.float64), compressors=None,
                       dimension_names=["source_feature", "target_feature"])
        g.create_array("intercept", data=np.asarray(m.intercept, np.float64), dimension_names=["target_feature"])
        g.attrs.update({**m.attrs, "d_source": int(m.weight.shape[0]), "d_target": int(m.weight.shape[1]),
                        "convention": "f_target ≈ f_source @ weight + intercept", "created": st.now(), **attrs})


def read_map(path) -> LinearMap:
    g = st.open_group(path, "map store")
    return LinearMap(np.asarray(g["weight"][:]), np.asarray(g["intercept"][:]), dict(g.attrs))
