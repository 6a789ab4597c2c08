"""Similarity indices of every pair of networks, from the pass's centred blocks alone.

With ``S_AA``, ``S_AB``, ``S_BB`` the centred cross products of the fit split
(``S_AB = (X_A - mean_A)^T (X_B - mean_B)``, :class:`embmap.fit.gram.Blocks`),
``S_AA = V_A diag(w_A) V_A^T`` (one ``eigh`` per network) and
``P = V_A^T S_AB V_B``:

- ``cka``: linear CKA (Kornblith et al. 2019), ``||S_AB||_F^2 / (||S_AA||_F ||S_BB||_F)``,
  the same as ``tr(K L) / sqrt(tr(K K) tr(L L))`` with ``K``, ``L`` the centred Gram
  matrices of the samples;
- ``cca``: mean squared canonical correlation, ``(1/r) sum_i rho_i^2`` over the
  ``r = min(d_A, d_B)`` canonical correlations of the ridged covariances
  ``S_AA + eps mean(w_A) I`` and ``S_BB + eps mean(w_B) I`` (``eps = cca_ridge``):
  ``sum_i rho_i^2 = ||diag(h_A) P diag(h_B)||_F^2`` with ``h = (w + eps mean(w))^-1/2``;
- ``svcca``: SVCCA (Raghu et al. 2017): each space is cut to its ``k`` leading
  principal directions (``svcca_k``), then the mean of the ``min(k_A, k_B)``
  canonical correlations, the singular values of ``diag(h_A,k) P_k diag(h_B,k)``
  (same ridge on the kept eigenvalues);
- ``procrustes``: the angular shape metric of netrep's ``LinearMetric(alpha)``
  (Williams et al. 2021), in radians: ``arccos(||Z_A S_AB Z_B||_* / (||X_A Z_A||_F ||X_B Z_B||_F))``
  with netrep's partial whitening ``Z = V diag(d) V^T``, ``d = c (alpha + (1 - alpha) w'^-1/2)``,
  ``w' = max(w, 1e-7)`` and ``c`` keeping the total variance (alpha = 1: no whitening,
  ``arccos(||S_AB||_* / sqrt(tr S_AA tr S_BB))``); zero-padding the smaller space
  changes nothing here;
- ``r2``: the fit-split R^2 of the ridge map, both ways (the maps' ``fit_r2``).

Symmetric indices get one row per unordered pair (source before target in
the networks' order); ``r2`` one row per ordered pair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..fit.gram import Blocks

INDICES = ("cka", "cca", "svcca", "procrustes", "r2")
SYMMETRIC = ("cka", "cca", "svcca", "procrustes")
COLUMNS = ["source", "target", "index", "value", "n", "parameters"]
EIGVAL_TOL = 1e-7  # netrep's floor on the eigenvalues it whitens with


def netrep_whitening(w: np.ndarray, alpha: float) -> np.ndarray:
    """netrep's partial whitening in the eigenbasis: the diagonal ``d`` of ``Z = V diag(d) V^T``."""
    if alpha > 1 - EIGVAL_TOL:
        return np.ones_like(w)
    lam = np.maximum(w, EIGVAL_TOL)
    d = alpha + (1 - alpha) * lam ** -0.5
    new_var = np.sum(alpha ** 2 * lam + 2 * alpha * (1 - alpha) * lam ** 0.5 + (1 - alpha) ** 2)
    return d * np.sqrt(np.sum(lam) / new_var)


def _ridged(w: np.ndarray, eps: float) -> np.ndarray:
    """``(w + eps mean(w))^-1/2``, zero where the ridged eigenvalue is not positive."""
    r = w + eps * max(float(np.mean(w)), 0.0)
    out = np.zeros_like(r)
    ok = r > 0
    out[ok] = r[ok] ** -0.5
    return out


