"""Source ``keras``: a Keras Applications model by name, or a saved Keras model file (Keras 3).

- ``application: NAME`` builds ``keras.applications.NAME`` with its top and
  ``classifier_activation=None`` (logits); ``weights`` is ``imagenet``
  (Keras downloads them on first use into ``KERAS_HOME``), a weights file, or
  null (untrained). Pixels are scaled to 0-255 and passed through the
  application's own ``preprocess_input``. Its classifier is the
  ``predictions`` layer; 1,000 classes (label offset 1 on ImageNet's labels).
- ``model: FILE.keras | FILE.h5`` loads a saved model (``safe_mode`` as
  Keras: a file with Lambda layers needs ``safe_mode: false``); the config
  states what pixel values it expects (``input_range``, ``standardize``,
  ``mean``/``std``).

``features`` names the layer whose output is the embedding (default: the
input of the classifier layer); ``classifier`` names the Dense layer whose
kernel and bias are C and b (default: the model's last layer; ``none``: no
classifier, open_set only). C and b are verified against the layer's own
outputs, through its activation (a softmax head is checked on its
probabilities). A layer name that does not exist lists the model's layers.

Standard library only at import time (the source registry imports it).
"""

from __future__ import annotations

from ..config import ConfigError
from .base import (NONE, FileModel, Model, NetworkError, Source, check_model_file, config_networks,
                   listing)


def _keras():
    import keras

    return keras


def application(name: str, app: str, weights):
    """(model with logits, its preprocess_input, handle) of ``keras.applications.APP``."""
    import importlib

    k = _keras()
    fn = getattr(k.applications, app, None)
    if not callable(fn) or not app[:1].isupper():
        known = sorted(n for n in dir(k.applications) if n[:1].isupper() and callable(getattr(k.applications, n)))
        raise NetworkError(f"network {name!r}: keras.applications has no model {app!r}; it has {', '.join(known)}")
    from_file = weights not in (None, "imagenet")
    try:
        model = fn(weights=None if from_file else weights, include_top=True, classifier_activation=None)
    except Exception as e:  # a download that fails raises many kinds
        raise NetworkError(
            f"network {name!r}: keras.applications.{app}(weights={weights!r}) failed: {e}. ImageNet weights are "
            "downloaded by Keras on first use into $KERAS_HOME/models (default ~/.keras/models); where jobs have no "
            "network, run `python -m embmap fetch CONFIG` once where there is, with the same KERAS_HOME") from None
    if from_file:
        try:
            model.load_weights(str(weights))
        except Exception as e:  # keras raises many kinds
            raise NetworkError(f"network {name!r}: weights {weights} do not fit keras.applications.{app}: {e}") \
                from None
    preprocess = importlib.import_module(fn.__module__).preprocess_input
    return model, preprocess, f"keras.applications.{app}"


def pass_through(layer) -> bool:
    """A layer without weights that may follow a classifier (its activation, a Flatten, a Dropout)."""
    k = _keras()
    return isinstance(layer, (k.layers.Activation, k.layers.Softmax, k.layers.Flatten, k.layers.Reshape,
                              k.layers.Dropout))


def linear(layer) -> bool:
    """A Dense layer, or a 1 x 1 convolution (MobileNetV3's head) read as one."""
    k = _keras()
    return isinstance(layer, k.layers.Dense) or (isinstance(layer, k.layers.Conv2D)
                                                 and tuple(layer.kernel_size) == (1, 1))


def load_file(name: str, path: str, safe_mode: bool):
    k = _keras()
    try:
        return k.models.load_model(str(path), compile=False, safe_mode=bool(safe_mode))
    except ValueError as e:
        if "safe_mode" in str(e):
            raise NetworkError(f"network {name!r}: {path} holds Lambda layers, which Keras deserialises only with "
                               f"safe_mode: false (they run code stored in the file; set it if you trust {path})") \
                from None
        raise NetworkError(f"network {name!r}: cannot load the Keras model {path}: {e}") from None
    except Exception as e:  # h5py and keras raise many kinds
        hint = (" (Lambda layers saved by another Python version cannot be read back; re-save the model, or build "
                "its architecture and load_weights)" if "marshal" in str(e) or "EOF" in str(e) else "")
        raise NetworkError(f"network {name!r}: cannot load the Keras model {path}: {type(e).__name__}: {e}{hint}") \
            from None


