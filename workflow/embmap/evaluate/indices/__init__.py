"""Similarity indices: one module per index, found through :data:`INDICES`.

Each module declares ``INDEX = Index(...)``: its name (the value in
``similarity.indices`` and the ``index`` column of ``tables/similarity.csv``),
the ``similarity`` keys it reads, what it needs, and ``value(pair, options)``,
one number for a pair of networks. What an index needs decides what the
``similarity`` job reads:

- ``blocks``: the pass's centred cross products of the fit split
  (:class:`embmap.fit.blocks.Blocks`); ``pair`` offers ``s_ab``, the eigenpairs
  ``wa, va`` / ``wb, vb`` of ``S_AA`` / ``S_BB`` (one ``eigh`` per network for
  all indices and pairs) and ``p = V_A^T S_AB V_B`` (one product per pair),
  ``n``, ``kl`` (``sum_i k_i l_i`` of the centred squared norms, from the pass's
  squared-norm statistics) and ``own(name)`` (``trace``, ``frob2`` and ``kk``
  of a network's own block, once per network);
- ``maps``: the ridge maps' stores as well; ``pair.fit_r2`` is the map's fit R^2;
- ``samples``: embeddings of one split as well, the index's ``split``: ``pair.xa``
  [n, d_A] and ``pair.xb`` [n, d_B] (float64), read in chunks. ``fit``:
  ``similarity.max_samples`` evenly spaced images of the fit split; ``eval``:
  ``similarity.knn_max_samples`` images of the evaluation split drawn by
  ``similarity.seed`` (:func:`embmap.evaluate.neighbours.eval_rows`); all of
  them when the split has fewer. The table's ``n`` is then the number used.
  ``pair.knn(k)`` gives both networks' k-NN graphs of those rows
  (:mod:`embmap.evaluate.neighbours`), computed once per network for every pair
  and index.

An index may give ``chance(pair, options)``: the value unrelated spaces give and
the upper 95% quantile of that (nan where it has none), the table's ``chance``
and ``chance_q95``; those columns are empty for an index without it.

A symmetric index gets one row per unordered pair (source before target in the
networks' order), any other one row per ordered pair.

- :mod:`.cka`: linear CKA; :mod:`.cka_debiased`: linear CKA from the unbiased HSIC estimator (blocks and squared norms);
  :mod:`.cca`: mean squared canonical correlation;
  :mod:`.svcca`: SVCCA; :mod:`.procrustes`: netrep's angular shape metric;
  :mod:`.mutual_knn`: mutual k-NN alignment; :mod:`.cknna`: CKNNA (both on the evaluation split);
  :mod:`.r2`: the ridge map's fit R^2.

To add an index: write ``NAME.py`` here with its ``value`` and an ``INDEX``, list
it in ``_indices`` below, add its name to ``similarity.indices`` in the schema
(and any option it reads to ``$defs/similarity``), and test it. The plan, the
step, the table and the heatmap take it from here.

Standard library only at import time (the plan imports the registry): index
modules import numpy inside their functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

BLOCKS, MAPS, SAMPLES = "blocks", "maps", "samples"
FIT, EVAL = "fit", "eval"  # the split an index that needs samples reads


@dataclass(frozen=True)
class Index:
    """A similarity index (a value of ``similarity.indices``).

    Attributes
    ----------
    name : str
    summary : str
        One line: what the index measures (docs, schema).
    needs : "blocks", "maps" or "samples"
        What ``value`` reads of its ``pair`` (module docstring).
    symmetric : bool
        One row per unordered pair (True) or per ordered pair.
    value : callable
        ``value(pair, options)`` -> float.
    options : tuple of str
        The ``similarity`` keys it reads.
    parameters : callable, optional
        ``parameters(options)`` -> str, the table's ``parameters`` column; default empty.
    title : str
        The heatmap panel's title; default the name.
    limits : (float, float)
        The heatmap's colour range.
    higher_is_similar : bool
        False for a distance (darker is then lower).
    split : "fit" or "eval"
        The split whose samples an index that needs ``samples`` reads (module docstring).
    chance : callable, optional
        ``chance(pair, options)`` -> (chance level, its upper 95% quantile), nan where unknown.
    """

    name: str
    summary: str
    needs: str
    symmetric: bool
    value: Callable
    options: tuple = ()
    parameters: Callable | None = None
    title: str = ""
    limits: tuple = (0.0, 1.0)
    higher_is_similar: bool = True
    split: str = FIT
    chance: Callable | None = None

    def describe(self, options: dict) -> str:
        """The ``parameters`` column: the options this index ran with."""
        return self.parameters(options) if self.parameters else ""


def _indices() -> dict[str, Index]:
    from . import cca, cka, cka_debiased, cknna, mutual_knn, procrustes, r2, svcca

    # a new index joins this tuple; its order is the order of the table's rows and the heatmap's panels
    return {module.INDEX.name: module.INDEX
            for module in (cka, cka_debiased, cca, svcca, procrustes, mutual_knn, cknna, r2)}


INDICES: dict[str, Index] = _indices()


def get(name: str) -> Index:
    """The index of a ``similarity.indices`` value; an unknown name is a ValueError listing the known."""
    try:
        return INDICES[name]
    except KeyError:
        raise ValueError(f"similarity.indices: unknown index {name!r}; use any of {', '.join(INDICES)}") from None


def chosen(names) -> list[Index]:
    """The indices of a ``similarity.indices`` list, in the registry's order."""
    for name in names:
        get(name)
    return [i for name, i in INDICES.items() if name in names]


def needs(names, what: str, split: str | None = None) -> bool:
    """Whether any index of ``names`` needs ``what`` (``maps`` or ``samples``; of ``split`` when given)."""
    return any(i.needs == what and (split is None or i.split == split) for i in chosen(names))


def options(similarity: dict | None = None, **keys) -> dict:
    """A ``similarity`` block with every default of the schema filled in (``keys`` override it)."""
    from ... import config

    return config.defaults("similarity", {**(similarity or {}), **keys})


__all__ = ["BLOCKS", "EVAL", "FIT", "INDICES", "Index", "MAPS", "SAMPLES", "chosen", "get", "needs", "options"]
