"""Embedding stores, block stores and map stores: the Zarr files users open.

Embedding store (``results/{experiment}/embeddings/{network}/{split}.zarr``),
a Zarr v3 group:

- ``embeddings``  float32 [sample, feature], chunked along samples only;
- ``labels``      int64 [sample], -1 where unknown;
- ``ids``         str [sample], the image identifiers (paths relative to the
  dataset root, or dataset-specific names);
- ``classifier/weight`` float32 [class, feature] and ``classifier/bias``
  float32 [class] when the network has a classifier (logits = W f + b); the
  group's ``label_offset`` attribute is the dataset label of class 0 (1 for
  a 1,000-class ImageNet head on labels whose 0 is the background class);
- ``layers/KEY``   float32 [sample, feature] per layer the network's
  ``layers:`` names (format version 2), chunked as the embeddings, listed by
  name in the attribute ``layers``; read one as the embedding with
  ``open_embeddings(path, layer=NAME)`` or :func:`open_layer` (``embedding``
  names the embedding itself);
- attributes: provenance (network, source_kind, handle, input_size,
  preprocessing, dataset, split, seed, versions, created),
  ``format_version`` and ``complete: true``, written last. ``source`` is the older name of
  ``source_kind`` and is still written.

Block store (``fit/blocks.zarr``): the pass's centred cross products and
squared-norm statistics (:func:`write_blocks`, :func:`open_blocks`, see
:mod:`embmap.fit.gram`); its ``blocks_version`` attribute is
:data:`BLOCKS_VERSION` (absent: 1, a store without the squared norms).
Map store (``maps/{method}/{source}/{target}.zarr``): ``weight`` [d_source, d_target]
and ``intercept`` [d_target] with f_target ≈ f_source @ weight + intercept
(:func:`write_map`, :func:`read_map`); its ``source`` and ``target``
attributes are network keys.

Every writer builds the group beside its destination (``<path>.partial``)
and renames it into place only when complete, so a store at its final path
is always whole; readers refuse a store whose ``complete`` flag is not the
boolean true, and open embedding stores only after holding them to the
store contract (:mod:`embmap.contract`).
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from . import contract
from .contract import FORMAT_VERSION, StoreError
from .fit.blocks import Blocks, NoNorms, Norms, empty_blocks, pool, pool_block
from .fit.linear import LinearMap

__all__ = ["FORMAT_VERSION", "StoreError", "EmbeddingStore", "open_embeddings", "open_layer", "open_matched",
           "write_embeddings",
           "open_blocks", "write_blocks", "read_map", "write_map"]


BLOCKS_VERSION = 2  # block store layout: 1 without norms/, 2 with them


def compressor():
    """Blosc/LZ4 with byte shuffle: fast to decode, about 10% smaller on float32 features."""
    return zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


def versions() -> dict[str, str]:
    """Versions of the packages that shape a store's values."""
    import importlib.metadata as md

    out = {}
    for pkg in ("embmap", "numpy", "zarr", "tensorflow", "tensorflow-hub", "tf-keras", "scikit-learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def chunk_rows_for(n_features: int, target_bytes: int = 8 << 20, requested: int | None = None) -> int:
    """Samples per chunk: ``requested`` if given, else about ``target_bytes`` of float32 rows."""
    if requested:
        return int(requested)
    return int(max(256, min(16384, target_bytes // (4 * max(1, n_features)))))


def consolidate(path: str | os.PathLike) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))


@contextmanager
def atomic_group(path: str | os.PathLike):
    """Yield a fresh Zarr group at ``<path>.partial``; on success mark it complete and move it to ``path``.

    On an exception the partial group stays for inspection and ``path`` is untouched.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(str(partial), mode="w", zarr_format=3)
    yield group
    group.update_attributes({"complete": True, "format_version": FORMAT_VERSION})
    consolidate(partial)
    if path.exists():
        shutil.rmtree(path)
    os.replace(partial, path)


def as_str(values) -> np.ndarray:
    """Zarr string arrays come back as numpy's variable-width StringDType; make them plain ``str`` arrays."""
    values = np.asarray(values)
    if values.dtype.kind == "U":
        return values
    return np.asarray(values.tolist(), dtype=str)


def open_group(path: str | os.PathLike, what: str = "store") -> zarr.Group:
    """Open a complete group read-only, with an error naming the path otherwise (:func:`embmap.contract.metadata`)."""
    try:
        meta = contract.metadata(path)
        contract.check_complete(meta.attrs, meta.path)
    except StoreError as e:
        raise StoreError(f"{what} {str(e).removeprefix('store ')}") from None
    return zarr.open_group(str(path), mode="r")


# -- embedding stores ---------------------------------------------------------------
class EmbeddingWriter:
    """Write an embedding store chunk by chunk, with its layers (format version 2) beside the embeddings.

    Parameters
    ----------
    group : zarr.Group
        An empty group (from :func:`atomic_group`).
    ids : array of str, shape (n,)
    labels : array of int, shape (n,)
    n_features : int
    chunk_rows : int
        Samples per chunk; rows are buffered until a chunk is full so that every
        write covers whole chunks.
    layers : {name: attributes}, optional
        The layers written beside the embeddings, in order: each an array
        ``layers/KEY`` (:func:`embmap.contract.layer_path`) of ``attributes["dim"]``
        features, chunked like the embeddings, with its attributes (``name``,
        ``dim``, and e.g. ``reduction``); the root attribute ``layers`` lists
        their names. When resuming (``start``) only the names are read.
    """

    def __init__(self, group, ids, labels, n_features: int, chunk_rows: int, name: str = "store",
                 start: int = 0, on_flush=None, layers: dict | None = None):
        self.group, self.name = group, name
        self.n = len(ids)
        self.chunk_rows = int(chunk_rows)
        self.ids = np.asarray(ids, dtype=str)
        self.on_flush = on_flush
        layers = dict(layers or {})
        if start:  # resuming: the index and the arrays are already there
            self.array = group["embeddings"]
            self.layers = {k: group[contract.layer_path(k)] for k in layers}
        else:
            write_index(group, self.ids, np.asarray(labels, dtype=np.int64), self.chunk_rows)
            self.array = self._rows(contract.ARRAYS[0], n_features)
            self.layers = {}
            for k, attrs in layers.items():
                self.layers[k] = self._rows(contract.layer_path(k), attrs["dim"])
                self.layers[k].update_attributes({**attrs, "name": k, "dim": int(attrs["dim"])})
            if layers:
                group.attrs[contract.LAYERS] = list(layers)
        self.written = int(start)
        self._buf: list[tuple] = []
        self._buffered = 0

    def _rows(self, path: str, n_features: int) -> zarr.Array:
        """A float32 [sample, feature] array chunked along samples only, unwritten rows NaN."""
        return self.group.create_array(path, shape=(self.n, int(n_features)),
                                       chunks=(self.chunk_rows, int(n_features)), dtype="float32",
                                       compressors=compressor(), dimension_names=["sample", "feature"],
                                       fill_value=np.nan)

    @property
    def arrays(self) -> list[zarr.Array]:
        """Every array written row by row: the embeddings, then the layers."""
        return [self.array, *self.layers.values()]

    def _checked(self, rows, array, layer: str | None = None) -> np.ndarray:
        """``rows`` as float32, refused unless [k, the array's features] and finite (naming the ids)."""
        rows = np.asarray(rows, dtype=np.float32)
        of = f"layer {layer!r} " if layer is not None else ""
        if rows.ndim != 2 or rows.shape[1] != array.shape[1]:
            raise StoreError(f"{self.name}: {of}rows of shape {rows.shape}, expected (k, {array.shape[1]})")
        bad = ~np.isfinite(rows).all(axis=1)
        if bad.any():
            first = self.written + self._buffered + np.flatnonzero(bad)
            names = ", ".join(self.ids[first[:5]])
            raise StoreError(f"{self.name}: non-finite {of or 'embedding '}values for {bad.sum()} sample(s), first: "
                             f"{names}")
        return rows

    def append(self, rows: np.ndarray, layers: dict | None = None) -> None:
        """The next rows of the embeddings and, with layers, of every layer (``{name: rows}``, the same count)."""
        rows = self._checked(rows, self.array)
        layers = layers or {}
        if set(layers) != set(self.layers):
            raise StoreError(f"{self.name}: rows of layers {sorted(layers)}, the store holds layers "
                             f"{sorted(self.layers)}")
        parts = [rows]
        for k, array in self.layers.items():
            part = self._checked(layers[k], array, k)
            if len(part) != len(rows):
                raise StoreError(f"{self.name}: {len(part)} rows of layer {k!r} beside {len(rows)} embeddings")
            parts.append(part)
        self._buf.append(tuple(parts))
        self._buffered += len(rows)
        if self.written + self._buffered > self.n:
            raise StoreError(f"{self.name}: more rows than ids ({self.n})")
        while self._buffered >= self.chunk_rows:
            self._flush(self.chunk_rows)
        if self.written + self._buffered == self.n and self._buffered:
            self._flush(self._buffered)

    def _flush(self, k: int) -> None:
        blocks = [np.concatenate(b) if len(b) > 1 else b[0] for b in zip(*self._buf)]
        for array, block in zip(self.arrays, blocks):
            array[self.written : self.written + k] = block[:k]
        self.written += k
        if self.on_flush is not None:
            self.on_flush(self)
        rest = tuple(block[k:] for block in blocks)
        self._buf = [rest] if len(rest[0]) else []
        self._buffered = len(rest[0])

    def close(self) -> None:
        if self.written != self.n:
            raise StoreError(f"{self.name}: {self.written} of {self.n} rows written")


def write_index(group, ids, labels, chunk_rows: int) -> None:
    n = len(ids)
    a = group.create_array(
        "ids", shape=(n,), chunks=(max(1, min(n, chunk_rows)),), dtype=str, dimension_names=["sample"]
    )
    a[:] = np.asarray(ids, dtype=str)
    b = group.create_array(
        "labels",
        shape=(n,),
        chunks=(max(1, min(n, chunk_rows)),),
        dtype="int64",
        dimension_names=["sample"],
        compressors=compressor(),
    )
    b[:] = np.asarray(labels, dtype=np.int64)


def write_classifier(group, weight: np.ndarray, bias: np.ndarray, attrs: dict | None = None,
                     label_offset: int = 0) -> None:
    """Store a classifier as ``classifier/weight`` [class, feature] and ``classifier/bias`` [class].

    ``label_offset`` is the dataset label of the classifier's class 0: class
    k predicts dataset label k + label_offset (see :func:`label_offset`).
    """
    weight = np.asarray(weight, dtype=np.float32)
    bias = np.asarray(bias, dtype=np.float32)
    if weight.ndim != 2 or bias.shape != (weight.shape[0],):
        raise StoreError(f"classifier: weight {weight.shape} and bias {bias.shape} do not fit together")
    c = group.create_group("classifier", overwrite=True)
    c.create_array("weight", data=weight, dimension_names=["class", "feature"])
    c.create_array("bias", data=bias, dimension_names=["class"])
    c.update_attributes({"convention": "logits = weight @ f + bias", **(attrs or {}), "classes": int(weight.shape[0]),
                    "label_offset": int(label_offset)})


def label_offset(classes: int, n_labels: int | None, background: int | None, name: str = "network") -> int:
    """The dataset label of a classifier's class 0, from its class count and the dataset's labels.

    Equal counts share the labels (offset 0). A classifier with one class fewer
    than a dataset whose label 0 is a background class (ImageNet: 1,000 synsets
    as 1..1000) has no background class: its class k is label k + 1. Anything
    else cannot be matched to the labels.
    """
    if n_labels is None or classes == n_labels:
        return 0
    if background == 0 and classes == n_labels - 1:
        return 1
    raise StoreError(f"{name}: the classifier outputs {classes} classes, the dataset has {n_labels} labels"
                     + (f" ({n_labels - 1} classes and background 0: a network outputs {n_labels} with background "
                        f"or {n_labels - 1} without)" if background == 0 else ""))


class ResumableStore:
    """An embedding store built at ``<path>.partial`` that survives a crash of its writer.

    Every full chunk is written, flushed to disk (``fsync``) and then counted in
    ``<path>.partial/progress.json`` (replaced atomically), so after a kill at
    any moment the progress file never counts rows that are not on disk. A new
    writer with the same ``fingerprint`` (what determines the values: network
    spec, dataset, split, ids, labels) continues from :attr:`start`; any other
    fingerprint starts afresh. :meth:`finish` marks the store complete and
    renames it into place, so a store at ``path`` is always whole, and nothing
    at ``<path>.partial`` can be mistaken for a finished store (no ``complete``
    attribute, another name).

    Snakemake removes a failed job's *outputs*; the partial store is not one,
    so the next attempt finds it.

    Parameters
    ----------
    path : str or Path
        The final store.
    ids : array of str, shape (n,)
    labels : array of int, shape (n,)
    fingerprint : dict
        JSON-serialisable description of everything that shapes the values.
    chunk_rows : int, optional
        Samples per chunk (default: about 8 MB of rows).
    batch_size : int
        The producer's batch size. Resuming restarts at a row that is a
        multiple of both the chunk and the batch size, so every batch holds the
        same images as in an uninterrupted run and values are identical.
    """

    PROGRESS = "progress.json"

    def __init__(self, path, ids, labels, fingerprint: dict, chunk_rows: int | None = None, batch_size: int = 1,
                 name: str = "store"):
        import hashlib
        import json

        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.ids = np.asarray(ids, dtype=str)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n = len(self.ids)
        self.requested_rows = chunk_rows
        self.batch_size = max(1, int(batch_size))
        self.name = name
        h = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode())
        h.update("\0".join(self.ids.tolist()).encode())
        h.update(self.labels.tobytes())
        self.fingerprint = h.hexdigest()
        self.writer: EmbeddingWriter | None = None
        self.start = 0
        self.resumed_rows = 0
        progress = self._read_progress()
        if progress and progress.get("fingerprint") == self.fingerprint and progress.get("rows", 0) > 0:
            self.group = zarr.open_group(str(self.partial), mode="r+")
            array = self.group["embeddings"]
            step = int(np.lcm(array.chunks[0], self.batch_size))
            self.resumed_rows = int(progress["rows"])
            self.start = self.resumed_rows - self.resumed_rows % step
            self.requested_rows = array.chunks[0]
            if self.start:
                layers = {k: {} for k in self.group.attrs.get(contract.LAYERS, [])}
                self.writer = EmbeddingWriter(self.group, self.ids, self.labels, array.shape[1], array.chunks[0],
                                              name=name, start=self.start, on_flush=self._record, layers=layers)
        if self.writer is None:
            self.start = 0
            if self.partial.exists():
                shutil.rmtree(self.partial)
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            self.group = zarr.open_group(str(self.partial), mode="w", zarr_format=3)
            self._write_progress(0)

    def _read_progress(self) -> dict | None:
        import json

        try:
            return json.loads((self.partial / self.PROGRESS).read_text())
        except (OSError, ValueError):
            return None

    def _write_progress(self, rows: int) -> None:
        import json

        tmp = self.partial / (self.PROGRESS + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"fingerprint": self.fingerprint, "rows": int(rows), "n": self.n, "updated": now()}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.partial / self.PROGRESS)

    def _record(self, writer: EmbeddingWriter) -> None:
        """After a flush: make the chunk of every array durable, then count it."""
        for array in writer.arrays:
            last = (writer.written - 1) // array.chunks[0]
            key = array.metadata.chunk_key_encoding.encode_chunk_key((last, 0))
            chunk = self.partial / array.path / key
            if chunk.exists():
                with open(chunk, "rb") as f:
                    os.fsync(f.fileno())
        self._write_progress(writer.written)

    @property
    def has_classifier(self) -> bool:
        return "classifier" in self.group and {"weight", "bias"} <= set(self.group["classifier"].keys())

    def append(self, rows: np.ndarray, layers: dict | None = None, layer_attrs: dict | None = None) -> None:
        """Add the next rows of the embeddings and of every layer (``{name: rows}``).

        The first call fixes the feature dimensions and which layers the store
        holds (``layer_attrs``: ``{name: attributes}`` of each, e.g. its
        reduction); chunks hold as many rows in every array.
        """
        if self.writer is None:
            rows = np.asarray(rows)
            chunk = chunk_rows_for(rows.shape[1], requested=self.requested_rows)
            spec = {k: {**(layer_attrs or {}).get(k, {}), "dim": int(np.shape(v)[1])} for k, v in (layers or {}).items()}
            self.writer = EmbeddingWriter(self.group, self.ids, self.labels, rows.shape[1], chunk, name=self.name,
                                          on_flush=self._record, layers=spec)
        self.writer.append(rows, layers)

    def finish(self, attrs: dict) -> None:
        """Check every row is written, mark the store complete and move it to its final path."""
        if self.writer is None:
            raise StoreError(f"{self.name}: nothing was written")
        self.writer.close()
        self.group.update_attributes({**attrs, "complete": True, "format_version": FORMAT_VERSION})
        consolidate(self.partial)
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self.partial, self.path)
        (self.path / self.PROGRESS).unlink(missing_ok=True)


