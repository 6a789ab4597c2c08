"""Sources ``savedmodel`` and ``tfhub``: a feature-vector and a classification SavedModel, as TF Hub serves them.

Both are read through ``tensorflow_hub.KerasLayer``: the *feature-vector*
handle gives the embedding and the optional *classification* handle gives
logits. ``tfhub`` handles may omit ``https://tfhub.dev/``; models are
downloaded once into ``TFHUB_CACHE_DIR`` (``python -m embmap fetch CONFIG``
fills it from a machine with network access). ``savedmodel`` handles are
directories or URLs.

Standard library only at import time (the source registry imports it).
"""

from __future__ import annotations

import os

from ..config import ConfigError
from .base import Model, NetworkError, Source, config_networks

TFHUB = "https://tfhub.dev/"


def hub_handle(h: str) -> str:
    """A TF Hub handle as a URL: ``google/imagenet/inception_v3/feature_vector/5`` -> ``https://tfhub.dev/google/...``."""
    if "://" in h or h.startswith(("/", ".", "~")):
        return h
    return TFHUB + h.lstrip("/")


def is_remote(h: str) -> bool:
    return "://" in h and not h.startswith("file://")


def load_layer(name: str, which: str, handle: str):
    """``hub.KerasLayer`` of the SavedModel at ``handle``; an error names the network, the handle and, for a
    URL, the cache.

    The layer wraps what ``hub.load`` returns (resolved and read as ``hub.KerasLayer(handle)`` would): given a
    handle, ``hub.KerasLayer`` first tries a Keras 2 import that, with Keras 3 installed, imports all of
    Keras 3 and scikit-learn before it fails (3.4 s of every extraction job).
    """
    import tensorflow_hub as hub

    try:
        module = hub.load(handle.removeprefix("file://"))
        if not callable(module):
            raise NetworkError(f"network {name!r}: the {which} SavedModel at {handle!r} has no __call__ function "
                               "(a TF Hub image model for TF2 has one)")
        return hub.KerasLayer(module)
    except NetworkError:
        raise
    except Exception as e:  # tf/hub raise many kinds; name the network and the handle
        hint = ""
        if is_remote(handle):
            cache = os.environ.get("TFHUB_CACHE_DIR", "the default TF Hub cache")
            hint = (f" (the handle did not answer and is not in {cache}; on a node without network access, "
                    "fetch the models first where there is: python -m embmap fetch CONFIG, with the same "
                    "TFHUB_CACHE_DIR)")
        raise NetworkError(f"network {name!r}: cannot load {which} handle {handle!r}{hint}: {e}") from e


def hub_model(name: str, handle: str, classifier: str | None = None, input_size=None, channels=None,
              input_range=(0.0, 1.0)) -> Model:
    """A :class:`Model` of a feature-vector handle and an optional classification handle."""
    features = load_layer(name, "feature-vector", handle)
    logits = load_layer(name, "classification", classifier) if classifier else None
    return Model(name, handle, classifier, input_size, channels, input_range, features, logits)


def fetch(config_path) -> list[tuple[str, str]]:
    """Download the TF Hub models of every ``tfhub`` network in a config into the TF Hub cache.

    Compute nodes without network access then load them from the same
    ``TFHUB_CACHE_DIR``. Returns (handle, local folder) pairs.
    """
    import tensorflow_hub as hub

    handles = [hub_handle(spec[k]) for spec in config_networks(config_path, "tfhub")
               for k in ("handle", "classifier") if spec.get(k)]
    out = []
    for h in dict.fromkeys(handles):
        try:
            out.append((h, hub.resolve(h)))
        except Exception as e:  # the resolver raises many kinds
            raise NetworkError(f"TF Hub handle {h!r} did not answer: {e}") from e
    return out


def _check(where: str, spec: dict, ctx, local) -> None:
    if ctx.needs_classifier and "classifier" not in spec:
        raise ConfigError(f"{where}.classifier: closed_set needs the network's classifier; give the handle of its "
                          "classification model")
    for k in ("handle", "classifier"):
        h = spec.get(k)
        if h and ctx.check_paths and local(h):
            p = ctx.path(h.removeprefix("file://"))
            if not p.exists():
                raise ConfigError(f"{where}.{k}: no SavedModel at {p}")


def check_savedmodel(where: str, spec: dict, ctx) -> None:
    _check(where, spec, ctx, lambda h: not is_remote(h))


def check_tfhub(where: str, spec: dict, ctx) -> None:
    _check(where, spec, ctx, lambda h: h.startswith(("/", "./", "../", "~", "file://")))


def open_savedmodel(name: str, spec: dict, preprocessing: dict, model_dir=None) -> Model:
    return hub_model(name, spec["handle"], spec.get("classifier"), preprocessing.get("input_size"),
                     spec.get("channels"), preprocessing["input_range"])


def open_tfhub(name: str, spec: dict, preprocessing: dict, model_dir=None) -> Model:
    classifier = spec.get("classifier")
    return hub_model(name, hub_handle(spec["handle"]), hub_handle(classifier) if classifier else None,
                     preprocessing.get("input_size"), None, preprocessing["input_range"])


SOURCES = [Source("savedmodel", open_savedmodel, check_savedmodel),
           Source("tfhub", open_tfhub, check_tfhub)]
