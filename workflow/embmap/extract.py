"""Extraction: a network's embeddings of a split's images, batch by batch, into an embedding store.

:func:`extract` reads the images (or cached face crops) in the manifest's
order, runs the model, optionally normalises each embedding to unit length,
and writes the store chunk by chunk through
:class:`embmap.stores.ResumableStore`, so an interrupted extraction resumes
from its last durable chunk. The classifier is located and verified on the
first batch (:meth:`embmap.models.Model.classifier`) or recovered by least
squares (:class:`embmap.models.classifiers.LeastSquares`).

Batches after the first run ``workers`` at a time, each on threads of its
own, and are written in order. With every kernel on one thread
(:func:`embmap.steps.tf_threads`), each image's embedding is then computed
by the same arithmetic whatever the number of workers: stores do not depend
on the cores a job was given.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .models import Model, NetworkError, classifiers


def model_fingerprint(handle: str | None) -> dict | None:
    """What identifies a model's weights: the names, sizes and times of a local file or directory's files, or the
    handle."""
    if not handle:
        return None
    root = Path(handle)
    if root.is_file():  # a model file (keras, tflite, onnx, a frozen graph)
        return {"handle": str(root.resolve()), "files": [[root.name, root.stat().st_size, root.stat().st_mtime_ns]]}
    if not root.is_dir():
        return {"handle": handle}
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {"handle": str(root.resolve()),
            "files": [[str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]}


def _classifier_from_first_batch(network, images, f, dataset, lstsq_images):
    """((weight, bias, info) located and verified on the first batch, or a LeastSquares collector to fill),
    the logits, and the classifier's label offset in the dataset's labels (see :func:`stores.label_offset`)."""
    from . import stores as st

    z = network.logits(images)
    try:
        offset = st.label_offset(z.shape[1], getattr(dataset, "n_classes", None), getattr(dataset, "background", None),
                                 f"network {network.name!r}")
    except st.StoreError as e:
        raise NetworkError(str(e)) from None
    try:
        return network.classifier(images, f, z), z, offset
    except classifiers.NotLocated:
        return classifiers.LeastSquares(f.shape[1], want=lstsq_images), z, offset


def in_order(fn, items, workers: int):
    """``fn(item)`` of every item, in order, computed on up to ``workers`` threads at once.

    At most ``workers`` results are pending, so memory holds ``workers``
    batches however many there are. ``workers=1`` runs each call in the
    calling thread.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending = deque()
        for item in items:
            if len(pending) == workers:
                yield pending.popleft().result()
            pending.append(pool.submit(fn, item))
        while pending:
            yield pending.popleft().result()