def write_embeddings(path, embeddings, ids, labels, classifier=None, chunk_rows=None, label_offset: int = 0,
                     layers: dict | None = None, layer_attrs: dict | None = None, **attrs) -> None:
    """Write an embedding store from arrays: how to bring your own embeddings (docs/bring-your-own.md shows an example).

    Parameters
    ----------
    path : str or Path
        The store, ``DIR/SPLIT.zarr``; a network of ``source: zarr`` names ``DIR``.
    embeddings : array-like [sample, feature]
        Any array with ``shape`` and row slicing (NumPy, a memmap, a Zarr or
        h5py array): it is read and written one chunk of rows at a time, so it
        need not fit in memory. Stored as float32; NaN or inf is an error
        naming the ids.
    ids : sequence of str [sample]
        One identifier per image (its file path, say), unique, and equal for
        the same image in every network's store; unique across splits too.
    labels : sequence of int [sample]
        Class indices into the classifier's classes; -1 where unknown.
    classifier : (weight [class, feature], bias [class]), optional
        The network's last layer, logits = weight @ f + bias (PyTorch's
        ``nn.Linear`` stores exactly this ``weight``); task closed_set needs it.
    label_offset : int
        The label of the classifier's class 0 (1 for a 1,000-class ImageNet
        head beside labels 1..1000 with background 0; default 0).
    chunk_rows : int, optional
        Samples per chunk (default about 8 MB of rows).
    layers : {name: array-like [sample, feature]}, optional
        Other layers of the network, one vector per image each (reduce feature
        maps first, e.g. by global average pooling), read like ``embeddings``
        (any array with ``shape`` and row slicing); stored as ``layers/KEY``
        (:func:`embmap.contract.layer_path`) and listed, in this order, in the
        attribute ``layers``. The name ``embedding`` is reserved for the
        embedding itself.
    layer_attrs : {name: dict}, optional
        Attributes of each layer's array, e.g. ``{"reduction": "mean"}`` (how
        it was reduced to a vector: ``mean``, ``max``, ``flatten``, ``none``).
    **attrs
        Attributes recorded with the store (docs/outputs.md lists those the workflow
        reads, e.g. ``network``, ``split``, ``handle``, ``parameters``); checked
        like every store's, before anything is written.

    The store is built at ``PATH.partial`` and renamed into place with
    ``complete: true`` only when whole.
    """
    if not hasattr(embeddings, "shape") or not hasattr(embeddings, "__getitem__"):
        embeddings = np.asarray(embeddings, dtype=np.float32)
    ids, labels = np.asarray(ids), np.asarray(labels)
    shape = tuple(embeddings.shape)
    if len(shape) != 2 or shape[1] < 1:
        raise StoreError(f"store {path}: embeddings of shape {shape}; expected [sample, feature]")
    n, d = shape
    if n == 0:
        raise StoreError(f"store {path}: no samples to write")
    if ids.shape != (n,) or labels.shape != (n,):
        raise StoreError(f"store {path}: {n} embeddings but ids of shape {ids.shape} and labels of shape "
                         f"{labels.shape}; one id and one label per sample")
    if labels.dtype.kind not in "iu" and not (labels.dtype.kind == "f" and np.array_equal(labels, labels.round())):
        raise StoreError(f"store {path}: labels of dtype {labels.dtype}; labels are integer class indices, -1 where "
                         "unknown")
    labels = labels.astype(np.int64)
    ids = as_str(ids)
    contract.duplicate_ids(ids, path)
    contract.check_labels(labels, None if classifier is None else int(np.shape(classifier[0])[0]), path,
                          int(label_offset))
    contract.check_attributes({**attrs, "complete": True}, path, attrs.get("split"))
    layers = _checked_layers(path, layers, layer_attrs, n)
    rows = chunk_rows_for(d, requested=chunk_rows)
    with atomic_group(path) as g:
        spec = {k: {**(layer_attrs or {}).get(k, {}), "dim": int(v.shape[1])} for k, v in layers.items()}
        w = EmbeddingWriter(g, ids, labels, d, rows, name=str(path), layers=spec)
        for start, stop in sample_chunks(n, rows):
            w.append(np.asarray(embeddings[start:stop], dtype=np.float32),
                     {k: np.asarray(v[start:stop], dtype=np.float32) for k, v in layers.items()})
        w.close()
        if classifier is not None:
            write_classifier(g, *classifier, label_offset=label_offset)
        g.update_attributes({"created": now(), "versions": versions(), **attrs})


