"""``cka_debiased``: linear CKA from the unbiased HSIC estimator (Song et al. 2012), from the pass's statistics.

Biased linear CKA (:mod:`.cka`) of two *independent* Gaussian spaces of 200 and 240 dimensions reads
0.88 at n = 32 and 0.46 at n = 256 (issue 23): it reports similarity where there is none whenever the
samples are few for the dimensions. The debiased index replaces each HSIC by its unbiased estimator,

    HSIC_1(K, L) = [tr(K~ L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n (n-3)),

with ``K~``, ``L~`` the Gram matrices ``X X^T``, ``Y Y^T`` of the centred samples (rows
``x_i - mean``) with their diagonals set to 0, and ``CKA_d = HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L))``
(as platonic-rep's ``unbiased_cka``; Murphy et al. 2024). Centred, ``K 1 = 0``, so with
``k_i = ||x_i - mean_A||^2``, ``l_i = ||y_i - mean_B||^2``:

    tr(K~ L~) = ||S_AB||_F^2 - sum_i k_i l_i,    1'K~1 = -sum_i k_i = -tr S_AA,    1'K~L~1 = sum_i k_i l_i,

and ``HSIC_1(K, L) = [||S_AB||_F^2 - kl + tr S_AA tr S_BB / ((n-1)(n-2)) - 2 kl / (n-2)] / (n (n-3))``
with ``kl = sum_i k_i l_i``. ``S_AB`` and ``tr S_AA`` are the pass's centred blocks; ``kl`` comes
from the squared-norm statistics the pass accumulates beside them (:class:`embmap.fit.blocks.Norms`):
with ``a_i = ||x_i - c_A||^2``, ``b_i = ||y_i - c_B||^2`` measured from a fixed origin ``c``
(``c = 0``: the plain uncentred norms), ``Q_AB = sum_i a_i b_i`` and ``U_A = sum_i a_i (z_i - c)``.
Expanding ``k_i = a_i - 2 (x_i - c_A) . e_A + |e_A|^2`` with ``e_A = mean_A - c_A`` (for ``c = 0``:
``|x_i - mu|^2 = a_i - 2 x_i . mu + |mu|^2``), the product summed over i is

    kl = Q_AB - 2 e_B . U_A[B] - 2 e_A . U_B[A] + 4 e_A^T S_AB e_B
         + |e_B|^2 tr S_AA + |e_A|^2 tr S_BB + 3 n |e_A|^2 |e_B|^2

(``U_A[B]``: the B features of ``U_A``; the terms in ``sum_i (x_i - c)`` and in the uncentred block
``G_AB = S_AB + n e_A e_B^T`` are folded in; :meth:`embmap.fit.blocks.Blocks.centred_norm_products`).
Every term is a sum over samples, so the index is exact for the union of shards, folds or a prefix
of the fit split, costs no second pass and no n x n matrix, and uses all n fit samples:
O(d_A d_B) per pair from the blocks the other indices read. The pass measures from its shift
(near the mean), so the expansion cancels little; from ``c = 0`` its relative rounding would
grow as ``(1 + n |mean|^2 / tr S)^2``.

Near 0 for unrelated spaces whatever n (it can be negative), 1 for spaces equal up to rotation and
scale; not confined to [0, 1]. Needs n >= 4 samples.
"""

from __future__ import annotations

from . import BLOCKS, Index


def hsic_unbiased(cross: float, kl: float, tk: float, tl: float, n: int) -> float:
    """``HSIC_1`` from ``||S_AB||_F^2``, ``sum_i k_i l_i``, ``tr S_AA``, ``tr S_BB`` and n (module docstring)."""
    return (cross - kl + tk * tl / ((n - 1) * (n - 2)) - 2.0 * kl / (n - 2)) / (n * (n - 3))


def hsic_samples(a, b) -> float:
    """``HSIC_1`` of the linear kernels of centred rows ``a`` [n, d_a] and ``b`` [n, d_b] (a check on samples)."""
    import numpy as np

    k, l = (a * a).sum(axis=1), (b * b).sum(axis=1)
    return hsic_unbiased(float(np.sum((a.T @ b) ** 2)), float(k @ l), float(k.sum()), float(l.sum()), len(a))


def value(pair, options: dict) -> float:
    import numpy as np

    n = pair.n
    if n < 4:
        raise ValueError(f"similarity: cka_debiased needs at least 4 fit samples, not {n}")
    a, b = pair.own(pair.source), pair.own(pair.target)
    ab = hsic_unbiased(float(np.sum(pair.s_ab ** 2)), pair.kl, a["trace"], b["trace"], n)
    aa = hsic_unbiased(a["frob2"], a["kk"], a["trace"], a["trace"], n)
    bb = hsic_unbiased(b["frob2"], b["kk"], b["trace"], b["trace"], n)
    return float(ab / np.sqrt(aa * bb)) if aa * bb > 0 else float("nan")


INDEX = Index(name="cka_debiased", summary="linear CKA from the unbiased HSIC estimator (the pass's statistics)",
              needs=BLOCKS, symmetric=True, value=value, title="debiased linear CKA",
              parameters=lambda o: "unbiased HSIC from the pass's statistics on all n fit samples", limits=(-1.0, 1.0))
