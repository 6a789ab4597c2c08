"""``procrustes``: the angular shape metric of netrep's ``LinearMetric(alpha)`` (Williams et al. 2021).

In radians: ``arccos(||Z_A S_AB Z_B||_* / (||X_A Z_A||_F ||X_B Z_B||_F))`` with netrep's
partial whitening ``Z = V diag(d) V^T``, ``d = c (alpha + (1 - alpha) w'^-1/2)``,
``w' = max(w, 1e-7)`` and ``c`` keeping the total variance (alpha = ``shape_alpha``;
1: no whitening, ``arccos(||S_AB||_* / sqrt(tr S_AA tr S_BB))``); zero-padding the
smaller space changes nothing here. A distance: 0 = equal up to a rotation.
"""

from __future__ import annotations

import math

from . import BLOCKS, Index

EIGVAL_TOL = 1e-7  # netrep's floor on the eigenvalues it whitens with


def netrep_whitening(w, alpha: float):
    """netrep's partial whitening in the eigenbasis: the diagonal ``d`` of ``Z = V diag(d) V^T``."""
    import numpy as np

    if alpha > 1 - EIGVAL_TOL:
        return np.ones_like(w)
    lam = np.maximum(w, EIGVAL_TOL)
    d = alpha + (1 - alpha) * lam ** -0.5
    new_var = np.sum(alpha ** 2 * lam + 2 * alpha * (1 - alpha) * lam ** 0.5 + (1 - alpha) ** 2)
    return d * np.sqrt(np.sum(lam) / new_var)


def value(pair, options: dict) -> float:
    import numpy as np

    alpha = options["shape_alpha"]
    da, db = netrep_whitening(pair.wa, alpha), netrep_whitening(pair.wb, alpha)
    nuclear = float(np.sum(np.linalg.svd(da[:, None] * pair.p * db, compute_uv=False)))
    norm = np.sqrt(float(np.sum(pair.wa * da ** 2)) * float(np.sum(pair.wb * db ** 2)))
    return float(np.arccos(np.clip(nuclear / norm, -1.0, 1.0))) if norm > 0 else float("nan")


INDEX = Index(name="procrustes", summary="netrep's angular shape metric (radians)", needs=BLOCKS, symmetric=True,
              value=value, options=("shape_alpha",), title="angular shape metric (rad)",
              parameters=lambda o: f"netrep alpha {o['shape_alpha']:g}, radians",
              limits=(0.0, math.pi / 2), higher_is_similar=False)