def _checked_layers(path, layers: dict | None, layer_attrs: dict | None, n: int) -> dict:
    """``write_embeddings``' layers as arrays with a shape, refused (naming the layer) before anything is written."""
    out = {}
    for name, values in (layers or {}).items():
        if not isinstance(name, str) or not name or name == contract.EMBEDDING:
            raise StoreError(f"store {path}: layer name {name!r}: a layer is named by a non-empty string other than "
                             f"{contract.EMBEDDING!r}, which names the embedding itself")
        if not hasattr(values, "shape") or not hasattr(values, "__getitem__"):
            values = np.asarray(values, dtype=np.float32)
        shape = tuple(values.shape)
        if len(shape) != 2 or shape[0] != n or shape[1] < 1:
            raise StoreError(f"store {path}: layer {name!r} of shape {shape}; expected [{n}, feature], one vector per "
                             "sample (reduce a feature map first, e.g. by global average pooling)")
        out[name] = values
    stray = set(layer_attrs or {}) - set(out)
    if stray:
        raise StoreError(f"store {path}: layer_attrs name {sorted(stray)}, which are not among the layers "
                         f"{sorted(out)}")
    return out


def convert(src, dst, chunk_rows=None, drop=()) -> None:
    """Rewrite the embedding store ``src`` (any store Zarr reads: a Zarr v2 store too) as an embmap store at ``dst``.

    Reads ``embeddings`` one chunk of rows at a time; copies ``ids``,
    ``labels``, the classifier and the root attributes (except those named in
    ``drop`` and the ones every writer sets), and records ``converted_from``.
    ``dst`` must not exist: nothing is overwritten.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise StoreError(f"store {dst}: exists already; convert writes a new store and overwrites nothing")
    if not src.is_dir():
        raise StoreError(f"store {src}: does not exist or is not a folder")
    try:
        g = zarr.open_group(str(src), mode="r")
    except Exception as e:  # zarr raises many kinds for a folder that is no group
        raise StoreError(f"store {src}: Zarr cannot open it as a group ({type(e).__name__}: {e})") from None
    missing = [k for k in ("embeddings", "ids", "labels") if k not in g]
    if missing:
        raise StoreError(f"store {src}: has no array {missing[0]!r}; an embedding store holds embeddings, ids, labels")
    classifier = None
    if "classifier" in g:
        c = g["classifier"]
        classifier = (np.asarray(c["weight"][:]), np.asarray(c["bias"][:]))
    skip = {"complete", "format_version", "created", "versions", *drop}
    attrs = {k: v for k, v in dict(g.attrs).items() if k not in skip}
    names = contract.layer_names(dict(g.attrs))
    attrs.pop(contract.LAYERS, None)
    layers = {k: g[contract.layer_path(k)] for k in names}
    layer_attrs = {k: {a: v for a, v in dict(arr.attrs).items() if a not in ("name", "dim")} for k, arr in layers.items()}
    write_embeddings(dst, g["embeddings"], as_str(g["ids"][:]), np.asarray(g["labels"][:]), classifier=classifier,
                     chunk_rows=chunk_rows or g["embeddings"].chunks[0], layers=layers, layer_attrs=layer_attrs,
                     **attrs, converted_from=str(src.resolve()))


@dataclass
class EmbeddingStore:
    """A complete embedding store opened for reading, as the embedding or as one of its layers.

    ``layer`` None (or ``embedding``, :data:`embmap.contract.EMBEDDING`) reads
    the embedding; a layer's name reads that layer as if it were the
    embedding (:attr:`embeddings`, :attr:`n`, :attr:`dim`, with the same ids
    and labels; a classifier reads the embedding only, so a layer has none).
    """

    path: str
    group: zarr.Group
    layer: str | None = None

    @property
    def layers(self) -> list[str]:
        """The names of the layers the store holds beside its embedding, in order (none in format version 1)."""
        return contract.layer_names(dict(self.group.attrs))

    def as_layer(self, name: str | None) -> "EmbeddingStore":
        """The same store read as layer ``name`` (None or ``embedding``: the embedding itself)."""
        name = None if name in (None, contract.EMBEDDING) else name
        if name is not None and name not in self.layers:
            import difflib

            have = self.layers
            near = difflib.get_close_matches(name, have, n=5, cutoff=0.4)
            raise StoreError(f"store {self.path}: holds no layer {name!r}"
                             + (f" (nearest: {', '.join(near)})" if near else "")
                             + (f"; its layers: {', '.join(have)}" if have else
                                " (it holds no layers, only the embedding)"))
        return EmbeddingStore(self.path, self.group, name)

    @property
    def embeddings(self) -> zarr.Array:
        """float32 [sample, feature]: the embedding, or the layer this store is read as."""
        return self.group["embeddings" if self.layer is None else contract.layer_path(self.layer)]

    @property
    def layer_attrs(self) -> dict:
        """The attributes of the layer read (``name``, ``dim``, ``reduction``...); ``{}`` for the embedding."""
        return dict(self.embeddings.attrs) if self.layer is not None else {}

    @property
    def n(self) -> int:
        return self.embeddings.shape[0]

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    @property
    def ids(self) -> np.ndarray:
        return as_str(self.group["ids"][:])

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.group["labels"][:], dtype=np.int64)

    @property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    @property
    def has_classifier(self) -> bool:
        return "classifier" in self.group and self.layer is None

    def classifier(self) -> tuple[np.ndarray, np.ndarray]:
        """(weight [class, feature], bias [class]) as float64."""
        if self.layer is not None:
            raise StoreError(f"store {self.path}: layer {self.layer!r} has no classifier (the classifier reads the "
                             "embedding)")
        if not self.has_classifier:
            raise StoreError(f"store {self.path}: has no classifier/weight and classifier/bias")
        c = self.group["classifier"]
        return np.asarray(c["weight"][:], dtype=np.float64), np.asarray(c["bias"][:], dtype=np.float64)

    @property
    def label_offset(self) -> int:
        """The dataset label of the classifier's class 0 (0 for stores written before label spaces were recorded)."""
        return int(self.group["classifier"].attrs.get("label_offset", 0)) if self.has_classifier else 0