def extract(network: Model, dataset, ids, labels, path, *, chunk_rows: int | None, batch_size: int,
            with_classifier: bool = True, attrs: dict | None = None, progress: bool = True,
            normalise: bool = False, log=None, preprocessing: dict | None = None,
            lstsq_images: int | None = None, flip: bool = False, workers: int = 1) -> None:
    """Write ``network``'s embeddings of the images ``ids`` into the store at ``path``, batch by batch.

    ``chunk_rows`` (None: about 8 MB of rows) and ``batch_size`` are the
    experiment's ``store`` options. ``normalise`` scales every embedding to unit L2 norm before it is stored
    (face networks compare embeddings on the unit hypersphere). ``flip`` adds
    the embedding of each image mirrored left to right before that, the
    test-time flip of the reference face evaluations (arcface-tf2's
    ``is_flip``). Image-file
    datasets are decoded, cropped and resized by ``preprocessing``
    (``input_size``, ``crop_fraction``) in a parallel pipeline.

    The network's layers (:meth:`embmap.models.Model.use_layers`) come from
    the forward pass of each batch's embedding and are written beside it
    (``layers/KEY``), flipped and normalised as it is.

    The classifier is located among the classification model's variables and
    verified on the first batch; where no variables have the right shapes it
    is recovered by least squares from the features and logits of the first
    ``lstsq_images`` images (default 2 (d + 1)) and the residual is recorded.

    ``workers`` batches run at once, each with ``network`` called from a
    thread of its own (models whose ``parallel_calls`` is False run one at a
    time); memory holds that many batches and one chunk, whatever the number
    of images. The
    store is built at ``<path>.partial`` and appears at ``path`` only when every
    row is written; an interrupted extraction run again with the same network,
    images and options continues from its last durable chunk (see
    :class:`embmap.stores.ResumableStore`) and gives the same store.
    """
    from tqdm import tqdm

    from . import stores as st
    from .data import images as im
    from .data.image_files import ImageFiles
    from .data.manifest import batches

    log = log or (lambda *a: None)
    ids = np.asarray(ids, dtype=str)
    n = len(ids)
    if n == 0:
        raise NetworkError(f"network {network.name!r}: no images to extract into {path}")
    pre = dict(preprocessing or {})
    image_files = isinstance(dataset, ImageFiles)
    if image_files:
        pre.setdefault("input_size", list(network.input_size) if network.input_size else None)
        if not pre["input_size"]:
            raise NetworkError(f"network {network.name!r}: reading image files needs an input_size")
    fingerprint = {
        "network": network.name, "model": model_fingerprint(network.handle),
        "classifier": model_fingerprint(network.classifier_handle) if with_classifier else None,
        "input_size": network.input_size, "channels": network.channels, "input": network.input_attrs(),
        "chunk_rows": chunk_rows, "batch_size": batch_size, "normalise": bool(normalise), "flip": bool(flip),
        "attrs": attrs,
        "preprocessing": pre or None, "randomized": network.randomized,
        "layers": list(network.layers), "layer_reduction": network.layer_reduction if network.layers else None,
    }
    store = st.ResumableStore(path, ids, labels, fingerprint, chunk_rows=chunk_rows, batch_size=batch_size,
                              name=f"network {network.name!r}")
    if store.start:
        log(f"resuming {store.partial} at row {store.start} of {n} ({store.resumed_rows} rows were on disk)")
    want_classifier = with_classifier and network.has_logits
    probe = None
    bar = tqdm(total=n, initial=store.start, desc=f"{network.name} -> {Path(path).name}", unit="img",
               disable=not progress, mininterval=2.0)
    probe_rows = 0  # rows handed to the least-squares probe, counted as batches are submitted

    layer_attrs: dict = {}

    def forward(images):
        """(features, {layer: rows}) of one batch, from one forward pass of the network."""
        if not network.layers:
            return network.features(images), {}
        f, layers, attrs = network.features_and_layers(images)
        for name, a in attrs.items():
            layer_attrs.setdefault(name, {**a, "l2_normalised": bool(normalise), "flip": bool(flip)})
        return f, layers

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def embed(job):
        """(features, the probe's logits or None, the embedding to store, the layers to store, rows) of one
        batch; the layers are treated as the embedding is (flip, normalise)."""
        images, f, layers, z, logits_wanted = job
        if f is None:
            f, layers = forward(images)
        if logits_wanted and z is None:
            z = network.logits(images)
        out = f
        if flip:
            f2, layers2 = forward(np.ascontiguousarray(np.asarray(images)[:, :, ::-1]))
            out, layers = out + f2, {k: v + layers2[k] for k, v in layers.items()}
        if normalise:
            out, layers = unit(out), {k: unit(v) for k, v in layers.items()}
        return f, z, out, layers, len(images)

    def jobs():
        nonlocal probe, label_offset, probe_rows, images
        for _, images in batches(dataset, ids[store.start:], batch_size, pre):
            f = z = layers = None
            if want_classifier and not store.has_classifier and probe is None:
                # the first batch: the classifier is located here, before any batch runs beside it
                f, layers = forward(images)
                found, z, label_offset = _classifier_from_first_batch(network, images, f, dataset, lstsq_images)
                if isinstance(found, classifiers.LeastSquares):
                    probe = found
                    log(f"network {network.name!r}: no classifier variables of the right shapes; recovering C "
                        f"and b by least squares from {probe.want} images")
                else:
                    st.write_classifier(store.group, *found, label_offset=label_offset)
            wanted = probe is not None and probe_rows < probe.want
            probe_rows += len(images) if wanted else 0
            yield images, f, layers, z, wanted

    label_offset, images = 0, None
    workers = max(1, int(workers)) if getattr(network, "parallel_calls", True) else 1
    for f, z, out, layers, rows in in_order(embed, jobs(), workers):
        if z is not None and probe is not None:
            probe.add(f, z)
        store.append(out, layers, layer_attrs)
        bar.update(rows)
    bar.close()
    if images is None:  # resumed with nothing left but the final rename
        images = next(batches(dataset, ids[:1], 1, pre))[1]
        if want_classifier and not store.has_classifier:
            probe = None
            found, _, label_offset = _classifier_from_first_batch(network, images, network.features(images), dataset,
                                                            lstsq_images)
            if isinstance(found, classifiers.LeastSquares):
                raise NetworkError(f"network {network.name!r}: resumed with every row on disk but no classifier; "
                                   f"remove {store.partial} and extract again to recover it by least squares")
            st.write_classifier(store.group, *found, label_offset=label_offset)
    if probe is not None:
        try:
            w, b, info = probe.fit()
        except classifiers.ClassifierError as e:
            raise NetworkError(f"network {network.name!r}: {e}") from None
        log(f"network {network.name!r}: classifier recovered from {probe.n} images, relative residual "
            f"{info['residual']:.3g}")
        st.write_classifier(store.group, w, b, info, label_offset=label_offset)
    if image_files:
        preprocessing_attrs = {**im.describe(pre["input_size"], pre["crop_fraction"]), **network.input_attrs()}
    else:
        preprocessing_attrs = {**network.input_attrs(), "resize": "bilinear", "channels": network.channels}
    store.finish({
        "network": network.name, "handle": network.handle, "classifier_handle": network.classifier_handle,
        "input_size": list(network.input_size) if network.input_size else list(images.shape[1:3]),
        "preprocessing": preprocessing_attrs, "parameters": network.parameters(), "randomized": network.randomized,
        "l2_normalised": bool(normalise), "flip": bool(flip), "workers": workers, "created": st.now(),
        "versions": st.versions(), **(attrs or {}),
    })
