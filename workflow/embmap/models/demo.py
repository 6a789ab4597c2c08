"""Source ``train``: the demo architectures, trained by the workflow on the dataset's ``train`` split.

Four architectures of clearly different design (:data:`ARCHITECTURES`: an
MLP, a CNN, a ResNet and a separable CNN), each ending in a layer named
``embedding`` before a one-layer classifier; every layer has a fixed name
(``conv1``, ``block1_add``, ...), which a network's ``layers:`` names. Training exports a pair of
SavedModels (feature vector and classification) that are read back through
``tensorflow_hub.KerasLayer``, so the demo runs the same loading code as a
TF Hub model. Standard library only at import time.
"""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigError
from .base import Model, NetworkError, Source, keras, tf
from .hub import LAYER_ORDER, LAYERS


def _mlp(k, x, width):
    x = k.layers.Flatten(name="flatten")(x)
    x = k.layers.Dense(2 * width, activation="relu", name="hidden")(x)
    return k.layers.Dense(width, activation="relu", name="embedding")(x)


def _cnn(k, x, width):
    x = k.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(x)
    x = k.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
    x = k.layers.MaxPooling2D(name="pool")(x)
    x = k.layers.Flatten(name="flatten")(x)
    return k.layers.Dense(width, activation="relu", name="embedding")(x)


def _resnet(k, x, width):
    x = k.layers.Conv2D(width, 3, padding="same", name="stem")(x)
    for i in (1, 2):
        y = k.layers.BatchNormalization(momentum=0.9, name=f"block{i}_bn1")(x)
        y = k.layers.Activation("relu", name=f"block{i}_relu1")(y)
        y = k.layers.Conv2D(width, 3, padding="same", name=f"block{i}_conv1")(y)
        y = k.layers.BatchNormalization(momentum=0.9, name=f"block{i}_bn2")(y)
        y = k.layers.Activation("relu", name=f"block{i}_relu2")(y)
        y = k.layers.Conv2D(width, 3, padding="same", name=f"block{i}_conv2")(y)
        x = k.layers.Add(name=f"block{i}_add")([x, y])
    x = k.layers.Activation("relu", name="relu")(k.layers.BatchNormalization(momentum=0.9, name="bn")(x))
    return k.layers.GlobalAveragePooling2D(name="embedding")(x)


def _separable(k, x, width):
    x = k.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(x)
    x = k.layers.SeparableConv2D(64, 3, padding="same", activation="relu", name="sepconv1")(x)
    x = k.layers.SeparableConv2D(width, 3, padding="same", activation="relu", name="sepconv2")(x)
    return k.layers.GlobalMaxPooling2D(name="embedding")(x)


ARCHITECTURES = {"mlp": _mlp, "cnn": _cnn, "resnet": _resnet, "separable": _separable}


def build(architecture: str, input_shape, n_classes: int, width: int, seed: int):
    """A (feature model, classification model) pair sharing layers; the classifier is one Dense layer."""
    if architecture not in ARCHITECTURES:
        raise NetworkError(f"architecture {architecture!r}: use one of {sorted(ARCHITECTURES)}")
    k = keras()
    k.utils.set_random_seed(seed)
    inp = k.Input(shape=tuple(input_shape), name="image")
    feat = ARCHITECTURES[architecture](k, inp, int(width))
    logits = k.layers.Dense(n_classes, name="logits")(feat)
    return k.Model(inp, feat, name=f"{architecture}_features"), k.Model(inp, logits, name=f"{architecture}_classifier")


def train(architecture: str, width: int, epochs: int, seed: int, batch_size: int, learning_rate: float,
          images, labels, n_classes: int, out_dir, log=print) -> dict:
    """Train a demo network and export it as ``feature_vector/`` and ``classification/`` SavedModels.

    ``images`` float32 [n, h, w, c] in [0, 1], ``labels`` int [n] in
    [0, n_classes). ``epochs: 0`` exports the network at its seeded
    initialisation: the paper's random control. TensorFlow's op determinism
    is on, so with a fixed thread count the weights are the same every run.
    Returns a summary (also written to ``out_dir/training.json``).
    """
    import json

    t, k = tf(), keras()
    t.config.experimental.enable_op_determinism()
    feat, cls = build(architecture, images.shape[1:], n_classes, width, seed)
    history = {}
    if epochs > 0:
        cls.compile(optimizer=k.optimizers.Adam(float(learning_rate)),
                    loss=k.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        h = cls.fit(images, labels, epochs=int(epochs), batch_size=int(batch_size), shuffle=True,
                    verbose=0, callbacks=[k.callbacks.LambdaCallback(
                        on_epoch_end=lambda e, logs: log(f"epoch {e + 1}/{epochs} " + " ".join(
                            f"{m}={v:.4f}" for m, v in logs.items())))])
        history = {m: [float(v) for v in vals] for m, vals in h.history.items()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    export(feat, out / "feature_vector", layers=True)
    export(cls, out / "classification")
    summary = {"architecture": architecture, "seed": int(seed), "epochs": int(epochs),
               "embedding_dim": int(feat.output_shape[-1]), "n_classes": int(n_classes),
               "train_accuracy": history.get("accuracy", [None])[-1], "history": history}
    (out / "training.json").write_text(json.dumps(summary, indent=1))
    return summary


def export(model, path, layers: bool = False) -> None:
    """Save ``model`` as a TF Hub reusable SavedModel: ``__call__`` on float32 images [batch, *input shape]
    (inference mode), ``variables``, ``trainable_variables`` and ``regularization_losses``.

    ``layers``: also a function ``layers`` on the same images giving every layer's output in one pass, as a
    dict by layer name whose ``embedding`` is the model's output (:data:`embmap.models.hub.LAYERS`: how a
    SavedModel exposes its layers to a network's ``layers:``).

    One traced function instead of Keras' export, which also traces every layer's call for Keras to rebuild
    the model: 4x faster to save and 3x faster to load through ``hub.KerasLayer``, with the same outputs bit
    for bit (``tests/models/test_networks.py``).
    """
    t = tf()
    obj = t.train.Checkpoint()
    obj.variables = list(model.variables)
    obj.trainable_variables = list(model.trainable_variables)
    obj.regularization_losses = []
    spec = t.TensorSpec([None, *model.input_shape[1:]], t.float32, name="images")
    obj.__call__ = t.function(lambda images: model(images, training=False), input_signature=[spec])
    if layers:
        named = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
        every = keras().Model(model.inputs, [layer.output for layer in named])
        setattr(obj, LAYERS, t.function(lambda images: dict(zip([layer.name for layer in named],
                                                                every(images, training=False))),
                                        input_signature=[spec]))
        setattr(obj, LAYER_ORDER, t.Variable([layer.name for layer in named], trainable=False))
    t.saved_model.save(obj, str(path))


def check(where: str, spec: dict, ctx) -> None:
    part = spec["train"]["part"]
    if part and not 0 <= part[0] < part[1]:
        raise ConfigError(f"{where}.train.part: {part} must be [i, k] with 0 <= i < k")


def open_trained(name: str, spec: dict, preprocessing: dict, model_dir=None) -> Model:
    """The exported pair of SavedModels, read through ``hub.KerasLayer`` exactly as a TF Hub model is."""
    from .hub import hub_model

    if model_dir is None:
        raise NetworkError(f"network {name!r}: source 'train' needs the folder its training job exported")
    return hub_model(name, f"{model_dir}/feature_vector", f"{model_dir}/classification")


SOURCE = Source("train", open_trained, check, trains=True)