def open_embeddings(path, split: str | None = None, need_classifier: bool = False,
                    layer: str | None = None) -> EmbeddingStore:
    """Open a complete embedding store after checking it against the store contract (:mod:`embmap.contract`).

    ``split``: the split it is read as (its ``split`` attribute, if any, must
    agree); ``need_classifier``: refuse a store without one; ``layer``: read
    that layer as the embedding (None or ``embedding``: the embedding itself;
    a name the store does not hold is refused with its nearest names).
    """
    contract.check_store(path, split, need_classifier)
    return EmbeddingStore(str(path), zarr.open_group(str(path), mode="r")).as_layer(layer)


def open_layer(path, layer: str, split: str | None = None) -> zarr.Array:
    """One layer's array, float32 [sample, feature], of a complete store (``embedding``: its embeddings)."""
    return open_embeddings(path, split, layer=layer).embeddings


def open_matched(paths: dict[str, str], need_classifier: bool = False) -> dict[str, EmbeddingStore]:
    """Open one store per network and check they describe the same samples in the same order.

    Raises :class:`StoreError` naming the network whose store breaks the
    contract, whose ids or labels disagree with the first network's, or which
    lacks a needed classifier.
    """
    stores = {}
    ref = None
    for name, path in paths.items():
        try:
            s = open_embeddings(path, need_classifier=need_classifier)
        except StoreError as e:
            raise StoreError(f"network {name!r}: {e}") from None
        if ref is None:
            ref = (name, path, s.ids, s.labels)
        else:
            contract.same_samples(ref, (name, path, s.ids, s.labels))
        stores[name] = s
    return stores


