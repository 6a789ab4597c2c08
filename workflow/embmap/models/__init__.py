"""Network sources: one module per source family, found through :data:`SOURCES`.

- :mod:`.hub`: ``savedmodel`` and ``tfhub`` (feature-vector and classification SavedModels);
- :mod:`.checkpoint`: ``checkpoint`` (TF-slim checkpoints; :mod:`.inception_v4` builds the architecture);
- :mod:`.demo`: ``train`` (the demo architectures, trained by the workflow);
- :mod:`.frozen_graph`: ``frozen_graph`` (facenet's face networks);
- :mod:`.arcface`: ``arcface`` (arcface-tf2's face networks);
- :mod:`.keras`: ``keras`` (Keras Applications by name, or a saved Keras model file);
- :mod:`.tflite`: ``tflite`` (TensorFlow Lite flat buffers, quantised or float);
- :mod:`.onnx`: ``onnx`` (ONNX models through onnxruntime, the optional extra ``embmap[onnx]``);
- :mod:`.byo`: ``zarr`` (bring your own stores; no model runs).

Shared: :mod:`.base` (:class:`~.base.Model`, :class:`~.base.Source`),
:mod:`.layers` (the names ``layers:`` gives, and how a layer becomes a vector),
:mod:`.classifiers` (locating and verifying a classifier), :mod:`.randomize`
(the random control).

To add a source: write a module with ``SOURCE = Source(name, open, check, ...)``
(its loader and its config check side by side), list it in ``_sources``
below, add its branch to the ``network`` schema, and test it.

Standard library only at import time (the Snakefile imports the registry).
"""

from __future__ import annotations

from .base import Model, NetworkError, Source


def _sources() -> dict[str, Source]:
    from . import arcface, byo, checkpoint, demo, frozen_graph, hub, keras, onnx, tflite

    out = {}
    for module in (hub, checkpoint, demo, frozen_graph, arcface, keras, tflite, onnx, byo):
        for source in getattr(module, "SOURCES", None) or [module.SOURCE]:
            out[source.name] = source
    return out


SOURCES: dict[str, Source] = _sources()


def open_model(name: str, spec: dict, preprocessing: dict | None = None, model_dir: str | None = None) -> Model:
    """The :class:`Model` of a network's config block, re-initialised when it says ``randomize: true``.

    ``spec`` is completed with the schema's defaults; ``preprocessing`` (the
    plan's resolved ``input_size`` and ``input_range``) wins over the
    block's own values. Its ``layers`` are resolved against the model (an
    unknown name lists the nearest ones) and extracted in the forward pass of
    the embedding (:meth:`Model.use_layers`).
    """
    from .. import config

    spec = config.defaults("network", spec)
    source = SOURCES[spec["source"]]
    if source.open is None:
        raise NetworkError(f"network {name!r}: source {source.name!r} brings its own stores; there is no model")
    pre = {k: spec[k] for k in ("input_size", "input_range") if spec.get(k) is not None}
    pre.update(preprocessing or {})
    model = source.open(name, spec, pre, model_dir)
    if spec.get("standardize", "none") != "none" or spec.get("mean") is not None or spec.get("std") is not None:
        model.normalise_input(None if spec.get("standardize", "none") == "none" else spec["standardize"],
                              spec.get("mean"), spec.get("std"))
    if spec.get("randomize"):
        model.randomize(int(spec["seed"]), spec["initializer"])
    if spec.get("layers"):
        model.use_layers(spec["layers"], spec["layer_reduction"])
    return model


__all__ = ["Model", "NetworkError", "SOURCES", "Source", "open_model"]
