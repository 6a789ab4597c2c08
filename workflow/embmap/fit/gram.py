"""The one pass: centred cross products of every pair of networks over the fit split, in row blocks.

Every ridge map A -> B needs only ``S_AA``, ``S_AB`` and the means, and every
such ``S_AB`` is a block of one joint Gram matrix over the concatenated
features of all networks; so one streaming pass over the stores gives every
map (:mod:`.ridge` solves them).

:func:`cross_products` cuts the fit split into *row blocks* of
``Layout.block_rows`` samples. Shard ``j`` of ``S`` (one Snakemake job)
processes the blocks ``b = j, j + S, j + 2S, ...`` as a Dask task graph
(:func:`pass_graph`, run where the config's ``engine`` says,
:mod:`embmap.engine`): each block's products are cut into tiles, and each
tile's sum over the blocks is a chain of tasks in the order of the split, so
the result does not depend on the scheduler, the threads or the order tasks
finish; every block of every store is read by exactly one shard. For K-fold
cross-validation block ``b`` belongs to fold ``b mod K`` (sample ``i`` to
fold ``(i // block_rows) mod K``), and the pass keeps one set of blocks per
fold, so when ``S`` is a multiple of ``K`` each shard touches one fold only.
:func:`~.blocks.pool` combines the centred blocks of disjoint sample sets exactly
(shards into folds, folds into the whole split; :func:`reduce` checks and
pools a pass's shard partials).

Numerics: inside a shard each network's features are shifted by the mean of
the shard's first block before the products (float64 by default, float32 on
request); products are summed over blocks in float64 and centred exactly at
the end (``S = G - s s^T / n``). Shards and folds are combined from their own
means (:func:`~.blocks.pool`), so they need no common shift. Products are formed per
row panel of networks (``syrk`` on its diagonal part, ``gemm`` past it), the work of
one symmetric product of the joint feature matrix, and only the upper
triangle of blocks is kept.

Squared norms (for debiased CKA, :class:`~.blocks.Norms`): beside the
products each block adds ``Q += a^T a`` and ``U += a^T (z - c)``, with
``a`` [rows, N] the rows' squared norms per network measured from the
shard's shift ``c`` (``a_i^A = ||x_i^A - c_A||^2``), in float64 from the
rows as read whatever the products' precision, in a fixed order on one
thread: O(rows D N) per block beside the Gram's O(rows D^2). Folds and
prefixes of a shard share its shift, so they pool by adding; shards have
shifts of their own and :func:`reduce` moves every shard to the first
shard's before adding (:func:`~.blocks.reframe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import FitError
from .blocks import Blocks, Norms, empty_blocks, pool, pool_block  # noqa: F401 (the pass's results, pooled by reduce)

BLOCK_ROWS = 4096  # samples per row block of the pass (rounded down to whole store chunks)
PRECISIONS = ("float64", "float32")


# -- how samples are cut into blocks, shards and folds ------------------------------------
@dataclass(frozen=True)
class Layout:
    """Row blocks of the fit split, their shards, their cross-validation folds and the prefix cuts.

    Block ``b`` holds samples ``[b * block_rows, min(n, (b + 1) * block_rows))``;
    shard ``j`` of ``shards`` processes blocks ``b = j (mod shards)``; block
    ``b`` lies in fold ``b mod folds``. ``sample_sizes`` (nested prefixes of
    the split, for sample-efficiency curves) cut the blocks they fall in into
    *pieces*, so that every piece lies wholly inside or outside each prefix.
    """

    n: int
    block_rows: int
    shards: int = 1
    folds: int = 1
    sample_sizes: tuple = ()

    @property
    def n_blocks(self) -> int:
        return -(-self.n // self.block_rows)

    def blocks(self, shard: int) -> range:
        return range(shard, self.n_blocks, self.shards)

    def span(self, block: int) -> tuple[int, int]:
        return block * self.block_rows, min(self.n, (block + 1) * self.block_rows)

    def pieces(self, shard: int) -> list[tuple[int, int, int]]:
        """(lo, hi, fold) of the shard's rows in order: its blocks, cut at the sample sizes."""
        out = []
        for b in self.blocks(shard):
            lo, hi = self.span(b)
            cuts = [m for m in self.sample_sizes if lo < m < hi]
            for a, z in zip([lo, *cuts], [*cuts, hi]):
                out.append((a, z, self.fold(b)))
        return out

    def fold(self, block: int) -> int:
        return block % self.folds

    def fold_of(self, samples) -> np.ndarray:
        """Fold of each sample index: ``(i // block_rows) % folds``."""
        return (np.asarray(samples) // self.block_rows) % self.folds

    def folds_of_shard(self, shard: int) -> list[int]:
        return sorted({self.fold(b) for b in self.blocks(shard)})


def layout(n: int, shards: int = 1, folds: int = 1, block_rows: int = BLOCK_ROWS, chunk_rows: int = 1,
           sample_sizes=()) -> Layout:
    """The :class:`Layout` of ``n`` samples; every shard of a run computes the same one.

    With ``folds > 1`` blocks shrink (down to ``n // (4 folds)`` rows) so that
    every fold gets at least four blocks spread over the split. Blocks are
    rounded down to whole store chunks (``chunk_rows``) when they are at least
    one chunk long, so each chunk is read by one block. ``sample_sizes`` must
    lie in ``(0, n)``.
    """
    n, shards, folds, rows = int(n), int(shards), int(folds), int(block_rows)
    if shards < 1 or folds < 1 or rows < 1:
        raise FitError(f"shards ({shards}), folds ({folds}) and block_rows ({rows}) must be at least 1")
    sizes = tuple(sorted({int(m) for m in sample_sizes}))
    if sizes and not 0 < sizes[0] <= sizes[-1] < n:
        raise FitError(f"sample sizes {list(sizes)} must lie between 1 and the fit split's {n} samples (exclusive)")
    if folds > 1:
        if n < 2 * folds:
            raise FitError(f"{n} samples cannot be cut into {folds} cross-validation folds of 2 or more")
        rows = min(rows, max(1, n // (4 * folds)))
    if chunk_rows > 1 and rows >= chunk_rows:
        rows -= rows % chunk_rows
    return Layout(n, rows, shards, folds, sizes)


LARGE_FLOPS = 1e14  # a pass above this many flops (about 10 minutes at 200 GFLOP/s) is announced as a warning
LARGE_BYTES = 20e9  # likewise a block store above this many bytes


def pass_cost(dims: list[int], n: int, folds: int = 1, prefixes: int = 0) -> dict:
    """What a pass over nodes of ``dims`` features and ``n`` samples costs, before it runs.

    ``flops`` = ``n D (D + 1)``: the upper triangle of the joint Gram matrix,
    ``D = sum(dims)``, two flops per multiply-add (the tiles compute 1-6%
    more, :func:`_tiles`); ``block_bytes``: the block store, float64 upper
    triangle ``8 sum_{a <= b} d_a d_b`` per set of blocks kept (the whole
    split, each of ``folds`` folds when there are two or more, each of
    ``prefixes`` sample sizes); ``memory_bytes``: one shard's accumulators,
    ``4 D^2`` bytes (one upper triangle in float64) per fold it touches.
    Both grow with the square of the total dimension, so layers cost far more
    than their share of features. ``large`` is true above :data:`LARGE_FLOPS`
    or :data:`LARGE_BYTES`; ``text`` says it all in one line.
    """
    dims = [int(d) for d in dims]
    total = sum(dims)
    upper = (total * total + sum(d * d for d in dims)) // 2  # sum over a <= b of d_a d_b
    sets = 1 + (int(folds) if folds > 1 else 0) + int(prefixes)
    flops = float(n) * total * (total + 1)
    block_bytes = 8.0 * upper * sets
    memory = 4.0 * total * total * (int(folds) if folds > 1 else 1)
    large = flops > LARGE_FLOPS or block_bytes > LARGE_BYTES
    text = (f"{len(dims)} nodes of {total} features in all over {n} samples: {flops:.3g} flops (about "
            f"{flops / 2e11 / 60:.3g} min at 200 GFLOP/s), block store {block_bytes / 1e9:.3g} GB ({sets} set(s) of "
            f"blocks), up to {memory / 1e9:.3g} GB of accumulators per shard")
    return {"flops": flops, "block_bytes": block_bytes, "memory_bytes": memory, "large": large, "text": text,
            "nodes": len(dims), "features": total}


def pass_layout(arrays: dict, shards: int = 1, folds: int = 1, block_rows: int = BLOCK_ROWS,
                sample_sizes=()) -> Layout:
    """The :func:`layout` of a pass over ``arrays``, aligned to the first array's stored chunks."""
    first = next(iter(arrays.values()))
    native = getattr(first, "chunks", None)
    return layout(first.shape[0], shards, folds, block_rows, chunk_rows=int(native[0]) if native else 1,
                  sample_sizes=sample_sizes)


# -- the one pass ---------------------------------------------------------------------
NORM_ROWS = 256  # rows per step of the squared-norm statistics (float64; fewer, larger steps are faster)
PANEL_ROWS = 1024  # networks are grouped into row panels of at least this many features (large GEMMs)
TILE_COLUMNS = 2048  # columns of one GEMM task past a panel's diagonal part: tasks run side by side, one BLAS thread each


def panels_of(dims: list[int], panel_rows: int = PANEL_ROWS) -> list[tuple[int, int]]:
    """Row panels ``[r0, r1)`` of the joint feature axis: consecutive networks grouped to ``panel_rows`` or more.

    Panel boundaries fall between networks, so every block (A, B) with A at
    or before B lies inside the panel holding A's features.
    """
    out, r0, r = [], 0, 0
    for d in dims:
        r += int(d)
        if r - r0 >= panel_rows:
            out.append((r0, r))
            r0 = r
    if r > r0:
        out.append((r0, r))
    return out


def _split(c0: int, c1: int, width: int = TILE_COLUMNS) -> list[tuple[int, int]]:
    """``[c0, c1)`` cut into ``ceil((c1 - c0) / width)`` pieces of nearly equal width."""
    k = -(-(c1 - c0) // width)
    cuts = [c0 + (c1 - c0) * i // k for i in range(k + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def _tiles(bounds: list[tuple[int, int]], offsets: np.ndarray,
           width: int = TILE_COLUMNS) -> list[tuple[int, int, int, int]]:
    """GEMM tasks ``(panel, row_end, c0, c1)`` covering the upper triangle of the joint Gram, largest first.

    A panel ``[r0, r1)`` has one task for its square diagonal part
    ``(p, r1, r0, r1)``, a symmetric product (BLAS ``syrk``: half the flops
    of a GEMM of that size), and tasks for the columns past it, all its rows
    times pieces of at most ``width`` columns. Every entry on or above the
    diagonal is computed once, and below it only the panels' diagonal squares
    (exact mirrors).
    """
    total = int(offsets[-1])
    out = []
    for p, (r0, r1) in enumerate(bounds):
        out.append((p, r1, r0, r1))
        if r1 < total:
            out += [(p, r1, c0, c1) for c0, c1 in _split(r1, total, width)]

    def work(t):
        p, r1, c0, c1 = t
        area = (r1 - bounds[p][0]) * (c1 - c0)
        return area / 2 if c0 == bounds[p][0] else area

    out.sort(key=lambda t: (-work(t), t))
    return out


class _Accumulator:
    """Shifted cross products of one set of samples, summed in float64 in the order blocks are added.

    The upper triangle of the joint Gram matrix ``X^T X`` is kept as row
    panels (:func:`panels_of`): panel ``[r0, r1)`` holds rows ``r0..r1`` and
    columns ``r0..D``. Each added block costs one symmetric product per
    panel's diagonal part and GEMMs past it (:func:`_tiles`), each large
    enough to run at the BLAS's full rate on one thread: exactly the flops of
    the symmetric product of the joint features. Each network's own block is
    made symmetric from its upper triangle. The tiles run side by side on
    ``workers`` threads, each tile on one BLAS thread, so every entry is
    summed in the same order whatever the number of threads: the result is
    bit-identical across thread counts (OpenBLAS's own threading is not).
    All products use numpy's BLAS: a second BLAS thread pool in the process,
    such as scipy's, slows both down severalfold.
    """

    def __init__(self, dims: list[int], shifts: np.ndarray, panel_rows: int = PANEL_ROWS):
        self.dims = [int(d) for d in dims]
        self.offsets = np.concatenate([[0], np.cumsum(self.dims)]).astype(int)
        self.shifts = shifts  # float64 [D], the shift of every feature (exactly representable in the dtype)
        total = int(self.offsets[-1])
        self.bounds = panels_of(self.dims, panel_rows)
        self.n = 0
        self.sums = np.zeros(total)
        self.panels = [np.zeros((r1 - r0, total - r0)) for r0, r1 in self.bounds]
        self.tiles = _tiles(self.bounds, self.offsets)
        self.q = np.zeros((len(self.dims), len(self.dims)))  # sum_i a_i^A a_i^B
        self.u = np.zeros((len(self.dims), total))           # sum_i a_i^A (z_i - shift)

    def add_norms(self, x: np.ndarray, rows: int | None = None) -> None:
        """Add the squared-norm statistics of block ``x`` [rows, D] as read (not shifted), in float64.

        Rows are taken ``rows`` at a time in order (default
        :data:`NORM_ROWS`), each product on one BLAS thread: the sums do not
        depend on the threads.
        """
        from threadpoolctl import threadpool_limits

        off = self.offsets
        rows = rows or NORM_ROWS
        a = np.empty((min(rows, len(x)), len(self.dims)))
        buf = np.empty((min(rows, len(x)), int(off[-1])))
        with threadpool_limits(limits=1, user_api="blas"), np.errstate(invalid="ignore", over="ignore"):
            for r in range(0, len(x), rows):
                y = buf[:len(x[r:r + rows])]
                y[...] = x[r:r + rows]  # exact, then the float64 subtraction: faster than a mixed-type one
                y -= self.shifts
                ar = a[:len(y)]
                for k in range(len(self.dims)):
                    yk = y[:, off[k]:off[k + 1]]
                    np.einsum("ij,ij->i", yk, yk, out=ar[:, k])
                self.q += ar.T @ ar
                self.u += ar.T @ y

    def add(self, x: np.ndarray, pool=None) -> None:
        """Add one block ``x`` [rows, D], already shifted, C-ordered, in the products' dtype.

        ``pool`` (a ``concurrent.futures`` executor) runs the tiles side by
        side; without it they run one after another. Either way each tile is
        one single-threaded product (:func:`_add_tile`), so the sums do not
        depend on the threads.
        """
        from threadpoolctl import threadpool_limits

        self.n += len(x)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf is named when the blocks are centred
            self.sums += x.sum(axis=0, dtype=np.float64)

        def tile(t):
            p, r1, c0, c1 = t
            r0 = self.bounds[p][0]
            _add_tile(self.panels[p][:r1 - r0, c0 - r0:c1 - r0], x, r0, r1, c0, c1)

        with threadpool_limits(limits=1, user_api="blas"):
            if pool is None:
                for t in self.tiles:
                    tile(t)
            else:
                for _ in pool.map(tile, self.tiles):
                    pass

    def copy(self) -> "_Accumulator":
        out = _Accumulator.__new__(_Accumulator)
        out.dims, out.offsets, out.shifts, out.bounds, out.n = self.dims, self.offsets, self.shifts, self.bounds, self.n
        out.tiles = self.tiles
        out.sums, out.panels = self.sums.copy(), [p.copy() for p in self.panels]
        out.q, out.u = self.q.copy(), self.u.copy()
        return out

    def _block(self, panels: list, i: int, j: int) -> np.ndarray:
        """Block (i, j), i <= j, as a view into its panel."""
        off = self.offsets
        p = next(k for k, (r0, r1) in enumerate(self.bounds) if r0 <= off[i] < r1)
        r0 = self.bounds[p][0]
        return panels[p][off[i] - r0:off[i + 1] - r0, off[j] - r0:off[j + 1] - r0]

    def centred(self, names: list[str], attrs: dict) -> Blocks:
        """Means and blocks centred exactly on this set's own mean (in place: the accumulator is spent)."""
        if self.n == 0:
            return empty_blocks(names, self.dims)
        n, s, off = self.n, self.sums, self.offsets
        panels, self.panels = self.panels, None
        for k, a in enumerate(names):
            diag = np.diag(self._block(panels, k, k))
            if not np.isfinite(s[off[k]:off[k + 1]]).all() or not np.isfinite(diag).all():
                raise FitError(f"network {a!r}: non-finite values in its features (NaN or inf) over the fit split")
        means = {a: self.shifts[off[k]:off[k + 1]] + s[off[k]:off[k + 1]] / n for k, a in enumerate(names)}
        for (r0, r1), p in zip(self.bounds, panels):
            p -= np.outer(s[r0:r1] / n, s[r0:])
        for k, d in enumerate(self.dims):  # the centring above rounds (i, j) and (j, i) apart: mirror the upper
            own = self._block(panels, k, k)
            lower = np.tril_indices(d, -1)
            own[lower] = own.T[lower]
        for k, a in enumerate(names):
            spread = np.diag(self._block(panels, k, k))
            scale = float(np.abs(means[a]).max()) ** 2 * n + 1e-300
            if not np.any(spread > 1e-12 * scale):
                raise FitError(f"network {a!r}: every feature is constant over the fit split ({n} samples); "
                               "its embedding carries nothing to map")
        index = {a: k for k, a in enumerate(names)}
        norms = Norms(self.shifts, self.q, self.u)
        return Blocks(list(names), list(self.dims), n, means, lambda a, b: self._block(panels, index[a], index[b]),
                      attrs=attrs, norms=lambda: norms)


def _shifted(x: np.ndarray, shifts: np.ndarray, dtype) -> np.ndarray:
    """Rows minus the shifts, in the products' dtype (float32 rows freshly read are shifted in place; for float64
    products an exact float64 copy of the rows is shifted in place, the same numbers as numpy's mixed-type
    subtraction and faster)."""
    with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf is named when the blocks are centred
        if dtype == np.float32:
            x -= shifts.astype(np.float32)  # exact: the shifts hold float32 values
            return x
        y = x.astype(np.float64)
        y -= shifts
        return y


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
    x = np.concatenate([np.asarray(v, dtype=dtype) for v in xs], axis=1)
    shifts = x[:BLOCK_ROWS].mean(axis=0, dtype=np.float64).astype(dtype).astype(np.float64)
    acc = _Accumulator(dims, shifts)
    acc.add_norms(x)
    acc.add(_shifted(x, shifts, dtype))
    return acc.centred(names, {"precision": precision})


def cross_products(arrays: dict, shard: int = 0, shards: int = 1, folds: int = 1, block_rows: int = BLOCK_ROWS,
                   precision: str = "float64", num_workers: int | None = None, sample_sizes=(),
                   on_subset: Callable | None = None, get: Callable | None = None) -> Blocks:
    """Centred joint cross products of all networks over one shard of the samples, in one pass.

    The pass is a Dask task graph (:func:`pass_graph`) run by ``get``; its
    result does not depend on the scheduler, the workers, the threads or the
    order in which tasks finish.

    Parameters
    ----------
    arrays : dict name -> array-like [n, d_name]
        Zarr arrays (or anything sliceable) with the same samples in the same
        order, each row block of each read once.
    shard, shards : int
        This job processes shard ``shard`` of ``shards`` (see :class:`Layout`).
    folds : int
        Cross-validation folds to keep blocks for (1 = none).
    block_rows : int
        Samples per row block; smaller with folds, see :func:`layout`.
    precision : {"float64", "float32"}
        Arithmetic of the per-block products; sums over blocks are float64.
        ``float32`` halves the time; its rounding (about 1e-7 of each entry,
        relative to the shifted features) is amplified by the condition number
        of ``S_AA + alpha I`` in the coefficients.
    num_workers : int, optional
        Threads of Dask's threaded scheduler when ``get`` is not given (default 1).
    sample_sizes : sequence of int
        Nested prefixes of the split (each in ``(0, n)``) whose blocks are
        kept too: sample-efficiency curves from the same pass.
    on_subset : callable, optional
        ``on_subset(m, blocks)`` receives the shard's blocks of its rows
        below ``m`` as soon as the pass is past them (so a caller can write
        them and let them go), one prefix at a time and in order, as a task
        of the graph (on a worker: it must be picklable and write where the
        workers can); without it they are returned in ``subsets``.
    get : callable, optional
        ``get(graph, keys)`` of a Dask scheduler (:func:`embmap.engine.scheduler`);
        default Dask's threaded scheduler on ``num_workers`` threads, each
        product on one BLAS thread.

    Returns
    -------
    :class:`Blocks` of the shard's samples; with ``folds > 1`` its ``folds``
    hold one :class:`Blocks` per fold (``n = 0`` for folds the shard does not
    touch) and the shard's own blocks pool them lazily. ``attrs`` records the
    layout, the shifts and the precision.
    """
    if precision not in PRECISIONS:
        raise FitError(f"precision {precision!r}: use one of {PRECISIONS}")
    names = list(arrays)
    n = int(arrays[names[0]].shape[0])
    for k in names:
        if arrays[k].ndim != 2 or arrays[k].shape[0] != n:
            raise FitError(f"network {k!r}: features of shape {arrays[k].shape}, network {names[0]!r} has {n} samples")
    dims = [int(arrays[k].shape[1]) for k in names]
    lay = pass_layout(arrays, shards, folds, block_rows, sample_sizes)
    if not 0 <= shard < lay.shards:
        raise FitError(f"shard {shard} of {lay.shards} does not exist")
    attrs = {"n_total": n, "block_rows": lay.block_rows, "folds": lay.folds, "shard": shard, "shards": lay.shards,
             "precision": precision, "blocks_read": len(lay.blocks(shard)), "sample_sizes": list(lay.sample_sizes),
             "reduction": "a chain of tasks per tile adding blocks in the order of the split, float64 sums"}
    subsets: dict = {}

    def emit(m: int, blocks: Blocks) -> None:
        if on_subset is not None:
            on_subset(m, blocks)
        else:
            subsets[m] = blocks

    if not lay.pieces(shard):
        for m in lay.sample_sizes:
            emit(m, empty_blocks(names, dims))
        return Blocks(names, dims, 0, {}, lambda a, b: None, [empty_blocks(names, dims)] * (folds if folds > 1 else 0),
                      attrs, subsets=subsets)
    graph, final = pass_graph(arrays, names, dims, lay, shard, precision, on_subset=on_subset)
    if get is None:
        from ..engine import scheduler

        with scheduler({"scheduler": "threads"}, threads=num_workers or 1) as run:
            out = run(graph, [final])[0]
    else:
        out = get(graph, [final])[0]
    result, shifts, shift_rows, prefixes = out
    for m, blocks in prefixes.items():
        subsets[m] = blocks
    off = np.concatenate([[0], np.cumsum(dims)]).astype(int)
    result.attrs.update(attrs, shift_rows=shift_rows,
                        shifts={a: shifts[off[k]:off[k + 1]].tolist() for k, a in enumerate(names)})
    result.subsets = subsets
    return result


# -- the pass as a Dask graph ---------------------------------------------------------------
def pass_graph(arrays: dict, names: list[str], dims: list[int], lay: Layout, shard: int, precision: str,
               on_subset: Callable | None = None) -> tuple[dict, tuple]:
    """The Dask graph of one shard's pass, and the key of its result.

    Tasks, for the shard's pieces ``i`` (its row blocks, cut at the sample sizes) in order:

    - ``read i``: rows of every network side by side (float32 [rows, D]); it waits for
      piece ``i - 2`` to be multiplied (``piece-done``, from tokens computed where each
      tile's state lies, so no state moves for it), so at most three pieces are in memory;
    - ``shift``: the mean of the first piece, in the products' precision;
    - ``rows i``: piece ``i`` minus the shift, in the products' precision;
    - ``tile f t i``: tile ``t`` (:func:`_tiles`) of fold ``f``'s upper-triangle products
      after adding piece ``i`` (a piece of that fold): the previous state of the same tile
      plus ``rows_i[:, r0:r1]^T rows_i[:, c0:c1]``, added in place, one BLAS thread;
      ``sums f i`` likewise. Each is a chain in the order of the split, so every entry is
      summed in one fixed order whatever runs where: the pass is bit-identical on any
      scheduler;
    - ``prefix m``: for each sample size, the centred blocks of the states after the
      shard's last piece below ``m`` (a copy: the chain goes on), pooled over folds, and
      handed to ``on_subset``; prefixes run one at a time, in order;
    - the result: every fold's final states centred (in place: after every prefix).

    Memory: the states of all tiles are one upper triangle of the joint Gram (plus a strip
    below the diagonal) per fold the shard touches, ``8 D^2 / 2`` bytes each, spread over
    the workers that hold them; plus at most three pieces and one prefix's copy.
    """
    import uuid

    dtype = np.dtype(precision)
    pieces = lay.pieces(shard)
    offsets = np.concatenate([[0], np.cumsum(dims)]).astype(int)
    bounds = panels_of(dims)
    tiles = _tiles(bounds, offsets)
    tag = uuid.uuid4().hex[:8]  # keys of this graph only (a shared distributed scheduler holds others)

    def key(*parts):
        return (f"embmap-pass-{tag}",) + parts

    snapshots = set()  # (fold, piece) after which a sample size's blocks are taken
    for m in lay.sample_sizes:
        for f in {f for _, _, f in pieces}:
            below = [i for i, (lo, hi, g_) in enumerate(pieces) if g_ == f and hi <= m]
            if below:
                snapshots.add((f, below[-1]))
    g: dict = {}
    last: dict = {}  # fold -> index of the fold's latest piece so far

    def state(kind, f, i, t=None):
        """The key a later task reads for fold f's state after piece i: a copy where it is a snapshot."""
        name = kind if (f, i) not in snapshots else f"{kind}-copy"
        return key(name, f, i) if t is None else key(name, f, t, i)

    for i, (lo, hi, f) in enumerate(pieces):
        gate = key("piece-done", i - 2) if i >= 2 else None
        g[key("read", i)] = (_read_piece, arrays, names, dims, lo, hi, gate)
        if i == 0:
            g[key("shift")] = (_shift_of, key("read", 0), precision)
        # shifted in place (float32), so after the squared norms have read the piece as read
        g[key("rows", i)] = (_shift_rows, key("read", i), key("shift"), precision, key("norms", f, i))
        prev = last.get(f)
        # a chain adds in place; where a snapshot is taken the next link waits for the copy of the state
        after = prev is not None and (f, prev) in snapshots
        g[key("sums", f, i)] = (_add_sums, key("sums", f, prev) if prev is not None else None, key("rows", i),
                                key("sums-copy", f, prev) if after else None)
        for t, (p, r1, c0, c1) in enumerate(tiles):
            r0 = bounds[p][0]
            g[key("tile", f, t, i)] = (_add_tile, key("tile", f, t, prev) if prev is not None else None,
                                       key("rows", i), r0, r1, c0, c1, key("tile-copy", f, t, prev) if after else None)
        g[key("norms", f, i)] = (_add_norms, key("norms", f, prev) if prev is not None else None, key("read", i),
                                 key("shift"), dims, key("norms-copy", f, prev) if after else None)
        if (f, i) in snapshots:
            g[key("sums-copy", f, i)] = (_copy, key("sums", f, i))
            g[key("norms-copy", f, i)] = (_copy, key("norms", f, i))
            for t in range(len(tiles)):
                g[key("tile-copy", f, t, i)] = (_copy, key("tile", f, t, i))
        for t in range(len(tiles)):  # a state's token is computed where the state is: nothing big moves
            g[key("tile-done", f, t, i)] = (_done, key("tile", f, t, i))
        g[key("piece-done", i)] = (_done, [key("tile-done", f, t, i) for t in range(len(tiles))]
                                   + [key("sums", f, i), key("norms", f, i)])
        last[f] = i
    prefix_keys = []
    for m in lay.sample_sizes:
        states = {}
        for f in sorted({f for _, _, f in pieces}):
            below = [i for i, (lo, hi, g_) in enumerate(pieces) if g_ == f and hi <= m]
            if below:
                states[f] = below[-1]
        after = prefix_keys[-1] if prefix_keys else None
        g[key("prefix", m)] = (_prefix, m, names, dims, bounds, tiles, offsets, key("shift"),
                               [[f, [state("tile", f, i, t) for t in range(len(tiles))], state("sums", f, i),
                                 state("norms", f, i)] for f, i in states.items()], after, on_subset)
        prefix_keys.append(key("prefix", m))
    folds_of = sorted(last)
    final = key("result")
    g[final] = (_result, names, dims, bounds, tiles, offsets, lay.folds,
                [[f, [key("tile", f, t, last[f]) for t in range(len(tiles))], key("sums", f, last[f]),
                  key("norms", f, last[f])] for f in folds_of], key("shift"), [pieces[0][0], pieces[0][1]], prefix_keys,
                [lay.sample_sizes[k] for k in range(len(prefix_keys))] if on_subset is None else [])
    return g, final


def _read_piece(arrays, names, dims, lo, hi, gate):
    """Rows ``[lo, hi)`` of every network side by side, float32 [rows, D] (``gate``: only an ordering).

    A Zarr array decodes its chunks straight into the piece (no intermediate copy); anything else is sliced.
    """
    import zarr
    from zarr.core.buffer.cpu import NDBuffer

    out = np.empty((hi - lo, sum(dims)), dtype=np.float32)
    o = 0
    for k, d in zip(names, dims):
        a = arrays[k]
        if isinstance(a, zarr.Array) and a.dtype == np.float32:
            a.get_basic_selection((slice(lo, hi), slice(None)), out=NDBuffer.from_numpy_array(out[:, o:o + d]))
        else:
            out[:, o:o + d] = a[lo:hi]
        o += d
    return out


def _aligned(x: np.ndarray) -> np.ndarray:
    """``x``, copied where its data is not aligned to its item size (an array a Dask worker received over the
    network may lie at any byte offset, and numpy then multiplies it without BLAS, summing in another order)."""
    return x if x.flags.aligned else x.copy()


def _shift_of(x, precision):
    """The shard's shift: the mean of its first piece, representable in the products' precision."""
    dtype = np.dtype(precision)
    return x.mean(axis=0, dtype=np.float64).astype(dtype).astype(np.float64)


def _shift_rows(x, shifts, precision, after=None):
    """The piece minus the shift, in the products' precision (:func:`_shifted`): float32 pieces in place
    (``after``: the tasks that read the piece as read, the squared norms, are done; the shift itself was taken
    before, from piece 0)."""
    return _shifted(_aligned(x), shifts, np.dtype(precision))


def _add_sums(state, x, after=None):
    """(n, column sums) after adding piece ``x``: the previous state's plus this piece's, in float64 (in place;
    ``after``: only an ordering)."""
    n, sums = state if state is not None else (0, np.zeros(x.shape[1]))
    x = _aligned(x)
    with np.errstate(invalid="ignore", over="ignore"):
        sums += x.sum(axis=0, dtype=np.float64)
    return n + len(x), sums


def _add_tile(state, x, r0, r1, c0, c1, after=None):
    """A tile's products after adding piece ``x``: ``state + x[:, r0:r1]^T x[:, c0:c1]`` (in place), float64
    (``after``: only an ordering, the copy of ``state`` a prefix reads). On a panel's diagonal part
    (``c0, c1 == r0, r1``) the product is symmetric and numpy hands it to BLAS ``syrk``."""
    out = state if state is not None else np.zeros((r1 - r0, c1 - c0))
    x = _aligned(x)
    with np.errstate(invalid="ignore", over="ignore"):
        rows = x[:, r0:r1]
        out += rows.T @ (rows if (c0, c1) == (r0, r1) else x[:, c0:c1])
    return out


def _add_norms(state, x, shifts, dims, after=None):
    """(Q, U) after adding piece ``x`` as read (:meth:`_Accumulator.add_norms`), in place (``after``: ordering)."""
    acc = _Accumulator.__new__(_Accumulator)
    acc.dims = list(dims)
    acc.offsets = np.concatenate([[0], np.cumsum(acc.dims)]).astype(int)
    acc.shifts = shifts
    acc.q, acc.u = state if state is not None else (np.zeros((len(dims), len(dims))),
                                                     np.zeros((len(dims), int(acc.offsets[-1]))))
    acc.add_norms(_aligned(x))
    return acc.q, acc.u


def _copy(state):
    """A copy of a chain's state (a tile, (n, sums) or (Q, U)) for a prefix: the chain goes on in place."""
    if isinstance(state, tuple):
        return tuple(v.copy() if isinstance(v, np.ndarray) else v for v in state)
    return state.copy()


def _done(states):
    """Nothing (a token): its inputs are done (a piece's products: the next reads may start)."""
    return None


def _accumulator(dims, bounds, tiles, offsets, shifts, tile_states, sums, norms) -> _Accumulator:
    """An :class:`_Accumulator` holding a fold's tile states (copied into its panels), sums and norms."""
    acc = _Accumulator.__new__(_Accumulator)
    acc.dims, acc.offsets, acc.shifts, acc.bounds, acc.tiles = list(dims), offsets, shifts, bounds, tiles
    total = int(offsets[-1])
    acc.n, acc.sums = sums[0], sums[1]
    acc.q, acc.u = norms
    acc.panels = [np.zeros((r1 - r0, total - r0)) for r0, r1 in bounds]
    for (p, r1, c0, c1), t in zip(tiles, tile_states):
        r0 = bounds[p][0]
        acc.panels[p][:r1 - r0, c0 - r0:c1 - r0] = t
    return acc


def _prefix(m, names, dims, bounds, tiles, offsets, shifts, states, after, on_subset):
    """The blocks of the shard's rows below ``m``, from the copies of the chains' states after its last piece below
    ``m``, pooled over folds; handed to ``on_subset`` (then None is returned) or returned (``after``: ordering)."""
    parts = [_accumulator(dims, bounds, tiles, offsets, shifts, t, sums, norms).centred(names, {})
             for _, t, sums, norms in states if sums[0] > 0]
    blocks = empty_blocks(names, dims) if not parts else parts[0] if len(parts) == 1 else pool(parts)
    if on_subset is None:
        return blocks
    on_subset(m, blocks)
    return None


def _result(names, dims, bounds, tiles, offsets, n_folds, states, shifts, shift_rows, prefixes, sizes):
    """(blocks of the shard, its shifts, the rows they came from, {m: prefix blocks} when kept in memory).

    Runs after every prefix (``prefixes``), so it may centre the final states in place.
    """
    per_fold = {f: _accumulator(dims, bounds, tiles, offsets, shifts, t, sums, norms).centred(names, {})
                for f, t, sums, norms in states}
    if n_folds == 1:
        out = per_fold[0]
    else:
        folds = [per_fold.get(f, empty_blocks(names, dims)) for f in range(n_folds)]
        out = pool(folds, folds=folds, attrs={})
    kept = {m: b for m, b in zip(sizes, prefixes) if b is not None}
    return out, shifts, shift_rows, kept


def _pooled(copies: list, names: list[str], dims: list[int]) -> Blocks:
    """The blocks of everything accumulated so far (all folds pooled), from copies of the accumulators."""
    parts = [a.centred(names, {}) for a in copies]
    if not parts:
        return empty_blocks(names, dims)
    return parts[0] if len(parts) == 1 else pool(parts)


def _first_origin(parts: list[Blocks]) -> np.ndarray | None:
    """The origin of the squared norms of the first partial with samples (None where they have none)."""
    for p in parts:
        sets = [p] if p.n > 0 and not p.folds else [f for f in p.folds if f.n > 0]
        for s in sets:
            if s.norms is None:
                return None
            try:
                return s.sqnorms().origin
            except FitError:
                return None
    return None


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
    keys = ("networks", "dims", "n_total", "block_rows", "folds", "shards", "precision", "nodes")
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
    info = {k: a0[k] for k in ("block_rows", "shards", "precision", "n_total", "sample_sizes", "reduction", "nodes")
            if k in a0}
    origin = _first_origin(parts)  # every pool measures the squared norms from one origin, so none moves twice
    if int(a0["folds"]) > 1:
        folds = [pool([p.folds[k] for p in parts], origin=origin) for k in range(int(a0["folds"]))]
        merged = pool(folds, folds=folds, attrs=info, origin=origin)
    else:
        merged = pool(parts, attrs=info, origin=origin)
    for m in a0.get("sample_sizes") or []:
        m = int(m)
        subset = pool([p.subsets[m] for p in parts if m in p.subsets and p.subsets[m].n > 0], origin=origin)
        if subset.n != m:
            raise FitError(f"shard partials hold {subset.n} samples below sample size {m}; re-run the pass")
        merged.subsets[m] = subset
    return merged