def check_experiment(stores: dict, task: str, fit_split: str | None = None, eval_split: str | None = None,
                     log=None, layers: bool = False, warn=None) -> dict:
    """Check the stores of one experiment against each other; returns what was checked (for ``stores_checked.json``).

    ``stores``: {split: {network: path}}. For task ``closed_set`` the
    evaluation split's classifiers read the labels: every classifier must be
    finite, all must have the same number of classes, and the labels must be
    -1 or a class index of it; the fit and evaluation splits must not share
    ids. Each check reads ids and labels (and the classifiers), never the
    embeddings. With ``layers`` (the experiment's ``analyses`` lists ``layers``) every network must hold the same
    layers in all its stores, and some network one; the pass's cost over every node is logged (``warn``: when
    large) and recorded as ``pass_cost``.
    """

    from . import tasks

    log = log or (lambda *a: None)
    closed = tasks.get(task).classifier  # the evaluation split's classifiers read its labels
    summary = {"task": task, "splits": {}}
    opened: dict = {}
    for split, paths in stores.items():
        ref = None
        summary["splits"][split] = {}
        for name, path in paths.items():
            try:
                s = open_embeddings(path, split=split, need_classifier=closed and split == eval_split)
                ids, labels = s.ids, s.labels
                if s.n < (2 if split == fit_split else 1):
                    raise StoreError(f"store {path}: holds {s.n} sample(s); "
                                     + ("a map is fitted on at least 2" if split == fit_split else "nothing to measure"))
                contract.duplicate_ids(ids, path)
                contract.check_labels(labels, None, path)
                for layer in (None, *s.layers):
                    contract.missing_chunks(s.as_layer(layer).embeddings, path)
            except StoreError as e:
                raise StoreError(f"network {name!r}: {e}") from None
            if ref is None:
                ref = (name, path, ids, labels)
            else:
                contract.same_samples(ref, (name, path, ids, labels))
            opened[(split, name)] = s
            summary["splits"][split][name] = {"path": str(path), "n": s.n, "dim": s.dim,
                                              "labelled": int((labels >= 0).sum())}
        log(f"split {split!r}: {len(paths)} store(s) of {ref[2].shape[0] if ref else 0} samples agree")
    names = list(dict.fromkeys(n for paths in stores.values() for n in paths))
    for name in names:  # one network: one feature space and one classifier in all its stores
        mine = [(split, opened[(split, name)]) for split in stores if (split, name) in opened]
        (s0, first), rest = mine[0], mine[1:]
        for split, s in rest:
            if s.dim != first.dim:
                raise StoreError(f"network {name!r}: store {s.path} has {s.dim} features, its {s0!r} store "
                                 f"{first.path} has {first.dim}; a network's stores share one embedding space")
        cls = [(split, s, s.classifier()) for split, s in mine if s.has_classifier]
        for split, s, (w, b) in cls:
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise StoreError(f"network {name!r}: store {s.path}: its classifier holds NaN or infinite values")
        # classifiers recovered by least squares are estimates from each split's own images: they differ
        exact = [c for c in cls if dict(c[1].group["classifier"].attrs).get("method") != "least_squares"]
        for split, s, (w, b) in exact[1:]:
            w0, b0 = exact[0][2]
            scale = max(float(np.abs(w0).max()), float(np.abs(b0).max()), 1e-30)
            if w.shape != w0.shape or not (np.allclose(w, w0, rtol=1e-5, atol=1e-6 * scale)
                                           and np.allclose(b, b0, rtol=1e-5, atol=1e-6 * scale)):
                raise StoreError(f"network {name!r}: the classifier of {s.path} differs from that of "
                                 f"{exact[0][1].path}; a network has one classifier (are these stores of one model?)")
    if closed and eval_split in stores:
        evals = {n: opened[(eval_split, n)] for n in stores[eval_split]}
        classes = {n: s.classifier()[0].shape[0] for n, s in evals.items()}
        offsets = {n: s.label_offset for n, s in evals.items()}
        # label spaces: class k of a classifier is dataset label k + its label_offset (a 1,000-class ImageNet
        # head beside 1,001 labels with background 0 has offset 1); the spaces must end at the same label
        ends = {n: offsets[n] + classes[n] for n in evals}
        if len(set(ends.values())) > 1:
            raise StoreError("the networks' classifiers cover different labels ("
                             + ", ".join(f"{n}: {classes[n]} classes" + (f" from label {offsets[n]}" if offsets[n]
                                                                         else "") for n in evals)
                             + f", split {eval_split!r}); class i must be the same class for every classifier that "
                             "reads the labels")
        labels = next(iter(evals.values())).labels
        for n, s in evals.items():
            try:
                contract.check_labels(labels, classes[n], s.path, offsets[n])
            except StoreError as e:
                raise StoreError(f"network {n!r}: {e}") from None
        if not (labels >= 0).any():
            raise StoreError(f"split {eval_split!r}: no labels (all -1) in {next(iter(evals.values())).path}; "
                             "closed_set measures accuracy against them")
        summary["classes"] = int(max(ends.values()))
    if closed and fit_split in stores and eval_split in stores:
        _disjoint(opened, list(stores[fit_split]), fit_split, eval_split)
    if layers and fit_split in stores:
        summary["pass_cost"] = _layer_nodes(opened, stores, fit_split, log, warn or log)
    return summary


