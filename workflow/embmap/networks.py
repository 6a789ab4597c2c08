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

from . import classifiers

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
TFHUB = "https://tfhub.dev/"


def _variable_key(name: str) -> str:
    from .randomize import variable_key

    return variable_key(name)


def _handle(h: str) -> str:
    return h.removeprefix("file://")


def hub_handle(h: str) -> str:
    """A TF Hub handle as a URL: ``google/imagenet/inception_v3/feature_vector/5`` -> ``https://tfhub.dev/google/...``."""
    if "://" in h or h.startswith(("/", ".", "~")):
        return h
    return TFHUB + h.lstrip("/")


def _is_remote(h: str) -> bool:
    return "://" in h and not h.startswith("file://")


def _load_hub(name: str, which: str, handle: str):
    import tensorflow_hub as hub

    try:
        return hub.KerasLayer(_handle(handle))
    except Exception as e:  # tf/hub raise many kinds; name the network and the handle
        hint = ""
        if _is_remote(handle):
            cache = os.environ.get("TFHUB_CACHE_DIR", "the default TF Hub cache")
            hint = (f" (the handle did not answer and is not in {cache}; on a node without network access, "
                    "fetch the models first where there is: python -m embmap fetch CONFIG, with the same "
                    "TFHUB_CACHE_DIR)")
        raise NetworkError(f"network {name!r}: cannot load {which} handle {handle!r}{hint}: {e}") from e


def fetch(config_path) -> list[tuple[str, str]]:
    """Download the TF Hub models of every ``tfhub`` network in a config into the TF Hub cache.

    Compute nodes without network access then load them from the same
    ``TFHUB_CACHE_DIR``. Returns (handle, local folder) pairs.
    """
    import tensorflow_hub as hub
    import yaml

    config = yaml.safe_load(Path(config_path).read_text())
    handles = []
    for exp in (config.get("experiments") or {}).values():
        for spec in (exp.get("networks") or {}).values():
            if spec.get("source") == "tfhub":
                handles += [hub_handle(spec[k]) for k in ("handle", "classifier") if spec.get(k)]
    out = []
    for h in dict.fromkeys(handles):
        try:
            out.append((h, hub.resolve(h)))
        except Exception as e:  # the resolver raises many kinds
            raise NetworkError(f"TF Hub handle {h!r} did not answer: {e}") from e
    return out


class Network:
    """A network as a feature model and an optional classification model (logits).

    Parameters
    ----------
    name : str
        The network key (for messages).
    handle : str
        Feature-vector SavedModel directory or TF Hub URL, read through ``hub.KerasLayer``.
    classifier : str, optional
        Classification SavedModel directory or URL (logits).
    input_size : (int, int), optional
        Images are resized (bilinear) to this size when they differ.
    channels : int, optional
        Greyscale images are repeated to this many channels.
    input_range : (float, float), default (0, 1)
        Pixel values in [0, 1] are rescaled linearly to this range.
    layers : (features, logits), optional
        Callables with ``.weights`` used instead of loading ``handle`` (Keras models).
    """

    randomized: dict | None = None  # set by randomize(): seed and counts

    def __init__(self, name, handle, classifier=None, input_size=None, channels=None, input_range=(0.0, 1.0),
                 layers=None):
        self.name = name
        self.handle, self.classifier_handle = handle, classifier
        self.input_size = tuple(int(v) for v in input_size) if input_size else None
        self.channels = channels
        self.input_range = tuple(float(v) for v in input_range)
        self.randomized: dict | None = None
        if layers is not None:
            self.features_layer, self.logits_layer = layers
        else:
            self.features_layer = _load_hub(name, "feature-vector", handle)
            self.logits_layer = _load_hub(name, "classification", classifier) if classifier else None

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
        f = np.asarray(self.features_layer(self.preprocess(images)))
        if f.ndim != 2:
            raise NetworkError(f"network {self.name!r}: features of shape {f.shape}; expected [batch, feature] "
                               "(point the handle at the pre-classifier feature vector)")
        return f.astype(np.float32)

    def logits(self, images: np.ndarray) -> np.ndarray:
        if self.logits_layer is None:
            raise NetworkError(f"network {self.name!r}: no classifier handle")
        return np.asarray(self.logits_layer(self.preprocess(images))).astype(np.float64)

    # -- variables ----------------------------------------------------------------
    def variables(self) -> list:
        """Every variable of the feature and classification models, each once."""
        out, seen = [], set()
        for layer in (getattr(self, "features_layer", None) or getattr(self, "model", None), self.logits_layer):
            for v in getattr(layer, "weights", []) if layer is not None else []:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    def parameters(self) -> int:
        """Parameters of the whole network (the classification model's variables, else the feature model's).

        Batch-norm moving statistics are not parameters and are not counted; None when the
        network exposes no variables (frozen graphs).
        """
        weights = [v for v in self.variables() if "moving_" not in v.name]
        return int(sum(np.prod(v.shape) for v in weights)) if weights else None

    def randomize(self, seed: int) -> dict:
        """Re-initialise every variable (the random control); see :mod:`embmap.randomize`."""
        from .randomize import pairing_key, randomize

        key = None
        if self.logits_layer is not None and self.logits_layer is not self.features_layer:
            key = pairing_key(self.features_layer.weights, self.logits_layer.weights)
            if key is None:
                raise NetworkError(f"network {self.name!r}: the variables of {self.handle!r} are not found under "
                                   f"the same names in {self.classifier_handle!r}, so a re-initialisation could "
                                   "not keep the two models alike")
        self.randomized = {"seed": int(seed), **randomize(self.variables(), seed, key=key or _variable_key)}
        return self.randomized

    def classifier(self, images: np.ndarray, features: np.ndarray | None = None,
                   logits: np.ndarray | None = None, rtol: float = classifiers.RTOL):
        """Locate the final kernel and bias among the classifier's variables and verify them on ``images``.

        Returns (weight [class, feature] float32, bias [class] float32, info).
        Raises :class:`classifiers.NotLocated` when no variables have the
        shapes (recover by :class:`classifiers.LeastSquares` then), and
        :class:`NetworkError` when located variables do not reproduce the logits.
        """
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
            err = classifiers.verify(f, z, weight, bias, f"{kname}, {bname}", rtol)
        except classifiers.ClassifierError as e:
            raise NetworkError(f"network {self.name!r}: {e}") from None
        return weight.astype(np.float32), bias.astype(np.float32), {
            "method": "variables", "kernel": kname, "bias": bname, "max_logit_error": err, "n_images": len(f)}


