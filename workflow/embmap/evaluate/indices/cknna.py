"""``cknna``: centred kernel nearest-neighbour alignment (Huh et al. 2024, platonic-rep's ``cknna``), on samples
of the evaluation split.

Debiased CKA restricted to the pairs of samples that are neighbours in both spaces. With rows L2-normalised,
``K = Z_A Z_A^T`` and ``L = Z_B Z_B^T`` the cosine kernels, ``M_A`` the mask of each sample's ``k =
similarity.knn_k`` nearest neighbours in A (self excluded; ``M_A[i, j] = 1`` for ``j`` in ``N_A(i)``), ``M_B``
the same in B and ``M = M_A * M_B`` (elementwise: the neighbours both share),

    CKNNA = HSIC_1(M * K, M * L) / sqrt(HSIC_1(M_A * K, M_A * K) HSIC_1(M_B * L, M_B * L)),

``HSIC_1`` the unbiased estimator of Song et al. 2012 (as :mod:`.cka_debiased`; the masked kernels are not
symmetric, so ``tr(P Q) = sum P_ij Q_ji``). This is platonic-rep's implementation (its ``unbiased=True``
default), without the 1e-6 it adds to the denominator. 1 for spaces equal up to rotation and scale; it has no
closed-form chance level, so ``chance`` is the mean and ``chance_q95`` the 95th percentile of a seeded
permutation null (``similarity.knn_permutations`` permutations of one space's samples). Needs k >= 2 (as
platonic-rep) and n >= 4. Graphs in chunks, kernels sparse (:mod:`embmap.evaluate.neighbours`).
"""

from __future__ import annotations

from . import EVAL, SAMPLES, Index
from .mutual_knn import OPTIONS, parameters


def _graphs(pair, options):
    k = options["knn_k"]
    if k < 2:
        raise ValueError(f"similarity.knn_k: cknna needs k >= 2 (as platonic-rep), not {k}")
    return pair.knn(k)


def value(pair, options: dict) -> float:
    from .. import neighbours

    return neighbours.cknna(*_graphs(pair, options))


def chance(pair, options: dict) -> tuple[float, float]:
    import numpy as np

    from .. import neighbours

    if not options["knn_permutations"]:
        return float("nan"), float("nan")
    a, b = _graphs(pair, options)
    null = neighbours.null("cknna", a, b, options["knn_permutations"], options["seed"])
    return float(np.mean(null)), float(np.quantile(null, 0.95))


INDEX = Index(name="cknna", summary="centred kernel nearest-neighbour alignment (samples of the evaluation split)",
              needs=SAMPLES, split=EVAL, symmetric=True, value=value, chance=chance,
              options=OPTIONS, parameters=parameters,
              title="CKNNA", limits=(-1.0, 1.0))