class KerasModel(FileModel):
    """A Keras 3 model: one forward pass gives the embedding and the classifier layer's output."""

    def __init__(self, name: str, spec: dict, preprocessing: dict):
        k = _keras()
        self.preprocess_input = None
        if spec.get("application"):
            model, self.preprocess_input, handle = application(name, spec["application"], spec["weights"])
            input_range = (0.0, 255.0)
        else:
            model, handle = load_file(name, spec["model"], spec["safe_mode"]), str(spec["model"])
            input_range = preprocessing.get("input_range") or (0.0, 1.0)
        own = tuple(model.inputs[0].shape[1:3])
        size = preprocessing.get("input_size")
        if size and None not in own and tuple(size) != own:
            raise NetworkError(f"network {name!r}: {handle} takes {own[0]} x {own[1]} images, the config asks for "
                               f"{size[0]} x {size[1]} (drop input_size, or fixed_input: true beside an experiment's "
                               "preprocessing.input_size)")
        size = size or (own if None not in own else None)
        if not size:
            raise NetworkError(f"network {name!r}: {handle} accepts any image size; give input_size")
        layers = [layer.name for layer in model.layers]

        def layer(key: str):
            try:
                return model.get_layer(spec[key])
            except ValueError:
                raise NetworkError(f"network {name!r}: {handle} has no layer {spec[key]!r} ({key}); its layers: "
                                   f"{listing(layers)}") from None

        head = None
        if spec.get("classifier") != NONE:
            head = layer("classifier") if spec.get("classifier") else model.layers[-1]
            while not spec.get("classifier") and pass_through(head):  # a final Activation, Flatten...
                head = head.input._keras_history[0]
            if not linear(head):
                raise NetworkError(f"network {name!r}: the classifier layer {head.name!r} of {handle} is a "
                                   f"{type(head).__name__}, not a Dense layer (or 1 x 1 convolution); name the layer "
                                   "giving the logits (classifier: LAYER), or classifier: none for a network without "
                                   "one")
        if spec.get("features"):
            feats = layer("features").output
        elif head is not None:
            feats = head.input
        else:
            feats = model.outputs[0]
        super().__init__(name, handle, handle if head is not None else None, size, 3, input_range)
        self.model, self.head, self._feats = model, head, feats
        self._bind_layers([])
        self.features_layer = model  # its weights are every variable (randomize, parameters); its layers by name

    def _bind_layers(self, names: list[str]) -> None:
        """One model giving the embedding, the classifier's output and every layer of ``names``."""
        k = _keras()
        heads = [self.head.output] if self.head is not None else []
        self.net = k.Model(self.model.inputs, [self._feats, *heads, *[self.model.get_layer(n).output for n in names]])

    def input_attrs(self) -> dict:
        out = super().input_attrs()
        if self.preprocess_input is not None:
            out["preprocess_input"] = f"{self.preprocess_input.__module__}.preprocess_input"
        return out

    def _run(self, images):
        import numpy as np

        x = self.preprocess(images)
        if self.preprocess_input is not None:
            x = self.preprocess_input(x)
        out = self.net([x], training=False)
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        raw = {n: np.asarray(v) for n, v in zip(self.layers, out[len(out) - len(self.layers):])}
        out = out[:len(out) - len(self.layers)]
        f = np.asarray(out[0])
        if f.ndim == 4 and f.shape[1:3] == (1, 1):  # the input of a 1 x 1 convolution head
            f = f.reshape(len(f), -1)
        if f.ndim != 2:
            raise NetworkError(f"network {self.name!r}: the feature layer gives shape {f.shape[1:]} per image; "
                               "expected a vector (name a pooled or flattened layer as features)")
        z = np.asarray(out[1], np.float64).reshape(len(f), -1) if len(out) > 1 else None
        return f.astype(np.float32), z, raw

    def _head(self):
        import numpy as np

        kernel = np.asarray(self.head.kernel.numpy(), np.float64)
        kernel = kernel.reshape(-1, kernel.shape[-1])  # a 1 x 1 convolution's [1, 1, in, out]
        bias = np.asarray(self.head.bias.numpy(), np.float64) if self.head.use_bias else np.zeros(kernel.shape[1])
        return kernel, bias

    def logits(self, images):
        """float64 [batch, class]: the classifier layer before its activation, C f + b."""
        if self.head is None:
            raise NetworkError(f"network {self.name!r}: classifier: none")
        kernel, bias = self._head()
        return self._forward(images)[0].astype("float64") @ kernel + bias

    def classifier(self, images, features=None, logits=None, rtol: float | None = None):
        """C, b of the classifier layer, verified: its activation of C f + b must equal the layer's own output."""
        import numpy as np

        from . import classifiers

        k = _keras()
        f, out = self._forward(images)
        kernel, bias = self._head()
        if kernel.shape[0] != f.shape[1]:
            raise NetworkError(f"network {self.name!r}: the classifier layer {self.head.name!r} reads "
                               f"{kernel.shape[0]} features, the feature layer gives {f.shape[1]}")
        z = f.astype(np.float64) @ kernel + bias
        activated = np.asarray(k.ops.convert_to_numpy(self.head.activation(k.ops.convert_to_tensor(
            z.astype(np.float32)))), np.float64)
        try:
            err = classifiers.verify_outputs(activated, out, f"layer {self.head.name!r} (kernel, bias)",
                                             rtol or classifiers.RTOL)
        except classifiers.ClassifierError as e:
            raise NetworkError(f"network {self.name!r}: {e}") from None
        activation = getattr(self.head.activation, "__name__", str(self.head.activation))
        return kernel.T.astype(np.float32), bias.astype(np.float32), {
            "method": "variables", "kernel": self.head.kernel.path, "layer": self.head.name,
            "bias": self.head.bias.path if self.head.use_bias else None, "activation": activation,
            "max_logit_error": err, "n_images": len(f)}


