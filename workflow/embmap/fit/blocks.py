"""Centred cross products of several networks over one set of samples, and their exact pooling.

The data the pass (:mod:`.gram`) leaves and every map method, similarity index
and store reads: :class:`Blocks` holds ``S_AB = (X_A - mean_A)^T (X_B - mean_B)``
for every pair and the means; :func:`pool` combines the blocks of disjoint sample
sets exactly from their own means (Chan et al.'s update), lazily, one block at a
time. No numerics of the pass or of any map here, so that storage
(:mod:`embmap.stores`) depends on this module and on :mod:`.linear` only.

Beside the blocks, the squared-norm statistics (:class:`Norms`, for debiased
CKA): with ``z_i`` the concatenated features of sample ``i``, ``c`` a fixed
*origin* and ``a_i^A = ||x_i^A - c_A||^2`` the squared norm of network A's
row measured from it,

    Q[A, B] = sum_i a_i^A a_i^B   (N x N),     U[A] = sum_i a_i^A (z_i - c)   (N x D).

Sets measured from the same origin pool by adding ``Q`` and ``U``. The pass
measures from its shift (the mean of its first rows, near the mean, so that
nothing cancels when the statistics are centred; ``c = 0`` is the plain
uncentred case); sets with other origins are first moved to one
(:func:`reframe`). Moving the origin by ``delta = c' - c``, with
``y_i = z_i - c``, ``s = sum_i y_i``, ``G = sum_i y_i y_i^T`` (``= S + n e e^T``,
``e = mean - c``) and ``t_A = sum_i a_i^A = tr G_AA``, from
``a'_i^A = a_i^A - 2 y_i^A . delta_A + |delta_A|^2``:

    Q'[A, B] = Q[A, B] - 2 delta_B . U[A]_B - 2 delta_A . U[B]_A + 4 delta_A^T G_AB delta_B
               + |delta_B|^2 t_A + |delta_A|^2 t_B - 2 |delta_B|^2 delta_A . s_A - 2 |delta_A|^2 delta_B . s_B
               + n |delta_A|^2 |delta_B|^2,
    U'[A]    = U[A] - t_A delta - 2 G[:, A] delta_A + 2 (delta_A . s_A) delta + |delta_A|^2 s
               - n |delta_A|^2 delta.

Moved to the mean (``delta = e``, ``s = n e``) the first gives the sum of
products of centred squared norms ``k_i^A = ||x_i^A - mean_A||^2``
(:meth:`Blocks.centred_norm_products`):

    sum_i k_i^A k_i^B = Q[A, B] - 2 e_B . U[A]_B - 2 e_A . U[B]_A + 4 e_A^T S_AB e_B
                        + |e_B|^2 tr S_AA + |e_A|^2 tr S_BB + 3 n |e_A|^2 |e_B|^2,

and ``sum_i k_i^A = tr S_AA``. Each term is O(d_A d_B) from one block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import FitError


class NoNorms(FitError):
    """The blocks carry no squared-norm statistics (a block store written before they were added)."""


@dataclass
class Norms:
    """Squared-norm statistics of one set of samples, measured from ``origin`` (module docstring).

    ``origin`` float64 [D], ``q`` float64 [N, N] (``Q[A, B] = sum_i a_i^A a_i^B``),
    ``u`` float64 [N, D] (``U[A] = sum_i a_i^A (z_i - origin)``), networks and
    features in the order of the blocks' ``names`` and ``dims``.
    """

    origin: np.ndarray
    q: np.ndarray
    u: np.ndarray


@dataclass
class Blocks:
    """Centred cross products of several networks over one set of samples.

    ``read(a, b)`` returns float64 [d_a, d_b] = (X_a - mean_a)^T (X_b - mean_b)
    for ``a`` at or before ``b`` in ``names`` order (:meth:`gram` takes either
    order). ``folds`` holds the same for each cross-validation fold (empty
    without folds); ``subsets`` maps a sample size m to the blocks of the
    first m samples (empty without sample sizes). Reads are lazy: stored
    blocks come from disk and pooled blocks are combined when asked for, one
    block at a time. ``norms()`` returns the squared-norm statistics
    (:class:`Norms`; :meth:`sqnorms`).
    """

    names: list
    dims: list
    n: int
    means: dict
    read: Callable
    folds: list = field(default_factory=list)
    attrs: dict = field(default_factory=dict)
    diag: Callable | None = None
    subsets: dict = field(default_factory=dict)
    norms: Callable | None = None

    def sqnorms(self) -> Norms:
        """The squared-norm statistics (:class:`Norms`); :class:`NoNorms` where the blocks have none."""
        if self.norms is None:
            raise NoNorms("these blocks carry no squared-norm statistics (Q, U); compute them with the pass")
        return self.norms()

    @property
    def offsets(self) -> np.ndarray:
        """Where each network's features start on the joint feature axis, int [N + 1]."""
        return np.concatenate([[0], np.cumsum(self.dims)]).astype(int)

    def feature_slice(self, a: str) -> slice:
        k = self.names.index(a)
        off = self.offsets
        return slice(int(off[k]), int(off[k + 1]))

    def centred_norm_products(self, a: str, b: str, s_ab: np.ndarray | None = None) -> float:
        """``sum_i k_i^a k_i^b``, ``k_i^a = ||x_i^a - mean_a||^2`` (module docstring), from the norms and ``S_ab``."""
        nm = self.sqnorms()
        ka, kb = self.names.index(a), self.names.index(b)
        sa, sb = self.feature_slice(a), self.feature_slice(b)
        ea, eb = self.means[a] - nm.origin[sa], self.means[b] - nm.origin[sb]
        s_ab = self.gram(a, b) if s_ab is None else s_ab
        ea2, eb2 = float(ea @ ea), float(eb @ eb)
        return float(nm.q[ka, kb] - 2.0 * (eb @ nm.u[ka, sb]) - 2.0 * (ea @ nm.u[kb, sa]) + 4.0 * (ea @ s_ab @ eb)
                     + eb2 * float(self.sumsq(a).sum()) + ea2 * float(self.sumsq(b).sum()) + 3.0 * self.n * ea2 * eb2)

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

    def only(self, names: list[str]) -> "Blocks":
        """The same blocks restricted to ``names`` (in that order, a subset of :attr:`names`), folds, sample-size
        prefixes and squared-norm statistics alike; nothing is read until asked for. The order of ``names`` must
        follow :attr:`names` (``read`` takes pairs in that order)."""
        names = list(names)
        where = [self.names.index(a) for a in names]
        if where != sorted(where):
            raise FitError(f"nodes {names} are not in the blocks' order {self.names}")
        if names == self.names:
            return self
        dims = [self.dims[k] for k in where]
        norms = None
        if self.norms is not None:
            def norms():
                nm = self.norms()
                cols = np.concatenate([np.arange(self.offsets[k], self.offsets[k + 1]) for k in where])
                return Norms(nm.origin[cols], nm.q[np.ix_(where, where)], nm.u[np.ix_(where, cols)])
        return Blocks(names, dims, self.n, {a: self.means[a] for a in names if a in self.means}, self.read,
                      [f.only(names) for f in self.folds], dict(self.attrs), self.diag,
                      {m: s.only(names) for m, s in self.subsets.items()}, _once(norms) if norms else None)


