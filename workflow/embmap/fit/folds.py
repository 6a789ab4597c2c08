"""Per-fold maps of the pairs protocols (open-set verification and identification).

For fold k of a protocol, the map A -> B is fitted on the other folds only,
from source features of the first image of each fitting pair to target
features of the second (the paper's eq. 17). Each fold's centred blocks are
computed once (:func:`fold_grams`, the same arithmetic as one block of the
pass, :func:`embmap.fit.gram.blocks_in_memory`); the map of fold k pools the
other folds' blocks exactly (:meth:`FoldGrams.without`), so no fold costs a
new pass over the features.

With a list of penalties, the penalty of outer fold k is chosen per target by
inner cross-validation over the other folds (leave one of them out in turn,
from the same per-fold blocks: :func:`embmap.fit.ridge.cross_validate`), and
the map is then fitted on all of them; fold k itself is never seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import FitError
from .gram import Blocks, blocks_in_memory, pool
from .ridge import LinearMap, alphas_of, fit_maps


@dataclass
class FoldGrams:
    """Per-fold centred blocks over the parts ``A[x1]`` (source features of x1) and ``B[x2]`` (target of x2).

    ``folds[j]`` is a :class:`embmap.fit.gram.Blocks` over the fitting pairs of fold j.
    """

    folds: list
    sources: list
    targets: list

    def without(self, k: int) -> Blocks:
        """The blocks of every fold but ``k``, pooled exactly; their ``folds`` are those folds' own blocks."""
        others = [b for j, b in enumerate(self.folds) if j != k and b.n > 0]
        if sum(b.n for b in others) < 2:
            raise FitError(f"fold {k + 1}: {sum(b.n for b in others)} fitting pair(s) in the other folds; "
                           "at least 2 are needed")
        return pool(others, folds=others)


def part(name: str, side: int) -> str:
    """The name of network ``name``'s features of the ``side``-th image of each pair (1 or 2)."""
    return f"{name}[x{side}]"


def fold_grams(src: dict, tgt: dict, fold: np.ndarray, n_folds: int, precision: str = "float64") -> FoldGrams:
    """Centred blocks of each fold's fitting pairs: row i pairs ``src[A][i]`` (x1) with ``tgt[B][i]`` (x2).

    ``src`` and ``tgt`` map network -> float [n_fit, d]; ``fold`` [n_fit] says
    which fold each fitting pair belongs to.
    """
    features = {part(a, 1): np.asarray(x) for a, x in src.items()}
    features.update({part(b, 2): np.asarray(x) for b, x in tgt.items()})
    folds = [blocks_in_memory({k: x[fold == j] for k, x in features.items()}, precision) for j in range(n_folds)]
    return FoldGrams(folds, list(src), list(tgt))


def leave_one_out_maps(fg: FoldGrams, k: int, alpha, pairs_of=None) -> dict[tuple[str, str], LinearMap]:
    """Ridge maps A -> B fitted on every fold but ``k``, one factorisation per source.

    ``alpha`` is a number, or a list chosen per target by inner
    cross-validation over the other folds (the maps' ``alpha`` attribute is
    the chosen one, ``cv_score`` the inner validation curve). ``pairs_of``
    lists the (source, target) pairs wanted (default: every ordered pair of
    distinct networks).
    """
    alphas = alphas_of(alpha)
    blocks = fg.without(k)
    if len(alphas) > 1 and len(blocks.folds) < 2:
        raise FitError(f"fold {k + 1}: choosing alpha among {alphas} by inner cross-validation needs at least two "
                       f"other folds with fitting pairs, there are {len(blocks.folds)}")
    wanted = pairs_of or [(a, b) for a in fg.sources for b in fg.targets if a != b]
    by_source: dict[str, list[str]] = {}
    for a, b in wanted:
        by_source.setdefault(a, []).append(b)
    out = {}
    for a, targets in by_source.items():
        maps = fit_maps(blocks, part(a, 1), [part(b, 2) for b in targets], alphas if len(alphas) > 1 else alphas[0])
        for b in targets:
            m = maps[part(b, 2)]
            out[(a, b)] = LinearMap(m.weight, m.intercept, {**m.attrs, "source": a, "target": b})
    return out
