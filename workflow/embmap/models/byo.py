"""Source ``zarr``: bring your own embeddings, one store per split, written by any framework.

The network's ``path`` is a folder holding ``SPLIT.zarr`` for every split the
experiment uses (for closed_set, with ``classifier/weight`` and
``classifier/bias``); :func:`embmap.stores.write_embeddings` writes such a
store from arrays. No model runs: the stores are read in place.
"""

from __future__ import annotations

from ..config import ConfigError
from .base import Source


def check(where: str, spec: dict, ctx) -> None:
    if not ctx.check_paths:
        return
    for split in ctx.experiment.splits:
        p = ctx.path(spec["path"]) / f"{split}.zarr"
        if not (p / "zarr.json").exists():
            raise ConfigError(f"{where}.path: no store for split {split!r} at {p}")


SOURCE = Source("zarr", open=None, check=check)
