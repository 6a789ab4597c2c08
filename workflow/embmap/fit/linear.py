"""What every map method returns and what every one of them reports: the linear map and its fit R^2.

A map is ``f_B ≈ f_A @ weight + intercept``; the numerics of each method live in its
module of :mod:`embmap.fit.methods`, the stores that hold maps in :mod:`embmap.stores`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LinearMap:
    """``f_B ≈ f_A @ weight + intercept``; weight [d_A, d_B], intercept [d_B]."""

    weight: np.ndarray
    intercept: np.ndarray
    attrs: dict

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight + self.intercept


def fit_r2(w: np.ndarray, s_aa: np.ndarray, s_ab: np.ndarray, s_bb_trace: float) -> float:
    """Fraction of the target's fit-split variance explained by ``f_A @ w + c``, from the blocks:
    ``1 - (tr S_BB - 2 tr(W' S_AB) + tr(W' S_AA W)) / tr S_BB`` (nan when the target is constant)."""
    if s_bb_trace <= 0:
        return float("nan")
    rss = s_bb_trace - 2.0 * float(np.sum(w * s_ab)) + float(np.sum(w * (s_aa @ w)))
    return 1.0 - rss / s_bb_trace
