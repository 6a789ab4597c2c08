"""k-nearest-neighbour graphs of embedding spaces and the neighbourhood measures built on them.

The graph of a network (:func:`knn`) is computed once from its rows alone and then serves every pair and
every neighbourhood index (:mod:`.indices.mutual_knn`, :mod:`.indices.cknna`), as the Huh et al. (2024)
measures of platonic-rep define them:

- rows are L2-normalised (a zero row stays zero) and compared by cosine similarity, ``K = Z Z^T``;
- the neighbours ``N(i)`` of sample ``i`` are the ``k`` other samples of largest ``K_ij`` (``i`` itself is
  excluded; ties broken by the lower row number, so the graph is deterministic; a tie is an exact equality
  of the computed similarities: those of duplicate rows may differ in the last bit by where the BLAS
  computes them, and then the BLAS decides which duplicate comes first);
- memory is bounded: the similarities are computed ``chunk`` rows at a time, a ``chunk x n`` block of at
  most :data:`CHUNK_BYTES` (64 MiB, ``chunk = max(1, 2^23 // n)`` float64 rows), never ``n x n``; what is
  kept is the graph, ``n x k`` indices and similarities. Cost ``n^2 d`` flops per network.

A pair then costs ``O(n k)``: each graph is a sparse ``n x n`` matrix with ``k`` entries a row
(``scipy.sparse``), the mask ``M_A`` (ones) or the kernel at the neighbours ``M_A * K``. The permutation
null (:func:`null`) pairs sample ``i`` of one space with sample ``pi(i)`` of the other: it permutes the
other's graph (``N_pi(i) = pi^-1(N(pi(i)))``, no new similarities), so that each permutation costs
``O(n k)`` too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK_BYTES = 64 * 2**20  # one chunk x n block of float64 similarities


@dataclass(frozen=True)
class Graph:
    """The k-NN graph of ``n`` samples: ``index[i]`` the neighbours of ``i`` (most similar first), ``sim[i]``
    their cosine similarities to ``i``; both [n, k]."""

    index: np.ndarray
    sim: np.ndarray

    @property
    def n(self) -> int:
        return len(self.index)

    @property
    def k(self) -> int:
        return self.index.shape[1]

    def permuted(self, perm: np.ndarray) -> "Graph":
        """The graph of the rows ``x[perm]``: sample ``i`` is the old ``perm[i]``, its neighbours renumbered."""
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(len(perm))
        return Graph(inverse[self.index[perm]], self.sim[perm])

    def matrix(self, values: bool = False):
        """The sparse n x n matrix with ``sim`` (``values``) or ones at each row's neighbours (CSR)."""
        from scipy import sparse

        n, k = self.index.shape
        order = np.argsort(self.index, axis=1)  # canonical CSR (sorted columns): scipy's products assume it
        columns = np.take_along_axis(self.index, order, axis=1).ravel()
        data = np.take_along_axis(self.sim, order, axis=1).ravel() if values else np.ones(n * k)
        m = sparse.csr_matrix((data, columns, np.arange(0, n * k + 1, k)), shape=(n, n))
        m.has_canonical_format = True
        return m