def _layer_nodes(opened: dict, stores: dict, fit_split: str, log, warn) -> dict:
    """Check that every network holds the same layers (names, dims) in all its stores and that some network holds
    one; log the cost of the pass over every (network, layer) node (:func:`embmap.fit.gram.pass_cost`), through
    ``warn`` when large, and return it."""
    from .fit.gram import pass_cost

    dims = []
    for name in stores[fit_split]:
        mine = [opened[(split, name)] for split in stores if (split, name) in opened]
        held = [(s, {k: s.as_layer(k).dim for k in s.layers}) for s in mine]
        for s, layers in held[1:]:
            if layers != held[0][1]:
                raise StoreError(f"network {name!r}: store {s.path} holds layers {layers or 'none'}, its store "
                                 f"{held[0][0].path} holds {held[0][1] or 'none'}; a network's stores hold the same "
                                 "layers (analyses lists layers)")
        dims += [mine[0].dim, *held[0][1].values()] if mine else []
    if len(dims) == len(stores[fit_split]):
        raise StoreError(f"analyses lists layers, but no store of split {fit_split!r} holds a layer beside its "
                         "embedding: name layers: for a network (docs/configuration.md), or write them into a "
                         "bring-your-own store (docs/bring-your-own.md)")
    n = next(s.n for (split, _), s in opened.items() if split == fit_split)
    cost = pass_cost(dims, n)
    (warn if cost["large"] else log)(f"the pass over every (network, layer): {cost['text']}")
    return cost