def similarity(blocks: Blocks, indices=INDICES, svcca_k: int = 10, cca_ridge: float = 1e-6,
               shape_alpha: float = 1.0, fit_r2: dict | None = None) -> pd.DataFrame:
    """The table of :data:`COLUMNS` for every pair of ``blocks.names`` and every index in ``indices``.

    ``fit_r2`` maps (source, target) -> the ridge map's fit-split R^2 (for ``r2``).
    One ``eigh`` per network, then per pair one product ``V_A^T S_AB V_B`` and
    at most two SVDs of it (svcca, procrustes).
    """
    unknown = [i for i in indices if i not in INDICES]
    if unknown:
        raise ValueError(f"similarity.indices: unknown index {unknown[0]!r}; use any of {', '.join(INDICES)}")
    names, n = blocks.names, blocks.n
    eig = {}
    for a in names:
        w, v = np.linalg.eigh(blocks.gram(a, a))
        eig[a] = (np.maximum(w, 0.0), v)
    params = {"cka": "", "cca": f"ridge {cca_ridge:g} x mean eigenvalue",
              "svcca": f"k {svcca_k}, ridge {cca_ridge:g} x mean kept eigenvalue",
              "procrustes": f"netrep alpha {shape_alpha:g}, radians", "r2": "ridge map, fit split"}
    rows = []
    for i, a in enumerate(names):
        wa, va = eig[a]
        for b in names[i + 1:]:
            wb, vb = eig[b]
            sym = [k for k in SYMMETRIC if k in indices]
            if not sym:
                continue
            s_ab = blocks.gram(a, b)
            values = {}
            if "cka" in sym:
                values["cka"] = float(np.sum(s_ab ** 2)) / np.sqrt(float(np.sum(wa ** 2)) * float(np.sum(wb ** 2)))
            p = va.T @ s_ab @ vb if any(k in sym for k in ("cca", "svcca", "procrustes")) else None
            if "cca" in sym:
                values["cca"] = float(np.sum((_ridged(wa, cca_ridge)[:, None] * p * _ridged(wb, cca_ridge)) ** 2)) \
                    / min(len(wa), len(wb))
            if "svcca" in sym:
                ka, kb = min(svcca_k, len(wa)), min(svcca_k, len(wb))  # eigh is ascending: the last k lead
                pk = p[-ka:, -kb:]
                rho = np.linalg.svd(_ridged(wa[-ka:], cca_ridge)[:, None] * pk * _ridged(wb[-kb:], cca_ridge),
                                    compute_uv=False)
                values["svcca"] = float(np.mean(rho[:min(ka, kb)]))
            if "procrustes" in sym:
                da, db = netrep_whitening(wa, shape_alpha), netrep_whitening(wb, shape_alpha)
                nuclear = float(np.sum(np.linalg.svd(da[:, None] * p * db, compute_uv=False)))
                norm = np.sqrt(float(np.sum(wa * da ** 2)) * float(np.sum(wb * db ** 2)))
                values["procrustes"] = float(np.arccos(np.clip(nuclear / norm, -1.0, 1.0))) if norm > 0 else np.nan
            for k in sym:
                rows.append({"source": a, "target": b, "index": k, "value": values[k], "n": n,
                             "parameters": params[k]})
    if "r2" in indices:
        for a in names:
            for b in names:
                if a != b:
                    rows.append({"source": a, "target": b, "index": "r2", "value": (fit_r2 or {}).get((a, b), np.nan),
                                 "n": n, "parameters": params["r2"]})
    return pd.DataFrame(rows, columns=COLUMNS)


def matrices(table: pd.DataFrame, order: list[str]) -> dict[str, pd.DataFrame]:
    """One square matrix per index (rows source, columns target); symmetric indices filled both ways."""
    out = {}
    for index, t in table.groupby("index", sort=False):
        m = pd.DataFrame(np.nan, index=order, columns=order)
        for r in t.itertuples():
            m.loc[r.source, r.target] = r.value
            if index in SYMMETRIC:
                m.loc[r.target, r.source] = r.value
        out[index] = m
    return out
