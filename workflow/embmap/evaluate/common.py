"""What the evaluations share: the rows' method names, cosines, and the Table 2 / Table 6 matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..fit.methods import METHODS

# how the source features reach the target's space, as the tables' ``method`` column says: a fitted map
# method's name (embmap.fit.methods, per fold for the pairs protocols, eq. 17), or one of these
NATIVE = "native"      # A = B, no map: the diagonal
RIDGE = "ridge"        # the paper's map (eq. 5): the one the Table 2 / Table 6 matrices show
IDENTITY = "identity"  # f_A unchanged where the dimensions agree: a control
ANALYTIC = "analytic"  # Theorem 3.2 (closed set only)


def cosine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise cosine ``x.y / (|x| |y|)`` [n]; neither side is normalised beforehand (0 for a zero row)."""
    nx = np.linalg.norm(x, axis=1)
    ny = np.linalg.norm(y, axis=1)
    return np.einsum("ij,ij->i", x, y) / np.maximum(nx * ny, 1e-300)


def pair_methods(names: list[str], dims: dict[str, int], methods=(RIDGE,)) -> list[tuple[str, str, str]]:
    """(source, target, method) of every row: native on the diagonal, each fitted map method off it (in
    the order of :data:`embmap.fit.methods.METHODS`), identity where dims agree."""
    fitted = [m for m in METHODS if m in methods]
    out = []
    for a in names:
        for b in names:
            if a == b:
                out.append((a, a, NATIVE))
            else:
                out += [(a, b, m) for m in fitted]
                if dims[a] == dims[b]:
                    out.append((a, b, IDENTITY))
    return out


def matrix(table: pd.DataFrame, order: list[str], value: str, method: str = RIDGE) -> pd.DataFrame:
    """The paper's matrix: rows source, columns target, ``method``'s ``value`` off the diagonal, native on it."""
    t = table[(table["method"] == method) | (table["method"] == NATIVE)]
    m = t.pivot(index="source", columns="target", values=value).reindex(index=order, columns=order)
    m.index.name, m.columns.name = "source", "target"
    return m
