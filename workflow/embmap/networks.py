"""Networks: build and train the demo architectures, load any SavedModel / TF Hub handle, extract features.

Every network is read the same way, through ``tensorflow_hub.KerasLayer``:
a *feature-vector* handle gives the embedding (the layer just before the
classifier) and an optional *classification* handle gives logits. The
classifier's weight and bias are located among the classification model's
variables by shape and verified against its own logits, so stores carry
``classifier/weight`` [class, feature] and ``classifier/bias`` [class].

The demo architectures (``ARCHITECTURES``) are trained by the workflow and
exported as such a pair of SavedModels, so the demo runs the same loading
code as a TF Hub model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class NetworkError(ValueError):
    pass


def _tf():
    import tensorflow as tf

    return tf


def _keras():
    import tf_keras

    return tf_keras


# -- demo architectures -------------------------------------------------------------
def _mlp(k, x, width):
    x = k.layers.Flatten()(x)
    x = k.layers.Dense(2 * width, activation="relu")(x)
    return k.layers.Dense(width, activation="relu", name="embedding")(x)


def _cnn(k, x, width):
    x = k.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = k.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = k.layers.MaxPooling2D()(x)
    x = k.layers.Flatten()(x)
    return k.layers.Dense(width, activation="relu", name="embedding")(x)


def _resnet(k, x, width):
    x = k.layers.Conv2D(width, 3, padding="same")(x)
    for _ in range(2):
        y = k.layers.BatchNormalization(momentum=0.9)(x)
        y = k.layers.Activation("relu")(y)
        y = k.layers.Conv2D(width, 3, padding="same")(y)
        y = k.layers.BatchNormalization(momentum=0.9)(y)
        y = k.layers.Activation("relu")(y)
        y = k.layers.Conv2D(width, 3, padding="same")(y)
        x = k.layers.Add()([x, y])
    x = k.layers.Activation("relu")(k.layers.BatchNormalization(momentum=0.9)(x))
    return k.layers.GlobalAveragePooling2D(name="embedding")(x)


def _separable(k, x, width):
    x = k.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = k.layers.SeparableConv2D(64, 3, padding="same", activation="relu")(x)
    x = k.layers.SeparableConv2D(width, 3, padding="same", activation="relu")(x)
    return k.layers.GlobalMaxPooling2D(name="embedding")(x)


ARCHITECTURES = {"mlp": _mlp, "cnn": _cnn, "resnet": _resnet, "separable": _separable}


def build(architecture: str, input_shape, n_classes: int, width: int, seed: int):
    """A (feature model, classification model) pair sharing layers; the classifier is one Dense layer."""
    if architecture not in ARCHITECTURES:
        raise NetworkError(f"architecture {architecture!r}: use one of {sorted(ARCHITECTURES)}")
    k = _keras()
    k.utils.set_random_seed(seed)
    inp = k.Input(shape=tuple(input_shape), name="image")
    feat = ARCHITECTURES[architecture](k, inp, int(width))
    logits = k.layers.Dense(n_classes, name="logits")(feat)
    return k.Model(inp, feat, name=f"{architecture}_features"), k.Model(inp, logits, name=f"{architecture}_classifier")


def train(spec: dict, images: np.ndarray, labels: np.ndarray, n_classes: int, out_dir, log=print) -> dict:
    """Train a demo network and export it as ``feature_vector/`` and ``classification/`` SavedModels.

    ``spec`` is the network's ``train:`` block (architecture, width, epochs,
    seed, batch_size, learning_rate). ``epochs: 0`` exports the network at
    its seeded initialisation: the paper's random control.
    Returns a summary (also written to ``out_dir/training.json``).
    """
    tf, k = _tf(), _keras()
    seed = int(spec.get("seed", 0))
    tf.config.experimental.enable_op_determinism()
    feat, cls = build(spec["architecture"], images.shape[1:], n_classes, spec.get("width", 64), seed)
    epochs = int(spec.get("epochs", 20))
    history = {}
    if epochs > 0:
        cls.compile(optimizer=k.optimizers.Adam(float(spec.get("learning_rate", 1e-3))),
                    loss=k.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        h = cls.fit(images, labels, epochs=epochs, batch_size=int(spec.get("batch_size", 64)), shuffle=True,
                    verbose=0, callbacks=[k.callbacks.LambdaCallback(
                        on_epoch_end=lambda e, logs: log(f"epoch {e + 1}/{epochs} " + " ".join(
                            f"{m}={v:.4f}" for m, v in logs.items())))])
        history = {m: [float(v) for v in vals] for m, vals in h.history.items()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(feat, str(out / "feature_vector"))
    tf.saved_model.save(cls, str(out / "classification"))
    summary = {"architecture": spec["architecture"], "seed": seed, "epochs": epochs,
               "embedding_dim": int(feat.output_shape[-1]), "n_classes": n_classes,
               "train_accuracy": history.get("accuracy", [None])[-1], "history": history}
    (out / "training.json").write_text(json.dumps(summary, indent=1))
    return summary


# -- loading any SavedModel / TF Hub handle ------------------------------------------
def _handle(h: str) -> str:
    return h.removeprefix("file://")


class Network:
    """A network read through ``hub.KerasLayer``.

    Parameters
    ----------
    name : str
        The network key (for messages).
    handle : str
        Feature-vector SavedModel directory or TF Hub URL.
    classifier : str, optional
        Classification SavedModel directory or URL (logits).
    input_size : (int, int), optional
        Images are resized (bilinear) to this size when they differ.
    channels : int, optional
        Greyscale images are repeated to this many channels.
    input_range : (float, float), default (0, 1)
        Pixel values in [0, 1] are rescaled linearly to this range.
    """

    def __init__(self, name, handle, classifier=None, input_size=None, channels=None, input_range=(0.0, 1.0)):
        import tensorflow_hub as hub

        self.name = name
        self.handle, self.classifier_handle = handle, classifier
        self.input_size = tuple(input_size) if input_size else None
        self.channels = channels
        self.input_range = tuple(float(v) for v in input_range)
        try:
            self.features_layer = hub.KerasLayer(_handle(handle))
            self.logits_layer = hub.KerasLayer(_handle(classifier)) if classifier else None
        except Exception as e:  # tf raises many kinds; name the network and the handle
            raise NetworkError(f"network {name!r}: cannot load {handle!r}"
                               f"{' / ' + repr(classifier) if classifier else ''}: {e}") from e

    def preprocess(self, images: np.ndarray):
        tf = _tf()
        x = tf.convert_to_tensor(images, dtype=tf.float32)
        if self.input_size and tuple(x.shape[1:3]) != self.input_size:
            x = tf.image.resize(x, self.input_size, method="bilinear")
        if self.channels and x.shape[-1] == 1 and self.channels != 1:
            x = tf.repeat(x, self.channels, axis=-1)
        lo, hi = self.input_range
        if (lo, hi) != (0.0, 1.0):
            x = x * (hi - lo) + lo
        return x

    def features(self, images: np.ndarray) -> np.ndarray:
        f = self.features_layer(self.preprocess(images)).numpy()
        if f.ndim != 2:
            raise NetworkError(f"network {self.name!r}: features of shape {f.shape}; expected [batch, feature] "
                               "(point the handle at the pre-classifier feature vector)")
        return f.astype(np.float32)

    def logits(self, images: np.ndarray) -> np.ndarray:
        if self.logits_layer is None:
            raise NetworkError(f"network {self.name!r}: no classifier handle")
        return self.logits_layer(self.preprocess(images)).numpy().astype(np.float64)

    def classifier(self, images: np.ndarray, rtol: float = 1e-3) -> tuple[np.ndarray, np.ndarray, dict]:
        """Locate the final Dense layer among the classifier's variables and verify it on ``images``.

        Returns (weight [class, feature] float32, bias [class] float32, info).
        """
        f = self.features(images).astype(np.float64)
        z = self.logits(images)
        d, c = f.shape[1], z.shape[1]
        variables = [(v.name, v.numpy()) for v in self.logits_layer.weights]
        kernels = [(n, v) for n, v in variables if v.shape == (d, c)]
        biases = [(n, v) for n, v in variables if v.shape == (c,)]
        if not kernels or not biases:
            raise NetworkError(f"network {self.name!r}: no [{d}, {c}] kernel with a [{c}] bias among the "
                               f"classifier's {len(variables)} variables")
        kname, kernel = kernels[-1]
        # the bias declared with the kernel, else the last [c] vector
        prefix = kname.rsplit("/", 1)[0]
        bname, bias = next(((n, v) for n, v in biases if n.rsplit("/", 1)[0] == prefix), biases[-1])
        weight = kernel.T.astype(np.float64)
        err = float(np.abs(f @ weight.T + bias - z).max())
        scale = float(np.abs(z).max()) + 1.0
        if err > rtol * scale:
            raise NetworkError(f"network {self.name!r}: classifier variables {kname}, {bname} do not reproduce "
                               f"the model's logits (max error {err:.3g}); the feature and classification handles "
                               "may not belong to the same network")
        return weight.astype(np.float32), bias.astype(np.float32), {"kernel": kname, "bias": bname,
                                                                      "max_logit_error": err}


def open_network(name: str, spec: dict, model_dir: str | None = None) -> Network:
    """The :class:`Network` for a config entry (``source: savedmodel``, a trained ``source: train``, or a face
    network, ``source: frozen_graph`` or ``arcface``, see :mod:`embmap.faces`)."""
    if spec["source"] in ("frozen_graph", "arcface"):
        from .faces import open_face_network

        return open_face_network(name, spec)
    if spec["source"] == "train":
        return Network(name, f"{model_dir}/feature_vector", f"{model_dir}/classification")
    if spec["source"] == "savedmodel":
        return Network(name, spec["handle"], spec.get("classifier"), spec.get("input_size"), spec.get("channels"),
                       spec.get("input_range", (0.0, 1.0)))
    raise NetworkError(f"network {name!r}: source {spec['source']!r} is not a model")


# -- extraction ---------------------------------------------------------------------
def model_fingerprint(handle: str | None) -> dict | None:
    """What identifies a model's weights: for a local directory its files' names, sizes and times; else the handle."""
    if not handle:
        return None
    root = Path(handle)
    if not root.is_dir():
        return {"handle": handle}
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {"handle": str(root.resolve()),
            "files": [[str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]}


def extract(network: Network, dataset, ids, labels, path, chunk_rows: int | None = None, batch_size: int = 256,
            with_classifier: bool = True, attrs: dict | None = None, progress: bool = True,
            normalise: bool = False, log=None) -> None:
    """Write ``network``'s embeddings of the images ``ids`` into the store at ``path``, batch by batch.

    ``normalise`` scales every embedding to unit L2 norm before it is stored
    (face networks compare embeddings on the unit hypersphere).

    Memory holds one batch and one chunk, whatever the number of images. The
    store is built at ``<path>.partial`` and appears at ``path`` only when every
    row is written; an interrupted extraction run again with the same network,
    images and options continues from its last durable chunk (see
    :class:`embmap.stores.ResumableStore`) and gives the same store.
    """
    from tqdm import tqdm

    from . import datasets as ds
    from . import stores as st

    ids = np.asarray(ids, dtype=str)
    n = len(ids)
    if n == 0:
        raise NetworkError(f"network {network.name!r}: no images to extract into {path}")
    fingerprint = {
        "network": network.name, "model": model_fingerprint(network.handle),
        "classifier": model_fingerprint(network.classifier_handle) if with_classifier else None,
        "input_size": network.input_size, "channels": network.channels, "input_range": network.input_range,
        "chunk_rows": chunk_rows, "batch_size": batch_size, "normalise": bool(normalise), "attrs": attrs,
    }
    store = st.ResumableStore(path, ids, labels, fingerprint, chunk_rows=chunk_rows, batch_size=batch_size,
                              name=f"network {network.name!r}")
    if store.start and log:
        log(f"resuming {store.partial} at row {store.start} of {n} ({store.resumed_rows} rows were on disk)")
    want_classifier = with_classifier and network.logits_layer is not None
    bar = tqdm(total=n, initial=store.start, desc=f"{network.name} -> {Path(path).name}", unit="img",
               disable=not progress, mininterval=2.0)
    images = None
    for offset, images in ds.batches(dataset, ids[store.start:], batch_size):
        f = network.features(images)
        if normalise:
            f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        if want_classifier and not store.has_classifier:
            w, b, info = network.classifier(images)
            st.write_classifier(store.group, w, b, info)
        store.append(f)
        bar.update(len(images))
    bar.close()
    if images is None:  # resumed with nothing left but the final rename
        images = next(ds.batches(dataset, ids[:1], 1))[1]
        if want_classifier and not store.has_classifier:
            st.write_classifier(store.group, *network.classifier(images)[:2])
    store.finish({
        "network": network.name, "handle": network.handle, "classifier_handle": network.classifier_handle,
        "input_size": list(network.input_size) if network.input_size else list(images.shape[1:3]),
        "preprocessing": {"input_range": list(network.input_range), "resize": "bilinear",
                          "channels": network.channels},
        "l2_normalised": bool(normalise), "created": st.now(), "versions": st.versions(), **(attrs or {}),
    })