def _disjoint(opened: dict, names: list, fit_split: str, eval_split: str) -> None:
    """The evaluation split shares no id with the fit split (maps are measured on images they were not fitted on)."""
    name = names[0]
    fit, ev = opened[(fit_split, name)], opened[(eval_split, name)]
    fit_ids, eval_ids = fit.ids, ev.ids
    shared, i_fit, i_eval = np.intersect1d(fit_ids, eval_ids, assume_unique=True, return_indices=True)
    if not len(shared):
        return
    same = np.array_equal(np.asarray(fit.embeddings[int(i_fit[0])]), np.asarray(ev.embeddings[int(i_eval[0])]))
    why = (f"network {name!r} embeds {str(shared[0])!r} identically in both, so these are the same images: the maps "
           "would be measured on images they were fitted on; take them out of one split" if same else
           f"network {name!r} embeds {str(shared[0])!r} differently in the two, so the ids do not name images (row "
           "numbers?): give every image an id unique across splits, e.g. its file path")
    raise StoreError(f"splits {fit_split!r} and {eval_split!r} share {len(shared)} of {len(eval_ids)} ids (first "
                     f"{str(shared[0])!r}, {fit.path} and {ev.path}); {why}")


def sample_chunks(n: int, rows: int):
    """Yield (start, stop) ranges covering ``range(n)`` in steps of ``rows``."""
    for start in range(0, n, rows):
        yield start, min(n, start + rows)


