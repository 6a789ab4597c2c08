"""``svcca``: SVCCA (Raghu et al. 2017).

Each space is cut to its ``k`` leading principal directions (``svcca_k``), then
the mean of the ``min(k_A, k_B)`` canonical correlations: the singular values of
``diag(h_A,k) P_k diag(h_B,k)`` (the ridge of :mod:`.cca` on the kept eigenvalues).
"""

from __future__ import annotations

from . import BLOCKS, Index
from .cca import ridged


def value(pair, options: dict) -> float:
    import numpy as np

    k, eps = options["svcca_k"], options["cca_ridge"]
    ka, kb = min(k, len(pair.wa)), min(k, len(pair.wb))  # eigh is ascending: the last k lead
    pk = pair.p[-ka:, -kb:]
    rho = np.linalg.svd(ridged(pair.wa[-ka:], eps)[:, None] * pk * ridged(pair.wb[-kb:], eps), compute_uv=False)
    return float(np.mean(rho[:min(ka, kb)]))


INDEX = Index(name="svcca", summary="mean canonical correlation of the top-k principal subspaces", needs=BLOCKS,
              symmetric=True, value=value, options=("svcca_k", "cca_ridge"), title="SVCCA",
              parameters=lambda o: f"k {o['svcca_k']}, ridge {o['cca_ridge']:g} x mean kept eigenvalue")
