"""What every network source gives: a :class:`Model` (features, logits, classifier) and a :class:`Source`.

A :class:`Model` turns a batch of images (float32 [batch, height, width,
channels] in [0, 1]) into embeddings, the layer just before the classifier,
and, where the network has one, into logits. Its classifier's weight and bias
are located among the variables by shape and verified against the logits
(:meth:`Model.classifier`), so stores carry ``classifier/weight`` [class,
feature] and ``classifier/bias`` [class].

Standard library only at import time (the source registry is imported by the
Snakefile); numpy and TensorFlow are imported where they are used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class NetworkError(ValueError):
    """A network that cannot be loaded or run as configured; the message names it."""


def tf():
    import tensorflow

    return tensorflow


def keras():
    import tf_keras

    return tf_keras


def _no_check(where, spec, ctx) -> None:
    return None


NONE = "none"  # classifier: none, a network without a classifier (open_set)


def listing(names: list[str], last: int = 40) -> str:
    """Names for an error message: all of them, or the last ``last`` (those nearest the output) and a count."""
    if len(names) <= last:
        return ", ".join(names)
    return f"{', '.join(names[-last:])} (and {len(names) - last} earlier ones)"


def check_model_file(where: str, spec: dict, ctx) -> None:
    """The config check shared by sources reading one model file (``model:``) with an optional classifier."""
    from ..config import ConfigError

    if ctx.needs_classifier and spec.get("classifier") == NONE:
        raise ConfigError(f"{where}.classifier: closed_set reads the network's classifier; 'none' is for open_set")
    if spec.get("model") and ctx.check_paths and not ctx.path(spec["model"]).exists():
        raise ConfigError(f"{where}.model: nothing at {ctx.path(spec['model'])}")


def config_networks(config_path, source: str) -> list[dict]:
    """The network blocks of one source in a config file (for ``python -m embmap fetch``), read strictly."""
    from ..config import read_file

    config = read_file(config_path)
    return [spec for exp in (config.get("experiments") or {}).values()
            for spec in (exp.get("networks") or {}).values() if spec.get("source") == source]


@dataclass(frozen=True)
class Source:
    """A network source (the value of a network's ``source:``).

    Attributes
    ----------
    name : str
    open : callable or None
        ``open(name, spec, preprocessing, model_dir)`` -> :class:`Model`, with
        ``spec`` the network's block (defaults filled in) and
        ``preprocessing`` its resolved ``input_size``/``input_range``. None
        for sources that bring their own stores.
    check : callable
        ``check(where, spec, ctx)`` raises :class:`embmap.config.ConfigError`
        for what the schema cannot see (files that must exist, a task the
        source cannot serve), before any job runs.
    classifier : bool
        The source can give the network's classifier (task closed_set).
    trains : bool
        The workflow trains the network first (rule ``train_network``).
    sized : bool
        The model file states its input size, so the config need not.
    layers : bool
        The source can extract a network's ``layers:`` beside its embedding
        (:meth:`Model.use_layers`); ``savedmodel`` and ``tfhub`` can where the
        model has a ``layers`` function, which only loading it tells.
    """

    name: str
    open: Callable | None
    check: Callable = _no_check
    classifier: bool = True
    trains: bool = False
    sized: bool = False
    layers: bool = True


class Model:
    """A network as a feature function and an optional logits function.

    Parameters
    ----------
    name : str
        The network key (for messages).
    handle : str
        What the features come from (a SavedModel, a file), recorded in stores.
    classifier_handle : str, optional
        What the logits come from, recorded in stores.
    input_size : (int, int), optional
        Images are resized (bilinear) to this size when they differ.
    channels : int, optional
        Greyscale images are repeated to this many channels.
    input_range : (float, float), default (0, 1)
        Pixel values in [0, 1] are rescaled linearly to this range.
    features_layer, logits_layer : callables, optional
        Keras layers or models (with ``.weights``) computing the embedding
        and the logits from preprocessed images. Subclasses that compute
        features otherwise override :meth:`features`.
    """

    #: :meth:`features` and :meth:`logits` may be called from several threads at once (extraction's ``workers``)
    parallel_calls = True
    #: where 4-D layer outputs keep their channels (-1: NHWC; an ONNX graph with channel-first input: 1)
    layer_channel_axis = -1
    #: what the framework calls the names ``layers:`` gives (for messages)
    layer_kind = "layer"
    #: the layers extracted beside the embedding (:meth:`use_layers`) and how each is reduced to a vector
    layers: tuple = ()
    layer_reduction = "mean"

    def __init__(self, name, handle, classifier_handle=None, input_size=None, channels=None,
                 input_range=(0.0, 1.0), features_layer=None, logits_layer=None):
        self.name = name
        self.handle, self.classifier_handle = handle, classifier_handle
        self.input_size = tuple(int(v) for v in input_size) if input_size else None
        self.channels = channels
        self.input_range = tuple(float(v) for v in input_range)
        self.standardize, self.mean, self.std = None, None, None
        self.features_layer, self.logits_layer = features_layer, logits_layer
        self.randomized: dict | None = None  # set by randomize(): seed and counts

    @property
    def has_logits(self) -> bool:
        return self.logits_layer is not None

    def preprocess(self, images):
        t = tf()
        x = t.convert_to_tensor(images, dtype=t.float32)
        if self.input_size and tuple(x.shape[1:3]) != self.input_size:
            x = t.image.resize(x, self.input_size, method="bilinear")
        if self.channels and x.shape[-1] == 1 and self.channels != 1:
            x = t.repeat(x, self.channels, axis=-1)
        lo, hi = self.input_range
        if (lo, hi) != (0.0, 1.0):
            x = x * (hi - lo) + lo
        if self.standardize == "per_image":
            x = t.image.per_image_standardization(x)
        if self.mean is not None or self.std is not None:
            x = (x - (self.mean or 0.0)) / (self.std or 1.0)
        return x

    def normalise_input(self, standardize: str | None = None, mean=None, std=None) -> None:
        """What follows ``input_range`` (the config's ``standardize``, ``mean``, ``std``).

        ``standardize="per_image"``: each image minus its mean, over its
        standard deviation (at least 1 / sqrt(pixels)), facenet's
        ``prewhiten``, which the InceptionResNetV1 Keras ports expect;
        ``mean``, ``std``: then ``(x - mean) / std`` per channel (PyTorch's).
        """
        self.standardize = standardize
        self.mean = [float(v) for v in mean] if mean is not None else None
        self.std = [float(v) for v in std] if std is not None else None

    def input_attrs(self) -> dict:
        """What the network does to pixels in [0, 1] beyond resizing, for the store's ``preprocessing`` attribute."""
        out = {"input_range": list(self.input_range)}
        if self.standardize:
            out["standardize"] = self.standardize
        if self.mean is not None or self.std is not None:
            out.update({"mean": self.mean, "std": self.std})
        return out

    def features(self, images):
        """float32 [batch, feature]: the embedding of each image."""
        import numpy as np

        return self._checked_features(np.asarray(self.features_layer(self.preprocess(images))))

    def _checked_features(self, f):
        import numpy as np

        if f.ndim != 2:
            raise NetworkError(f"network {self.name!r}: features of shape {f.shape}; expected [batch, feature] "
                               "(point the handle at the pre-classifier feature vector)")
        return f.astype(np.float32)

    def logits(self, images):
        """float64 [batch, class]: the classification model's logits."""
        import numpy as np

        if self.logits_layer is None:
            raise NetworkError(f"network {self.name!r}: no classifier handle")
        return np.asarray(self.logits_layer(self.preprocess(images))).astype(np.float64)

    # -- layers beside the embedding ------------------------------------------------
    def layer_names(self) -> list[str]:
        """Every name :meth:`use_layers` accepts, in the model's order; a model that has none raises
        :class:`NetworkError` naming the network.

        This default serves networks whose features come from a Keras
        functional model (``checkpoint``: its layers by name).
        """
        model = self.features_layer
        if not (hasattr(model, "get_layer") and hasattr(model, "layers") and hasattr(model, "inputs")):
            raise NetworkError(f"network {self.name!r}: {self.handle} exposes no layers to extract beside its "
                               "embedding; drop layers")
        return [layer.name for layer in model.layers if not type(layer).__name__ == "InputLayer"]

    def use_layers(self, requested, reduction: str = "mean") -> tuple:
        """Extract the layers ``requested`` names (names or patterns, :func:`.layers.resolve`) in the forward pass
        of the embedding from now on, each reduced by ``reduction``; returns their names. Unknown names are an
        error naming the network and the nearest names, before any image runs."""
        from . import layers as ly

        names = ly.resolve(self.name, list(requested), self.layer_names(), self.layer_kind)
        self._bind_layers(names)
        self.layers, self.layer_reduction = tuple(names), reduction
        return self.layers

    def _bind_layers(self, names: list[str]) -> None:
        """Prepare one forward pass that gives the embedding and the outputs of ``names``."""
        k, model = keras(), self.features_layer
        self._layer_net = k.Model(model.inputs, [model.outputs[0], *[model.get_layer(n).output for n in names]])

    def _raw_layers(self, images):
        """(features float32 [n, feature], {layer: its output [n, ...]}) of one forward pass."""
        import numpy as np

        out = self._layer_net(self.preprocess(images), training=False)
        return self._checked_features(np.asarray(out[0])), {n: np.asarray(v) for n, v in zip(self.layers, out[1:])}

    def features_and_layers(self, images):
        """(features float32 [n, feature], {layer: float32 [n, d]}, {layer: attributes}) of one forward pass: the
        embedding and every layer of :meth:`use_layers`, each reduced to a vector (:func:`.layers.reduce`)."""
        from . import layers as ly

        f, raw = self._raw_layers(images)
        out, attrs = {}, {}
        for name in self.layers:
            out[name], attrs[name] = ly.reduce(raw[name], self.layer_reduction, self.layer_channel_axis)
        return f, out, attrs

    # -- variables ----------------------------------------------------------------
    def variables(self) -> list:
        """Every variable of the feature and classification models, each once."""
        out, seen = [], set()
        for layer in (self.features_layer, self.logits_layer):
            for v in getattr(layer, "weights", []) if layer is not None else []:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    def parameters(self) -> int | None:
        """Parameters of the whole network (batch-norm moving statistics excluded); None without variables."""
        import numpy as np

        from .randomize import variable_name

        weights = [v for v in self.variables() if "moving_" not in variable_name(v)]
        return int(sum(np.prod(v.shape) for v in weights)) if weights else None

    def randomize(self, seed: int, initializer: str = "auto") -> dict:
        """Re-initialise every variable (the random control); see :mod:`embmap.models.randomize`.

        ``initializer`` names the kernels' initialiser (``auto``: NASNet and
        PNASNet handles get TF-slim's ``fan_out``, others ``fan_in``).
        """
        from .randomize import pairing_key, randomize, resolve_initializer, variable_key

        if not self.variables():
            raise NetworkError(f"network {self.name!r}: {self.handle} has no variables to re-initialise (randomize "
                               "is for sources whose weights are variables)")

        key = None
        if self.logits_layer is not None and self.logits_layer is not self.features_layer:
            key = pairing_key(self.features_layer.weights, self.logits_layer.weights)
            if key is None:
                raise NetworkError(f"network {self.name!r}: the variables of {self.handle!r} are not found under "
                                   f"the same names in {self.classifier_handle!r}, so a re-initialisation could "
                                   "not keep the two models alike")
        chosen = resolve_initializer(initializer, self.handle)
        self.randomized = {"seed": int(seed), "requested": initializer,
                           **randomize(self.variables(), seed, key=key or variable_key, initializer=chosen)}
        return self.randomized

    def classifier(self, images, features=None, logits=None, rtol: float | None = None):
        """Locate the final kernel and bias among the classifier's variables and verify them on ``images``.

        Returns (weight [class, feature] float32, bias [class] float32, info).
        Raises :class:`classifiers.NotLocated` when no variables have the
        shapes (recover by :class:`classifiers.LeastSquares` then), and
        :class:`NetworkError` when located variables do not reproduce the logits.
        """
        import numpy as np

        from . import classifiers

        f = (self.features(images) if features is None else features).astype(np.float64)
        z = self.logits(images) if logits is None else logits
        d, c = f.shape[1], z.shape[1]
        try:
            kname, kernel, bname, bias = classifiers.locate(
                [(v.name, v.numpy()) for v in self.logits_layer.weights], d, c)
        except classifiers.NotLocated as e:
            raise classifiers.NotLocated(f"network {self.name!r}: {e}") from None
        weight = kernel.T.astype(np.float64)
        try:
            err = classifiers.verify(f, z, weight, bias, f"{kname}, {bname}", rtol or classifiers.RTOL)
        except classifiers.ClassifierError as e:
            raise NetworkError(f"network {self.name!r}: {e}") from None
        return weight.astype(np.float32), bias.astype(np.float32), {
            "method": "variables", "kernel": kname, "bias": bname, "max_logit_error": err, "n_images": len(f)}


class FileModel(Model):
    """A network read from one model file (keras, tflite, onnx): one forward pass, :meth:`_forward`, gives the
    embedding and, when the network has a classifier (``head``), that classifier's own output."""

    head = None

    @property
    def has_logits(self) -> bool:
        return self.head is not None

    def _run(self, images):
        """(features float32 [n, feature], the classifier's output float64 [n, class] or None, {layer: its output
        [n, ...]} of every layer of :meth:`use_layers`), all from one forward pass."""
        raise NotImplementedError

    def _forward(self, images):
        """(features float32 [n, feature], the classifier's output float64 [n, class] or None)."""
        return self._run(images)[:2]

    def _raw_layers(self, images):
        f, _, raw = self._run(images)
        return f, raw

    def features(self, images):
        return self._forward(images)[0]

    def logits(self, images):
        """float64 [batch, class]: the classifier's own output (before any activation that follows it)."""
        if self.head is None:
            raise NetworkError(f"network {self.name!r}: classifier: none")
        return self._forward(images)[1]
