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
from ..contract import EMBEDDING
from .base import Model, NetworkError, Source, config_networks

TFHUB = "https://tfhub.dev/"


def hub_handle(h: str) -> str:
    """A TF Hub handle as a URL: ``google/imagenet/inception_v3/feature_vector/5`` -> ``https://tfhub.dev/google/...``."""
    if "://" in h or h.startswith(("/", ".", "~")):
        return h
    return TFHUB + h.lstrip("/")


def is_remote(h: str) -> bool:
    return "://" in h and not h.startswith("file://")


LAYERS = "layers"  # the SavedModel function giving {layer name: output} in one pass ("embedding": the embedding)
LAYER_ORDER = "layer_order"  # optional string variable of the SavedModel: its layers in the model's order
# (a restored function's dict of outputs keeps no order of its own)


class HubModel(Model):
    """A feature-vector SavedModel (and a classification one); its layers are those its function ``layers``
    gives (the demo's own networks have one; TF Hub's models have none)."""

    def __init__(self, *args, module=None, **kw):
        super().__init__(*args, **kw)
        self.module = module

    def layer_names(self) -> list[str]:
        fn = getattr(self.module, LAYERS, None)
        if fn is None:
            raise NetworkError(
                f"network {self.name!r}: the SavedModel {self.handle} exposes no layers (it has no function "
                f"{LAYERS!r}: TF Hub's models have none, nor do demo networks exported before layers were); drop "
                f"layers, or export the model with a tf.function {LAYERS!r} on the images of __call__ returning a "
                f"dict of every layer's output by name, with the embedding itself under {EMBEDDING!r}")
        out = self._layer_outputs(fn)
        order = getattr(self.module, LAYER_ORDER, None)
        if order is not None:
            import numpy as np

            listed = [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(order.numpy()).ravel()]
            return [n for n in listed if n in out and n != EMBEDDING] + \
                [n for n in out if n not in listed and n != EMBEDDING]
        return [n for n in out if n != EMBEDDING]

    def _layer_outputs(self, fn) -> dict:
        """The structure the function returns, {name: spec}, read from its signature."""
        try:
            concrete = fn.concrete_functions[0] if getattr(fn, "concrete_functions", None) else \
                fn.get_concrete_function()
            out = concrete.structured_outputs
        except Exception as e:  # restored functions without a signature raise many kinds
            raise NetworkError(f"network {self.name!r}: the function {LAYERS!r} of {self.handle} has no fixed "
                               f"input signature to read its outputs from ({type(e).__name__}: {e})") from None
        if not isinstance(out, dict) or EMBEDDING not in out:
            raise NetworkError(f"network {self.name!r}: the function {LAYERS!r} of {self.handle} returns "
                               f"{type(out).__name__}; it must return a dict of tensors by layer name with the "
                               f"embedding under {EMBEDDING!r}")
        return out

    def _bind_layers(self, names: list[str]) -> None:
        self._layer_fn = getattr(self.module, LAYERS)

    def _raw_layers(self, images):
        import numpy as np

        out = self._layer_fn(self.preprocess(images))
        return self._checked_features(np.asarray(out[EMBEDDING])), {n: np.asarray(out[n]) for n in self.layers}


def load_module(name: str, which: str, handle: str):
    """What ``hub.load`` returns for the SavedModel at ``handle``; an error names the network, the handle and,
    for a URL, the cache.

    :func:`load_layer` wraps it in ``hub.KerasLayer`` (resolved and read as ``hub.KerasLayer(handle)`` would):
    given a handle, ``hub.KerasLayer`` first tries a Keras 2 import that, with Keras 3 installed, imports all of
    Keras 3 and scikit-learn before it fails (3.4 s of every extraction job).
    """
    import tensorflow_hub as hub

    try:
        module = hub.load(handle.removeprefix("file://"))
        if not callable(module):
            raise NetworkError(f"network {name!r}: the {which} SavedModel at {handle!r} has no __call__ function "
                               "(a TF Hub image model for TF2 has one)")
        return module
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


def load_layer(name: str, which: str, handle: str):
    """``hub.KerasLayer`` of the SavedModel at ``handle`` (:func:`load_module`)."""
    import tensorflow_hub as hub

    return hub.KerasLayer(load_module(name, which, handle))


def hub_model(name: str, handle: str, classifier: str | None = None, input_size=None, channels=None,
              input_range=(0.0, 1.0)) -> Model:
    """A :class:`Model` of a feature-vector handle and an optional classification handle."""
    import tensorflow_hub as hub

    module = load_module(name, "feature-vector", handle)
    logits = load_layer(name, "classification", classifier) if classifier else None
    return HubModel(name, handle, classifier, input_size, channels, input_range, hub.KerasLayer(module), logits,
                    module=module)


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