def read_rows(store: "EmbeddingStore", rows: np.ndarray) -> np.ndarray:
    """float64 [len(rows), d]: a store's embeddings at the increasing indices ``rows``, read one chunk of
    samples at a time (memory: the result and one chunk)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and (np.any(np.diff(rows) <= 0) or rows[0] < 0 or rows[-1] >= store.n):
        raise StoreError(f"store {store.path}: rows must increase within 0..{store.n - 1}")
    arr = store.embeddings
    out = np.empty((len(rows), store.dim))
    for start, stop in sample_chunks(store.n, arr.chunks[0]):
        lo, hi = np.searchsorted(rows, [start, stop])
        if hi > lo:
            out[lo:hi] = arr[start:stop][rows[lo:hi] - start]
    return out


# -- block stores (the pass's cross products) ---------------------------------------
def write_blocks(path, blocks: Blocks, full: bool = True, **attrs) -> None:
    """Store blocks one pair at a time (memory: a few blocks); see :func:`write_blocks_to`."""
    with atomic_group(path) as g:
        write_blocks_to(g, blocks, full, **attrs)


def write_blocks_to(g, blocks: Blocks, full: bool = True, **attrs) -> None:
    """Write blocks into an open group.

    Layout: ``mean/{A}`` [d_A], ``gram/{A}/{B}`` [d_A, d_B] for A at or before
    B, ``sumsq/{A}`` [d_A] (the diagonal of ``gram/{A}/{A}``), the squared-norm
    statistics ``norms/origin`` [D], ``norms/q`` [N, N] and ``norms/u`` [N, D]
    (:class:`embmap.fit.blocks.Norms`; not written for blocks without them); with folds the
    same under ``folds/{k}/`` for each fold with samples; with sample sizes
    the same under ``subsets/{m}/`` for the first m samples (those
    :func:`write_subset` has not written already). ``full=False`` writes only
    the folds (shard partials, whose whole is their pool). Gram blocks are
    stored uncompressed: float64 products do not compress.
    """
    folds = blocks.folds
    parts = [f for f in folds if f.n > 0]
    full = (full or not folds) and blocks.n > 0  # an empty shard writes its attributes only
    if full:
        for a, m in blocks.means.items():
            g.create_array(f"mean/{a}", data=m, dimension_names=[f"{a}_feature"])
        write_norms(g, "", blocks)
    for k, f in enumerate(folds):
        for a, m in (f.means.items() if f.n else ()):
            g.create_array(f"folds/{k}/mean/{a}", data=m, dimension_names=[f"{a}_feature"])
        if f.n:
            write_norms(g, f"folds/{k}/", f)
    for a, b in blocks.pairs():
        dn = [f"{a}_feature", f"{b}_feature"]
        grams = []
        for k, f in enumerate(folds):
            if f.n:
                grams.append(f.read(a, b))
                g.create_array(f"folds/{k}/gram/{a}/{b}", data=grams[-1], dimension_names=dn, compressors=None)
                if a == b:
                    g.create_array(f"folds/{k}/sumsq/{a}", data=np.diag(grams[-1]).copy(), dimension_names=dn[:1])
        if full:
            s = pool_block(parts, a, b, blocks.means, grams) if folds else blocks.read(a, b)
            g.create_array(f"gram/{a}/{b}", data=s, dimension_names=dn, compressors=None)
            if a == b:
                g.create_array(f"sumsq/{a}", data=np.diag(s).copy(), dimension_names=dn[:1])
        del grams
    written = {int(m) for m in g.attrs.get("subset_n", {})}
    for m, sub in sorted(blocks.subsets.items()):
        if int(m) not in written:
            write_subset(g, m, sub)
    alias = {"fold_rows": blocks.attrs["block_rows"]} if "block_rows" in blocks.attrs else {}
    g.update_attributes({**blocks.attrs, **alias, "networks": list(blocks.names), "dims": list(blocks.dims),
                    "n": int(blocks.n), "folds": max(1, len(folds)), "blocks_version": BLOCKS_VERSION, "fold_n": [int(f.n) for f in folds],
                    "subset_n": dict(g.attrs.get("subset_n", {})), "created": now(),
                    "convention": "gram/A/B = (X_A - mean_A)^T (X_B - mean_B) over the samples, A at or "
                                  "before B in the order of 'networks'",
                    "norms_convention": "with a_i^A = ||x_i^A - origin_A||^2: norms/q[A, B] = sum_i a_i^A "
                                        "a_i^B, norms/u[A] = sum_i a_i^A (z_i - origin), z_i all networks' "
                                        "features side by side in the order of 'networks'",
                    **({"fold_convention": "sample i (row of the fit split) is in fold (i // block_rows) % folds; "
                                           "folds/k/ holds fold k's blocks centred on its own mean"}
                       if folds else {}),
                    **({"subset_convention": "subsets/m/ holds the blocks of the first m samples of the fit split, "
                                             "centred on their own mean"} if blocks.subsets else {}),
                    **attrs})


def write_norms(g, prefix: str, blocks: Blocks) -> None:
    """``{prefix}norms/origin``, ``q`` and ``u`` (float64) of blocks that have them."""
    if blocks.norms is None:
        return
    try:
        nm = blocks.sqnorms()
    except NoNorms:  # pooled from a store without them: this one has none either
        return
    g.create_array(f"{prefix}norms/origin", data=np.asarray(nm.origin, np.float64), dimension_names=["feature"])
    g.create_array(f"{prefix}norms/q", data=np.asarray(nm.q, np.float64), dimension_names=["network", "network"])
    g.create_array(f"{prefix}norms/u", data=np.asarray(nm.u, np.float64), dimension_names=["network", "feature"],
                   compressors=None)


def write_subset(g, m: int, blocks: Blocks) -> None:
    """Write the blocks of the first ``m`` samples under ``subsets/{m}/`` of an open group, one pair at a time.

    A shard without rows below ``m`` writes no arrays; ``subset_n`` records
    every subset's sample count either way.
    """
    for a, mean in (blocks.means.items() if blocks.n else ()):
        g.create_array(f"subsets/{m}/mean/{a}", data=mean, dimension_names=[f"{a}_feature"])
    if blocks.n:
        write_norms(g, f"subsets/{m}/", blocks)
    for a, b in (blocks.pairs() if blocks.n else ()):
        dn = [f"{a}_feature", f"{b}_feature"]
        s = blocks.read(a, b)
        g.create_array(f"subsets/{m}/gram/{a}/{b}", data=s, dimension_names=dn, compressors=None)
        if a == b:
            g.create_array(f"subsets/{m}/sumsq/{a}", data=np.diag(s).copy(), dimension_names=dn[:1])
    g.update_attributes({"subset_n": {**dict(g.attrs.get("subset_n", {})), str(int(m)): int(blocks.n)}})


def block_nodes(attrs: dict) -> list[dict]:
    """Every node of a block store, in its order: ``{"node", "network", "layer"}`` (the attribute ``nodes``; a
    store of the embeddings alone, or one written before layers, lists each network as its own embedding)."""
    if "nodes" in attrs:
        return [dict(n) for n in attrs["nodes"]]
    return [{"node": a, "network": a, "layer": contract.EMBEDDING} for a in attrs["networks"]]


def open_blocks(path, layers: bool = False) -> Blocks:
    """Blocks of a block store (or of a shard partial, whose whole is pooled from its folds).

    ``layers=False`` (what every reader of the embeddings takes): the networks' embeddings only, named by their
    networks, whatever layers the pass also covered; ``layers=True``: every node of the pass (the embeddings,
    then the layers ``NETWORK@KEY``, :func:`embmap.contract.node`; :func:`block_nodes` names them)."""
    whole = _open_blocks(path)
    if layers:
        return whole
    return whole.only([n["node"] for n in block_nodes(whole.attrs) if n["layer"] == contract.EMBEDDING])


def _open_blocks(path) -> Blocks:
    g = open_group(path, "block store")
    names, dims = list(g.attrs["networks"]), [int(d) for d in g.attrs["dims"]]
    attrs = dict(g.attrs)
    version = attrs.get("blocks_version", 1)
    if not isinstance(version, int) or not 1 <= version <= BLOCKS_VERSION:
        raise StoreError(f"block store {path}: attribute 'blocks_version' is {version!r}; this embmap reads 1 to "
                         f"{BLOCKS_VERSION} (a larger one was written by a newer embmap)")

    def norms(prefix: str):
        if f"{prefix}norms" not in g:
            def missing():
                raise NoNorms(f"block store {path}: no squared-norm statistics ({prefix}norms/), which cka_debiased "
                              f"needs: it was written before the pass kept them (blocks_version {version}); re-run "
                              f"the pass: delete {path} (the experiment's fit/blocks.zarr) and run the workflow "
                              "again")
            return missing
        return lambda: Norms(np.asarray(g[f"{prefix}norms/origin"][:]), np.asarray(g[f"{prefix}norms/q"][:]),
                             np.asarray(g[f"{prefix}norms/u"][:]))

    def stored(prefix: str, n: int) -> Blocks:
        if n == 0:
            return empty_blocks(names, dims)
        means = {a: np.asarray(g[f"{prefix}mean/{a}"][:]) for a in names}
        diag = ((lambda a: np.asarray(g[f"{prefix}sumsq/{a}"][:])) if f"{prefix}sumsq" in g else None)
        return Blocks(names, dims, n, means, lambda a, b: np.asarray(g[f"{prefix}gram/{a}/{b}"][:]), attrs=attrs,
                      diag=diag, norms=norms(prefix))

    fold_n = [int(v) for v in attrs.get("fold_n", [])]
    folds = [stored(f"folds/{k}/", nk) for k, nk in enumerate(fold_n)]
    subsets = {int(m): stored(f"subsets/{m}/", int(nm)) for m, nm in attrs.get("subset_n", {}).items()}
    if int(attrs["n"]) == 0:  # a shard with no rows
        return Blocks(names, dims, 0, {}, lambda a, b: None, folds, attrs, subsets=subsets)
    if "gram" in g:
        whole = stored("", int(attrs["n"]))
        whole.folds, whole.subsets = folds, subsets
        return whole
    out = pool(folds, folds=folds, attrs=attrs)
    out.subsets = subsets
    return out


def write_map(path, m: LinearMap, **attrs) -> None:
    """Store a map: ``weight`` [d_A, d_B], ``intercept`` [d_B], attributes with provenance.

    ``weight`` is stored uncompressed (float64 coefficients do not compress).
    """
    if "versions" not in attrs:  # callers writing many maps pass it once
        attrs["versions"] = versions()
    with atomic_group(path) as g:
        g.create_array("weight", data=np.asarray(m.weight, np.float64), compressors=None,
                       dimension_names=["source_feature", "target_feature"])
        g.create_array("intercept", data=np.asarray(m.intercept, np.float64), dimension_names=["target_feature"])
        g.update_attributes({**m.attrs, "d_source": int(m.weight.shape[0]), "d_target": int(m.weight.shape[1]),
                        "convention": "f_target ≈ f_source @ weight + intercept", "created": now(), **attrs})


def read_map(path) -> LinearMap:
    g = open_group(path, "map store")
    return LinearMap(np.asarray(g["weight"][:]), np.asarray(g["intercept"][:]), dict(g.attrs))
