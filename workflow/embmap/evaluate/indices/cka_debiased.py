"""``cka_debiased``: linear CKA from the unbiased HSIC estimator (Song et al. 2012), on samples of the fit split.

Biased linear CKA (:mod:`.cka`) of two *independent* Gaussian spaces of 200 and 240 dimensions reads
0.88 at n = 32 and 0.46 at n = 256 (issue 23): it reports similarity where there is none whenever the
samples are few for the dimensions. The debiased index replaces each HSIC by its unbiased estimator,

    HSIC_1(K, L) = [tr(K~ L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n (n-3)),

with ``K~``, ``L~`` the Gram matrices ``X X^T``, ``Y Y^T`` of the (centred) samples with their
diagonals set to 0, and ``CKA_d = HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L))`` (as platonic-rep's
``unbiased_cka``; Murphy et al. 2024). For centred features ``K~1 = -diag(K)``, so with
``k_i = ||x_i||^2``, ``l_i = ||y_i||^2``: ``tr(K~ L~) = ||X^T Y||_F^2 - sum k l``, ``1'K~1 = -sum k`` and
``1'K~L~1 = sum k l``: no n x n matrix is formed, ``n d_A d_B`` flops per pair. Near 0 for unrelated
spaces whatever n (it can be slightly negative), 1 for spaces equal up to rotation and scale.
Needs n >= 4 samples.
"""

from __future__ import annotations

from . import SAMPLES, Index


def hsic_unbiased(a, b) -> float:
    """``HSIC_1`` of the linear kernels of centred ``a`` [n, d_a] and ``b`` [n, d_b] (module docstring)."""
    import numpy as np

    n = len(a)
    k, l = (a * a).sum(axis=1), (b * b).sum(axis=1)
    cross = float(np.sum((a.T @ b) ** 2))
    kl = float(k @ l)
    return (cross - kl + float(k.sum()) * float(l.sum()) / ((n - 1) * (n - 2)) - 2.0 * kl / (n - 2)) / (n * (n - 3))


def value(pair, options: dict) -> float:
    import numpy as np

    xa, xb = pair.xa, pair.xb
    if len(xa) < 4:
        raise ValueError(f"similarity: cka_debiased needs at least 4 samples, not {len(xa)}")
    a, b = xa - xa.mean(axis=0), xb - xb.mean(axis=0)
    denom = hsic_unbiased(a, a) * hsic_unbiased(b, b)
    return float(hsic_unbiased(a, b) / np.sqrt(denom)) if denom > 0 else float("nan")


INDEX = Index(name="cka_debiased", summary="linear CKA from the unbiased HSIC estimator (samples of the fit split)",
              needs=SAMPLES, symmetric=True, value=value, options=("max_samples",), title="debiased linear CKA",
              parameters=lambda o: f"unbiased HSIC, at most {o['max_samples']} fit samples", limits=(-1.0, 1.0))
