"""Similarity indices of every pair of networks: the table ``tables/similarity.csv``.

The indices are a registry (:mod:`embmap.evaluate.indices`, one module each, with
its formula): this module computes the ones asked for over every pair of
networks, sharing the work they share. With ``S_AA``, ``S_AB``, ``S_BB`` the
centred cross products of the fit split (``S_AB = (X_A - mean_A)^T (X_B - mean_B)``,
:class:`embmap.fit.blocks.Blocks`): one ``eigh`` ``S_AA = V_A diag(w_A) V_A^T`` per
network and one product ``P = V_A^T S_AB V_B`` per pair, each only where an index
reads it; indices that compare samples read the fit split's embeddings
(:func:`sample_rows`) or, the neighbourhood indices, the evaluation split's
(:func:`embmap.evaluate.neighbours.eval_rows`), whose k-NN graphs are computed
once per network. An index with a chance level fills ``chance`` and
``chance_q95``.

Symmetric indices get one row per unordered pair (source before target in the
networks' order), in the registry's order per pair; then every other index one
row per ordered pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property

import numpy as np
import pandas as pd

from ..fit.gram import Blocks
from .indices import EVAL, FIT, INDICES, SAMPLES, chosen
from .indices import options as filled

COLUMNS = ["source", "target", "index", "value", "chance", "chance_q95", "n", "source_dim", "target_dim", "parameters"]


class Rows(Mapping):
    """Network -> the rows ``rows`` of its store (float64), read from ``stores`` each time one is asked for,
    so that only one network's rows are in memory at a time where an index keeps only what it derives from
    them (the k-NN graphs)."""

    def __init__(self, stores: dict, rows: np.ndarray):
        self._stores, self.rows, self.n = stores, rows, len(rows)

    def __getitem__(self, name: str) -> np.ndarray:
        from .. import stores as st

        return st.read_rows(self._stores[name], self.rows)

    def __iter__(self):
        return iter(self._stores)

    def __len__(self) -> int:
        return len(self._stores)


class Pair:
    """What an index's ``value`` reads of networks ``source`` and ``target`` (computed when first read)."""

    def __init__(self, source: str, target: str, blocks: Blocks, spectra: dict, fit_r2: dict, samples: dict | None,
                 owns: dict | None = None):
        self.source, self.target = source, target
        self._blocks, self._spectra, self._fit_r2, self._samples = blocks, spectra, fit_r2, samples
        self._owns = {} if owns is None else owns
        self.split = FIT  # the split whose samples ``xa``, ``xb`` and ``knn`` read (:meth:`reading`)

    def reading(self, split: str) -> "Pair":
        """This pair, reading the samples of ``split`` (``fit`` or ``eval``)."""
        self.split = split
        return self

    @property
    def n(self) -> int:
        """The fit samples of the blocks."""
        return int(self._blocks.n)

    def own(self, name: str) -> dict:
        """Scalars of one network's own block, computed once for all pairs: ``trace`` (``tr S_AA = sum_i k_i``),
        ``frob2`` (``||S_AA||_F^2``) and ``kk`` (``sum_i k_i^2``, from the squared-norm statistics)."""
        if name not in self._owns:
            s = self._blocks.gram(name, name)
            self._owns[name] = {"trace": float(self._blocks.sumsq(name).sum()), "frob2": float(np.sum(s * s)),
                                "kk": self._blocks.centred_norm_products(name, name, s)}
        return self._owns[name]

    @cached_property
    def kl(self) -> float:
        """``sum_i k_i l_i`` with ``k_i``, ``l_i`` the centred squared norms of the source's and target's rows
        (:meth:`embmap.fit.blocks.Blocks.centred_norm_products`)."""
        return self._blocks.centred_norm_products(self.source, self.target, self.s_ab)

    def _eigh(self, name: str):
        if name not in self._spectra:
            w, v = np.linalg.eigh(self._blocks.gram(name, name))
            self._spectra[name] = (np.maximum(w, 0.0), v)
        return self._spectra[name]

    @cached_property
    def s_ab(self) -> np.ndarray:
        """``S_AB`` [d_A, d_B]."""
        return self._blocks.gram(self.source, self.target)

    @property
    def wa(self) -> np.ndarray:
        """Eigenvalues of ``S_AA`` (ascending, clipped at 0) [d_A]; ``va`` its eigenvectors [d_A, d_A]."""
        return self._eigh(self.source)[0]

    @property
    def va(self) -> np.ndarray:
        return self._eigh(self.source)[1]

    @property
    def wb(self) -> np.ndarray:
        return self._eigh(self.target)[0]

    @property
    def vb(self) -> np.ndarray:
        return self._eigh(self.target)[1]

    @cached_property
    def p(self) -> np.ndarray:
        """``V_A^T S_AB V_B`` [d_A, d_B]."""
        return self.va.T @ self.s_ab @ self.vb

    @property
    def fit_r2(self) -> float:
        """The ridge map source -> target's fit-split R^2 (nan where none was given)."""
        return float(self._fit_r2.get((self.source, self.target), np.nan))

    @property
    def xa(self) -> np.ndarray:
        """The source's sample rows [n, d_A] (:func:`sample_rows`)."""
        return self._rows(self.source)

    @property
    def xb(self) -> np.ndarray:
        return self._rows(self.target)

    def _rows(self, name: str) -> np.ndarray:
        rows = self._samples.get(self.split)
        if rows is None:
            which = "fit" if self.split == FIT else "evaluation"
            raise ValueError(f"similarity: an index that compares samples needs the {which} split's embeddings")
        return rows[name]

    @property
    def n_samples(self) -> int:
        """The number of rows ``xa`` and ``xb`` have (without reading them from a :class:`Rows`)."""
        rows = self._samples.get(self.split)
        return rows.n if isinstance(rows, Rows) else len(self._rows(self.source))

    def knn(self, k: int):
        """The k-NN graphs (:class:`embmap.evaluate.neighbours.Graph`) of the source's and the target's rows,
        each computed once per network, split and ``k`` for every pair."""
        from . import neighbours

        graphs = self._samples.setdefault("graphs", {})
        for name in (self.source, self.target):
            if (self.split, name, k) not in graphs:
                graphs[(self.split, name, k)] = neighbours.knn(self._rows(name), k)
        return graphs[(self.split, self.source, k)], graphs[(self.split, self.target, k)]


