"""Dataset kind ``embeddings``: no images; splits, ids and labels come from bring-your-own stores.

Every network of such an experiment is a ``zarr`` network (:mod:`embmap.models.byo`);
an open_set experiment names a pairs file whose image names are the stores' ids.
"""

from __future__ import annotations

from . import Kind

KIND = Kind("embeddings", reader=None, tasks=("closed_set", "open_set"), images=False, pairs="given",
            train_hint="has no images")
