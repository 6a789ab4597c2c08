"""Layers beside the embedding: the names a network's ``layers:`` asks for, and how each is reduced to a vector.

A network may name ``layers:`` (layer, tensor or node names of its
framework, or patterns with ``*``, ``?`` and ``[...]`` matching several, in
the model's order). Each is computed in the same forward pass as the
embedding and reduced to one vector per image by :func:`reduce`, in one
place for every source:

- ``mean`` (the default): global average pooling over every axis but the
  sample and the channel axis (spatial positions of a feature map, tokens of
  a sequence);
- ``max``: global max pooling over the same axes;
- ``flatten``: every value of the layer, flattened (large for early feature
  maps).

A layer that is already a vector per image is stored as it is (reduction
``none``). The store records each layer's reduction, the axes pooled and its
shape per image (:func:`embmap.stores.EmbeddingWriter`).

:data:`EMBEDDING` is reserved: it names the network's embedding itself
(the store's ``embeddings`` array), never one of its layers.

Standard library only at import time.
"""

from __future__ import annotations

import difflib
import fnmatch

from ..contract import EMBEDDING  # the reserved name of the embedding itself (the store's `embeddings`)
from .base import NetworkError, listing
REDUCTIONS = ("mean", "max", "flatten")
PATTERN = set("*?[")


def nearest(name: str, available: list[str], n: int = 5) -> list[str]:
    """The available names nearest to ``name`` (for an error message), best first."""
    return difflib.get_close_matches(name, available, n=n, cutoff=0.4)


def unknown(network: str, what: str, name: str, available: list[str]) -> NetworkError:
    """The error for a layer name the network does not have: the nearest names, then the listing."""
    near = nearest(name, available)
    hint = f"; nearest: {', '.join(near)}" if near else ""
    return NetworkError(f"network {network!r}: has no {what} {name!r} (layers){hint}; its {what}s: "
                        f"{listing(available)}")


def resolve(network: str, requested: list[str], available: list[str], what: str = "layer") -> list[str]:
    """The layer names ``requested`` names, in its order (a pattern's matches in the model's order), each once.

    Raises :class:`NetworkError` naming the network for the reserved name
    :data:`EMBEDDING`, a name the model does not have (with the nearest ones)
    and a pattern matching nothing.
    """
    out: list[str] = []
    for name in requested:
        if name == EMBEDDING:
            raise NetworkError(f"network {network!r}: {EMBEDDING!r} names the embedding itself, which every store "
                               "holds as 'embeddings'; it cannot be one of its layers (a layer of the model that is "
                               "named so is its embedding, or name it by another of its names)")
        if PATTERN & set(name):
            found = [a for a in available if fnmatch.fnmatchcase(a, name)]
            if not found:
                raise NetworkError(f"network {network!r}: the pattern {name!r} (layers) matches none of its {what}s: "
                                   f"{listing(available)}")
        elif name in available:
            found = [name]
        else:
            raise unknown(network, what, name, available)
        out += [f for f in found if f not in out and f != EMBEDDING]
    return out


def reduce(values, how: str, channel_axis: int = -1):
    """(float32 [n, d], attributes) of one layer's outputs [n, ...] for a batch of n images.

    ``channel_axis`` is where a 4-D feature map keeps its channels (-1 for
    NHWC, 1 for NCHW); a 3-D output [n, positions, features] pools over its
    positions. The attributes say what was done: ``reduction`` (``none`` for
    a layer that is a vector per image), ``pooled_axes`` and ``shape`` (per
    image, before the reduction).
    """
    import numpy as np

    if how not in REDUCTIONS:
        raise NetworkError(f"layer reduction {how!r}: use one of {', '.join(REDUCTIONS)}")
    x = np.asarray(values)
    n, shape = x.shape[0], [int(v) for v in x.shape[1:]]
    if x.ndim <= 2 or how == "flatten":
        out, pooled, done = x.reshape(n, -1), [], ("none" if x.ndim <= 2 else "flatten")
    else:
        channels = (channel_axis % x.ndim) if x.ndim == 4 else x.ndim - 1
        pooled = [a for a in range(1, x.ndim) if a != channels]
        pool = np.mean if how == "mean" else np.max
        x = x.astype(np.float64) if how == "mean" else x
        out, done = pool(x, axis=tuple(pooled)), how
    return np.asarray(out, np.float32), {"reduction": done, "pooled_axes": pooled, "shape": shape}