def pool_block(parts: list[Blocks], a: str, b: str, means: dict, grams: list | None = None) -> np.ndarray:
    """``sum_k S_k + sum_k n_k (m_k,a - m_a)(m_k,b - m_b)^T``: exact for disjoint sample sets."""
    grams = [p.read(a, b) for p in parts] if grams is None else grams
    out = np.array(grams[0], dtype=np.float64, copy=True)
    for g in grams[1:]:
        out += g
    for p in parts:
        out += p.n * np.outer(p.means[a] - means[a], p.means[b] - means[b])
    return out


def reframe(blocks: Blocks, origin: np.ndarray) -> Norms:
    """The blocks' squared-norm statistics measured from ``origin`` [D] instead (module docstring).

    Reads every block once; the identity where the origin is already ``origin``.
    """
    nm = blocks.sqnorms()
    if np.array_equal(nm.origin, origin):
        return nm
    names, n = blocks.names, blocks.n
    d = np.asarray(origin, dtype=np.float64) - nm.origin   # delta
    e = np.concatenate([blocks.means[a] for a in names]) - nm.origin
    sl = [blocks.feature_slice(a) for a in names]
    s = n * e
    dd = np.array([float(d[x] @ d[x]) for x in sl])                   # |delta_A|^2
    ds = np.array([float(d[x] @ s[x]) for x in sl])                   # delta_A . s_A
    de = np.array([float(d[x] @ e[x]) for x in sl])                   # delta_A . e_A
    t = np.array([float(blocks.sumsq(a).sum()) for a in names]) + n * np.array([float(e[x] @ e[x]) for x in sl])
    q, u = nm.q.copy(), nm.u.copy()
    gd = np.zeros_like(u)  # gd[A] = G[:, A] delta_A
    for i, a in enumerate(names):
        for j in range(i, len(names)):
            g = blocks.read(a, names[j])
            ga, gb = g @ d[sl[j]], g.T @ d[sl[i]]  # S_ab delta_b, S_ba delta_a
            gd[j, sl[i]] += ga
            if j != i:
                gd[i, sl[j]] += gb
            dgd = float(d[sl[i]] @ ga) + n * de[i] * de[j]            # delta_a^T G_ab delta_b
            for x, y in ((i, j), (j, i)) if j != i else ((i, i),):
                q[x, y] = (nm.q[x, y] - 2.0 * float(d[sl[y]] @ nm.u[x, sl[y]]) - 2.0 * float(d[sl[x]] @ nm.u[y, sl[x]])
                           + 4.0 * dgd + dd[y] * t[x] + dd[x] * t[y] - 2.0 * dd[y] * ds[x] - 2.0 * dd[x] * ds[y]
                           + n * dd[x] * dd[y])
    for i, x in enumerate(sl):
        gd[i] += n * e * de[i]  # + n e (e_A . delta_A): G = S + n e e^T
        u[i] = nm.u[i] - t[i] * d - 2.0 * gd[i] + 2.0 * ds[i] * d + dd[i] * s - n * dd[i] * d
    return Norms(np.asarray(origin, dtype=np.float64).copy(), q, u)