def checkpoint_network(name: str, architecture: str, checkpoint: str, input_size=None, input_range=None) -> Network:
    """A network built in Keras and loaded from a TF-slim checkpoint (``architecture: inception_v4``)."""
    if architecture != "inception_v4":
        raise NetworkError(f"network {name!r}: no Keras implementation of {architecture!r}; known: inception_v4")
    from . import inception_v4 as iv4

    size = tuple(input_size) if input_size else iv4.INPUT_SIZE
    features, logits = iv4.build(size)
    try:
        iv4.load_checkpoint(logits, checkpoint)
    except iv4.CheckpointError as e:
        raise NetworkError(f"network {name!r}: {e}") from None
    return Network(name, checkpoint, checkpoint, size, 3, input_range or iv4.INPUT_RANGE, layers=(features, logits))


def open_network(name: str, spec: dict, model_dir: str | None = None, preprocessing: dict | None = None) -> Network:
    """The :class:`Network` for a config entry, randomized when the spec says ``randomize: true``.

    Sources: ``savedmodel``, ``tfhub``, ``checkpoint``, a trained ``train``, or a face network
    (``frozen_graph``, ``arcface``, see :mod:`embmap.faces`). ``preprocessing`` (the plan's
    resolved ``input_size`` and ``input_range``) takes precedence over the spec's own values.
    """
    if spec["source"] in ("frozen_graph", "arcface"):
        from .faces import open_face_network

        return open_face_network(name, spec)
    pre = preprocessing or {}
    size = pre.get("input_size", spec.get("input_size"))
    value_range = pre.get("input_range", spec.get("input_range"))
    source = spec["source"]
    if source == "train":
        net = Network(name, f"{model_dir}/feature_vector", f"{model_dir}/classification")
    elif source in ("savedmodel", "tfhub"):
        fix = hub_handle if source == "tfhub" else (lambda h: h)
        classifier = spec.get("classifier")
        net = Network(name, fix(spec["handle"]), fix(classifier) if classifier else None, size,
                      spec.get("channels"), value_range or (0.0, 1.0))
    elif source == "checkpoint":
        net = checkpoint_network(name, spec["architecture"], spec["checkpoint"], size, value_range)
    else:
        raise NetworkError(f"network {name!r}: source {source!r} is not a model")
    if spec.get("randomize"):
        net.randomize(int(spec.get("seed", 0)))
    return net


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


def _classifier_from_first_batch(network, images, f, n_classes, lstsq_images):
    """(weight, bias, info) located and verified on the first batch, or a LeastSquares collector to fill."""
    z = network.logits(images)
    if n_classes is not None and z.shape[1] != n_classes:
        raise NetworkError(f"network {network.name!r}: the classifier outputs {z.shape[1]} classes, the dataset "
                           f"has {n_classes} (ImageNet models of TF Hub and TF-slim output 1001: 0 = background)")
    try:
        return network.classifier(images, f, z), z
    except classifiers.NotLocated:
        return classifiers.LeastSquares(f.shape[1], want=lstsq_images), z


