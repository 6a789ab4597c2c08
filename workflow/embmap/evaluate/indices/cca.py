"""``cca``: mean squared canonical correlation, ``(1/r) sum_i rho_i^2``.

Over the ``r = min(d_A, d_B)`` canonical correlations of the ridged covariances
``S_AA + eps mean(w_A) I`` and ``S_BB + eps mean(w_B) I`` (``eps = cca_ridge``):
``sum_i rho_i^2 = ||diag(h_A) P diag(h_B)||_F^2`` with ``h = (w + eps mean(w))^-1/2``.
"""

from __future__ import annotations

from . import BLOCKS, Index


def ridged(w, eps: float):
    """``(w + eps mean(w))^-1/2``, zero where the ridged eigenvalue is not positive."""
    import numpy as np

    r = w + eps * max(float(np.mean(w)), 0.0)
    out = np.zeros_like(r)
    ok = r > 0
    out[ok] = r[ok] ** -0.5
    return out


def value(pair, options: dict) -> float:
    import numpy as np

    eps = options["cca_ridge"]
    h = ridged(pair.wa, eps)[:, None] * pair.p * ridged(pair.wb, eps)
    return float(np.sum(h ** 2)) / min(len(pair.wa), len(pair.wb))


INDEX = Index(name="cca", summary="mean squared canonical correlation", needs=BLOCKS, symmetric=True,
              value=value, options=("cca_ridge",), title="mean squared CCA",
              parameters=lambda o: f"ridge {o['cca_ridge']:g} x mean eigenvalue")