def pool_norms(parts: list[Blocks], origin: np.ndarray | None = None) -> Norms:
    """Squared-norm statistics of the union of disjoint sets: summed, each measured from ``origin`` (default the
    first part's)."""
    first = parts[0].sqnorms()
    origin = first.origin if origin is None else np.asarray(origin, dtype=np.float64)
    moved = [reframe(p, origin) for p in parts]
    q, u = moved[0].q.copy(), moved[0].u.copy()
    for m in moved[1:]:
        q += m.q
        u += m.u
    return Norms(origin, q, u)


def _once(f: Callable) -> Callable:
    """``f()`` computed at the first call and kept."""
    kept: list = []

    def get():
        if not kept:
            kept.append(f())
        return kept[0]

    return get


def pool(parts: list[Blocks], folds: list | None = None, attrs: dict | None = None,
         origin: np.ndarray | None = None) -> Blocks:
    """Blocks of the union of disjoint sample sets, from each set's own blocks (Chan et al.'s update).

    Lazy: each block is combined when read. Empty parts are skipped. The
    squared-norm statistics are summed from ``origin`` (default the first
    part's; :func:`pool_norms`), computed when first asked for and kept;
    none where a part has none.
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

    norms = _once(lambda: pool_norms(parts, origin)) if all(p.norms is not None for p in parts) else None
    return Blocks(names, dims, n, means, lambda a, b: pool_block(parts, a, b, means), folds or [],
                  attrs or {}, diag, norms=norms)


def empty_blocks(names, dims) -> Blocks:
    return Blocks(list(names), list(dims), 0, {}, lambda a, b: None)