def normalised(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norms (float64; a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def chunk_rows(n: int) -> int:
    """Rows per similarity block: ``max(1, CHUNK_BYTES // (8 n))``."""
    return max(1, CHUNK_BYTES // (8 * n))


def _top(s: np.ndarray, k: int) -> np.ndarray:
    """The column numbers of the ``k`` largest entries of each row of ``s``, largest first, ties to the lower
    column (what a stable sort of ``-s`` gives)."""
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(s, part, axis=1)
    order = np.lexsort((part, -vals), axis=-1)
    top = np.take_along_axis(part, order, axis=1)
    # a tie at the k-th value: argpartition may have chosen any of the tied columns; sort those rows whole
    tied = np.flatnonzero((s >= vals.min(axis=1, keepdims=True)).sum(axis=1) > k)
    for r in tied:
        top[r] = np.argsort(-s[r], kind="stable")[:k]
    return top


def knn(x: np.ndarray, k: int, chunk: int | None = None) -> Graph:
    """The k-NN graph of the rows of ``x`` [n, d] by cosine similarity, self excluded (module docstring);
    ``chunk`` rows of similarities at a time (default :func:`chunk_rows`)."""
    z = normalised(x)
    n = len(z)
    if not 1 <= k <= n - 1:
        raise ValueError(f"similarity.knn_k: {k} neighbours need at least {k + 1} samples and k >= 1, not n = {n}")
    chunk = chunk or chunk_rows(n)
    index, sim = np.empty((n, k), dtype=np.int64), np.empty((n, k))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        s = z[start:stop] @ z.T
        s[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not its own neighbour
        top = _top(s, k)
        index[start:stop], sim[start:stop] = top, np.take_along_axis(s, top, axis=1)
    return Graph(index, sim)


def mutual(a: Graph, b: Graph) -> float:
    """Mutual k-NN alignment: the mean over samples of ``|N_A(i) & N_B(i)| / k``."""
    shared = a.matrix().multiply(b.matrix()).sum()
    return float(shared) / (a.n * a.k)


def hsic_unbiased(p, q) -> float:
    """``HSIC_1`` (Song et al. 2012, eq. 5) of two sparse n x n kernels with zero diagonals:
    ``[tr(P Q) + 1'P1 1'Q1 / ((n-1)(n-2)) - 2/(n-2) 1'PQ1] / (n (n-3))``, with ``tr(P Q) = sum P_ij Q_ji`` and
    ``1'PQ1`` the column sums of ``P`` times the row sums of ``Q`` (``P``, ``Q`` need not be symmetric)."""
    n = p.shape[0]
    trace = float(p.multiply(q.T).sum())
    sp, sq = float(p.sum()), float(q.sum())
    cross = float(np.asarray(p.sum(axis=0)).ravel() @ np.asarray(q.sum(axis=1)).ravel())
    return (trace + sp * sq / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)) / (n * (n - 3))


def _cknna_cross(a: Graph, b: Graph) -> float:
    """``HSIC_1(M * K, M * L)`` with ``M = M_A * M_B`` the neighbours the two graphs share."""
    return hsic_unbiased(a.matrix(values=True).multiply(b.matrix()).tocsr(),
                         b.matrix(values=True).multiply(a.matrix()).tocsr())


def _cknna_self(g: Graph) -> float:
    values = g.matrix(values=True)
    return hsic_unbiased(values, values)


def cknna(a: Graph, b: Graph) -> float:
    """CKNNA (Huh et al. 2024, platonic-rep's ``cknna``): the unbiased HSIC of the two kernels restricted to
    the neighbours both graphs share, ``HSIC_1(M * K, M * L) / sqrt(HSIC_1(M_A * K, M_A * K)
    HSIC_1(M_B * L, M_B * L))``; nan when the denominator is not positive. Needs n >= 4."""
    if a.n < 4:
        raise ValueError(f"similarity: cknna needs at least 4 samples, not {a.n}")
    denom = _cknna_self(a) * _cknna_self(b)
    return float(_cknna_cross(a, b) / np.sqrt(denom)) if denom > 0 else float("nan")


def permutations(n: int, count: int, seed: int) -> list[np.ndarray]:
    """``count`` seeded permutations of ``range(n)``, the same for every pair."""
    rng = np.random.default_rng([seed, n])
    return [rng.permutation(n) for _ in range(count)]


def null(measure: str, a: Graph, b: Graph, count: int, seed: int) -> np.ndarray:
    """The measure (``mutual`` or ``cknna``) of ``a`` against ``b`` with its samples permuted, once per
    permutation of :func:`permutations`: what unrelated spaces of these neighbourhood structures give."""
    perms = permutations(a.n, count, seed)
    if measure == "mutual":
        return np.array([mutual(a, b.permuted(p)) for p in perms])
    denom = _cknna_self(a) * _cknna_self(b)  # unchanged by a permutation
    if not denom > 0:
        return np.full(count, np.nan)
    return np.array([_cknna_cross(a, b.permuted(p)) for p in perms]) / np.sqrt(denom)


def eval_rows(n: int, max_samples: int, seed: int) -> np.ndarray:
    """The rows of the evaluation split the neighbourhood indices read: all ``n``, or ``max_samples`` drawn
    without replacement by ``seed`` (sorted, for reading the stores in order)."""
    if n <= max_samples:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))
