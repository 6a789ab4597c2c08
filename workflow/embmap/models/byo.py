"""Source ``zarr``: bring your own embeddings, one store per split, written by any framework.

The network's ``path`` is a folder holding ``SPLIT.zarr`` for every split the
experiment uses (for closed_set, with ``classifier/weight`` and
``classifier/bias``); :func:`embmap.stores.write_embeddings` writes such a
store from arrays. No model runs: the stores are read in place.

While the Snakefile parses, every store's metadata is held to the store
contract (:mod:`embmap.contract`: the folder is a complete Zarr v3 store,
its arrays have the right shapes and types, its attributes the right
types, its classifier fits its features, its layers, if any, are the same in
every split); ids and labels are checked by the
``check_stores`` job, before anything else reads the stores.
"""

from __future__ import annotations

from ..config import ConfigError
from .base import Source


def check(where: str, spec: dict, ctx) -> None:
    from .. import contract

    if not ctx.check_paths:
        return
    exp = ctx.experiment
    dims, layers = {}, {}
    for split in exp.splits:
        p = ctx.path(spec["path"]) / f"{split}.zarr"
        if not p.exists():
            near = sorted(q.name for q in p.parent.glob("*.zarr")) if p.parent.is_dir() else []
            hint = f" (the folder holds {', '.join(near)})" if near else ""
            raise ConfigError(f"{where}.path: no store for split {split!r} at {p}{hint}")
        try:
            meta = contract.check_store(p, split, need_classifier=exp.task_def.classifier and split == exp.eval_split)
        except contract.StoreError as e:
            raise ConfigError(f"{where}.path: {e}") from None
        dims[split] = meta.dim
        layers[split] = {name: int(a.shape[1]) for name, a in meta.layers.items()}
    if len(set(dims.values())) > 1:
        raise ConfigError(f"{where}.path: the stores of one network hold different numbers of features ("
                          + ", ".join(f"{s}: {d}" for s, d in dims.items()) + "); a network has one embedding space")
    first, *others = layers
    for split in others:
        if layers[split] != layers[first]:
            raise ConfigError(f"{where}.path: the stores of one network hold different layers ({first}: "
                              f"{layers[first] or 'none'}; {split}: {layers[split] or 'none'}, as name: features); "
                              "every split holds the same layers")


SOURCE = Source("zarr", open=None, check=check, layers=False)  # its stores carry their own layers