def check(where: str, spec: dict, ctx) -> None:
    check_model_file(where, spec, ctx)
    if spec.get("model"):
        if spec.get("input_range") is None and spec.get("standardize", "none") == "none":
            raise ConfigError(f"{where}.input_range: a model file does not say what pixel values it expects; give "
                              "input_range (e.g. [0, 255] or [-1, 1]) or standardize: per_image")
    elif spec.get("input_range") is not None or spec.get("mean") is not None:
        raise ConfigError(f"{where}.input_range: an application preprocesses with its own preprocess_input")
    weights = spec.get("weights")
    if weights not in (None, "imagenet") and ctx.check_paths and not ctx.path(weights).exists():
        raise ConfigError(f"{where}.weights: nothing at {ctx.path(weights)} (imagenet, a file, or null)")


def fetch(config_path) -> list[tuple[str, str]]:
    """Download the ImageNet weights of every Keras application of a config into ``KERAS_HOME``.

    Returns (application, the folder Keras keeps its weights in) pairs.
    """
    import os

    apps = [spec["application"] for spec in config_networks(config_path, "keras")
            if spec.get("application") and spec.get("weights", "imagenet") == "imagenet"]
    home = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")
    for app in dict.fromkeys(apps):
        application(app, app, "imagenet")
    return [(f"keras.applications.{app}", home) for app in dict.fromkeys(apps)]


def open_keras(name: str, spec: dict, preprocessing: dict, model_dir=None) -> Model:
    return KerasModel(name, spec, preprocessing)


SOURCE = Source("keras", open_keras, check, sized=True)
