"""``cka``: linear CKA (Kornblith et al. 2019), ``||S_AB||_F^2 / (||S_AA||_F ||S_BB||_F)``.

The same as ``tr(K L) / sqrt(tr(K K) tr(L L))`` with ``K``, ``L`` the centred Gram
matrices of the samples (the biased HSIC estimator).
"""

from __future__ import annotations

from . import BLOCKS, Index


def value(pair, options: dict) -> float:
    import numpy as np

    return float(np.sum(pair.s_ab ** 2)) / np.sqrt(float(np.sum(pair.wa ** 2)) * float(np.sum(pair.wb ** 2)))


INDEX = Index(name="cka", summary="linear CKA", needs=BLOCKS, symmetric=True, value=value, title="linear CKA")
