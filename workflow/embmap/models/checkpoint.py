"""Source ``checkpoint``: an architecture built in Keras and read from a TF-slim checkpoint.

``architecture: inception_v4`` (:mod:`.inception_v4`) is the paper's one
network not on TF Hub. Its input size and range default to the
architecture's own (299 x 299, [-1, 1]) in the schema. Standard library only
at import time (the source registry imports it).
"""

from __future__ import annotations

from ..config import ConfigError
from .base import Model, NetworkError, Source


def checkpoint_model(name: str, architecture: str, checkpoint: str, input_size, input_range) -> Model:
    """A network built in Keras and loaded from a TF-slim checkpoint."""
    if architecture != "inception_v4":
        raise NetworkError(f"network {name!r}: no Keras implementation of {architecture!r}; known: inception_v4")
    from . import inception_v4 as iv4

    size = tuple(input_size)
    features, logits = iv4.build(size)
    try:
        iv4.load_checkpoint(logits, checkpoint)
    except iv4.CheckpointError as e:
        raise NetworkError(f"network {name!r}: {e}") from None
    return Model(name, checkpoint, checkpoint, size, 3, input_range, features, logits)


def check(where: str, spec: dict, ctx) -> None:
    p = ctx.path(spec["checkpoint"])
    if ctx.check_paths and not (p.exists() or p.with_name(p.name + ".index").exists()):
        raise ConfigError(f"{where}.checkpoint: no checkpoint at {p} (nor {p.name}.index)")


def open_checkpoint(name: str, spec: dict, preprocessing: dict, model_dir=None) -> Model:
    return checkpoint_model(name, spec["architecture"], str(spec["checkpoint"]), preprocessing["input_size"],
                            preprocessing["input_range"])


SOURCE = Source("checkpoint", open_checkpoint, check)