def similarity(blocks: Blocks, indices=tuple(INDICES), options: dict | None = None, fit_r2: dict | None = None,
               samples: dict | None = None, eval_samples=None, with_self: bool = False, **keys) -> pd.DataFrame:
    """The table of :data:`COLUMNS` for every pair of ``blocks.names`` and every index in ``indices``.

    Parameters
    ----------
    blocks : the pass's blocks of the fit split
    indices : names of :data:`embmap.evaluate.indices.INDICES`
    options : the experiment's ``similarity`` block (``keys`` such as ``svcca_k=`` override it; the schema
        fills the rest)
    fit_r2 : dict (source, target) -> the ridge map's fit-split R^2, for indices that need maps
    samples : dict network -> float [n, d], the fit split's rows of indices that need them (:func:`sample_rows`)
    eval_samples : mapping network -> float [n, d], the evaluation split's rows of indices that read it
        (:func:`embmap.evaluate.neighbours.eval_rows`); read once per network where only k-NN graphs are
        needed, so it can be a mapping that reads a store when asked
    with_self : also every name with itself (the layer x layer matrices of :mod:`embmap.evaluate.layers`)
    """
    wanted = chosen(indices)
    options = filled(options, **keys)
    names, spectra, owns, fit_r2 = blocks.names, {}, {}, fit_r2 or {}
    samples = {FIT: samples, EVAL: eval_samples}  # and the k-NN graphs, shared by every pair

    def row(index, a, b, pair):
        pair = pair.reading(index.split)
        n = pair.n_samples if index.needs == SAMPLES else blocks.n
        level, q95 = index.chance(pair, options) if index.chance else (np.nan, np.nan)
        return {"source": a, "target": b, "index": index.name, "value": index.value(pair, options),
                "chance": level, "chance_q95": q95, "n": n, "source_dim": blocks.dim(a), "target_dim": blocks.dim(b),
                "parameters": index.describe(options)}

    rows = []
    sym = [i for i in wanted if i.symmetric]
    for i, a in enumerate(names):
        for b in names[i + (0 if with_self else 1):] if sym else ():
            pair = Pair(a, b, blocks, spectra, fit_r2, samples, owns)
            rows += [row(index, a, b, pair) for index in sym]
    for index in (i for i in wanted if not i.symmetric):
        for a in names:
            for b in names:
                if a != b or with_self:
                    rows.append(row(index, a, b, Pair(a, b, blocks, spectra, fit_r2, samples, owns)))
    return pd.DataFrame(rows, columns=COLUMNS)


def sample_rows(n: int, max_samples: int) -> np.ndarray:
    """The rows of the fit split that indices comparing samples read: all ``n``, or ``max_samples`` evenly
    spaced ones (``floor(i n / max_samples)``: every part of a manifest sorted by class is represented)."""
    if n <= max_samples:
        return np.arange(n)
    return (np.arange(max_samples, dtype=np.int64) * n) // max_samples


def matrices(table: pd.DataFrame, order: list[str]) -> dict[str, pd.DataFrame]:
    """One square matrix per index (rows source, columns target); symmetric indices filled both ways."""
    out = {}
    for index, t in table.groupby("index", sort=False):
        m = pd.DataFrame(np.nan, index=order, columns=order)
        for r in t.itertuples():
            m.loc[r.source, r.target] = r.value
            if INDICES[index].symmetric:
                m.loc[r.target, r.source] = r.value
        out[index] = m
    return out
