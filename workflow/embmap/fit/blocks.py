"""Centred cross products of several networks over one set of samples, and their exact pooling.

The data the pass (:mod:`.gram`) leaves and every map method, similarity index
and store reads: :class:`Blocks` holds ``S_AB = (X_A - mean_A)^T (X_B - mean_B)``
for every pair and the means; :func:`pool` combines the blocks of disjoint sample
sets exactly from their own means (Chan et al.'s update), lazily, one block at a
time. No numerics of the pass or of any map here, so that storage
(:mod:`embmap.stores`) depends on this module and on :mod:`.linear` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import FitError


@dataclass
class Blocks:
    """Centred cross products of several networks over one set of samples.

    ``read(a, b)`` returns float64 [d_a, d_b] = (X_a - mean_a)^T (X_b - mean_b)
    for ``a`` at or before ``b`` in ``names`` order (:meth:`gram` takes either
    order). ``folds`` holds the same for each cross-validation fold (empty
    without folds); ``subsets`` maps a sample size m to the blocks of the
    first m samples (empty without sample sizes). Reads are lazy: stored
    blocks come from disk and pooled blocks are combined when asked for, one
    block at a time.
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