def extract(network: Network, dataset, ids, labels, path, chunk_rows: int | None = None, batch_size: int = 256,
            with_classifier: bool = True, attrs: dict | None = None, progress: bool = True,
            normalise: bool = False, log=None, preprocessing: dict | None = None,
            lstsq_images: int | None = None) -> None:
    """Write ``network``'s embeddings of the images ``ids`` into the store at ``path``, batch by batch.

    ``normalise`` scales every embedding to unit L2 norm before it is stored
    (face networks compare embeddings on the unit hypersphere). Image-file
    datasets are decoded, cropped and resized by ``preprocessing``
    (``input_size``, ``crop_fraction``) in a parallel pipeline.

    The classifier is located among the classification model's variables and
    verified on the first batch; where no variables have the right shapes it
    is recovered by least squares from the features and logits of the first
    ``lstsq_images`` images (default 2 (d + 1)) and the residual is recorded.

    Memory holds one batch and one chunk, whatever the number of images. The
    store is built at ``<path>.partial`` and appears at ``path`` only when every
    row is written; an interrupted extraction run again with the same network,
    images and options continues from its last durable chunk (see
    :class:`embmap.stores.ResumableStore`) and gives the same store.
    """
    from tqdm import tqdm

    from . import datasets as ds
    from . import images as im
    from . import stores as st

    log = log or (lambda *a: None)
    ids = np.asarray(ids, dtype=str)
    n = len(ids)
    if n == 0:
        raise NetworkError(f"network {network.name!r}: no images to extract into {path}")
    pre = dict(preprocessing or {})
    image_files = isinstance(dataset, ds.ImageFiles)
    if image_files:
        pre.setdefault("input_size", list(network.input_size) if network.input_size else None)
        if not pre["input_size"]:
            raise NetworkError(f"network {network.name!r}: reading image files needs an input_size")
    fingerprint = {
        "network": network.name, "model": model_fingerprint(network.handle),
        "classifier": model_fingerprint(network.classifier_handle) if with_classifier else None,
        "input_size": network.input_size, "channels": network.channels, "input_range": network.input_range,
        "chunk_rows": chunk_rows, "batch_size": batch_size, "normalise": bool(normalise), "attrs": attrs,
        "preprocessing": pre or None, "randomized": network.randomized,
    }
    store = st.ResumableStore(path, ids, labels, fingerprint, chunk_rows=chunk_rows, batch_size=batch_size,
                              name=f"network {network.name!r}")
    if store.start:
        log(f"resuming {store.partial} at row {store.start} of {n} ({store.resumed_rows} rows were on disk)")
    want_classifier = with_classifier and network.logits_layer is not None
    n_classes = getattr(dataset, "n_classes", None)
    probe = None
    bar = tqdm(total=n, initial=store.start, desc=f"{network.name} -> {Path(path).name}", unit="img",
               disable=not progress, mininterval=2.0)
    images = None
    for offset, images in ds.batches(dataset, ids[store.start:], batch_size, pre):
        f = network.features(images)
        z = None
        if want_classifier and not store.has_classifier and probe is None:
            found, z = _classifier_from_first_batch(network, images, f, n_classes, lstsq_images)
            if isinstance(found, classifiers.LeastSquares):
                probe = found
                log(f"network {network.name!r}: no classifier variables of the right shapes; recovering C and b "
                    f"by least squares from {probe.want} images")
            else:
                st.write_classifier(store.group, *found)
        if probe is not None and not probe.full:
            probe.add(f, network.logits(images) if z is None else z)
        if normalise:
            f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        store.append(f)
        bar.update(len(images))
    bar.close()
    if images is None:  # resumed with nothing left but the final rename
        images = next(ds.batches(dataset, ids[:1], 1, pre))[1]
        if want_classifier and not store.has_classifier:
            probe = None
            found, _ = _classifier_from_first_batch(network, images, network.features(images), n_classes,
                                                    lstsq_images)
            if isinstance(found, classifiers.LeastSquares):
                raise NetworkError(f"network {network.name!r}: resumed with every row on disk but no classifier; "
                                   f"remove {store.partial} and extract again to recover it by least squares")
            st.write_classifier(store.group, *found)
    if probe is not None:
        try:
            w, b, info = probe.fit()
        except classifiers.ClassifierError as e:
            raise NetworkError(f"network {network.name!r}: {e}") from None
        log(f"network {network.name!r}: classifier recovered from {probe.n} images, relative residual "
            f"{info['residual']:.3g}")
        st.write_classifier(store.group, w, b, info)
    if image_files:
        preprocessing_attrs = im.describe(pre["input_size"], pre.get("crop_fraction", im.DEFAULT_CROP_FRACTION),
                                          network.input_range)
    else:
        preprocessing_attrs = {"input_range": list(network.input_range), "resize": "bilinear",
                               "channels": network.channels}
    store.finish({
        "network": network.name, "handle": network.handle, "classifier_handle": network.classifier_handle,
        "input_size": list(network.input_size) if network.input_size else list(images.shape[1:3]),
        "preprocessing": preprocessing_attrs, "parameters": network.parameters(), "randomized": network.randomized,
        "l2_normalised": bool(normalise), "created": st.now(), "versions": st.versions(), **(attrs or {}),
    })
