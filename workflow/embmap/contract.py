"""The embedding store contract: what a store must and may hold, and the checks that hold it to that.

Every embedding store is read through these checks, whether the workflow
wrote it or a user brought it (``source: zarr``), so a store that breaks the
contract is refused in one line naming the store and what is wrong, before a
number is computed from it. docs/bring-your-own.md documents
the same contract for users.

- :func:`metadata` reads a store's metadata with the standard library only
  (the Snakefile checks bring-your-own stores while it parses, before any
  job runs): it recognises a missing folder, a Zarr v2 store, a partial store
  and consolidated metadata that no longer describes the arrays;
- :func:`check_complete`, :func:`check_layout` and :func:`check_attributes`
  check the ``complete`` flag, the arrays (names, shapes, data types, the
  classifier, the layers) and every attribute the workflow reads (:data:`ATTRIBUTES`);
- layers (format version 2, :data:`FORMAT_VERSION`): arrays ``layers/KEY``
  [sample, feature] beside ``embeddings``, KEY from the layer's name by
  :func:`layer_key`, listed by name in the root attribute ``layers``
  (:func:`layer_names`); :data:`EMBEDDING` is reserved for the embedding
  itself. Stores of format version 1 (or without the attribute) hold none and
  are read as they are;
- nodes of the pass (:func:`node`): the embedding of a network and each of
  its layers, named ``NETWORK`` and ``NETWORK@KEY`` in block stores;
- :func:`duplicate_ids`, :func:`same_samples`, :func:`check_labels` and
  :func:`missing_chunks` hold ids, labels and chunks to it (numpy):
  :func:`embmap.stores.check_experiment` runs them over every store of an
  experiment in the ``check_stores`` job, before the pass: ids unique in a
  store, equal across networks, disjoint between the fit and evaluation
  splits; labels equal across networks, and in {-1} ∪ [0, classes) of every
  classifier that reads them; classifiers finite, with one class count, and
  one per network; every chunk of the embeddings written (listed, not read).

Standard library only at import time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

FORMAT_VERSION = 2  # 1: no layers; 2: optional layers/KEY arrays listed in the attribute `layers`
LAYERS_SINCE = 2  # the first format version whose stores may hold layers
ARRAYS = ("embeddings", "ids", "labels", "classifier/weight", "classifier/bias")
EMBEDDING = "embedding"  # reserved: names the embedding itself (array `embeddings`), never a layer
LAYERS = "layers"  # the group of layer arrays and the root attribute listing their names
V2_MARKERS = (".zgroup", ".zattrs", ".zarray", ".zmetadata")


class StoreError(ValueError):
    """A store is missing, incomplete, breaks the store contract or disagrees with its siblings."""


MAX_KEY = 120  # characters of a layer's array name: file systems refuse names of more than 255 bytes


def layer_key(name: str) -> str:
    """The array name of layer ``name`` under ``layers/``: the name with ``%``, ``/`` and other characters outside
    letters, digits and ``_.-~`` percent-encoded (``Mixed_5a/concat`` -> ``Mixed_5a%2Fconcat``), so any framework's
    name is one Zarr node. A key longer than :data:`MAX_KEY` (TFLite's fused tensor names run to 400 characters)
    keeps its beginning and ends in ``~`` and 16 hex digits of the name's SHA-256. The name itself is the
    array's attribute ``name`` and an entry of the root attribute ``layers``."""
    import hashlib
    from urllib.parse import quote

    key = quote(name, safe="")
    if key.startswith("__") or set(key) <= {"."}:  # names Zarr reserves or refuses
        key = "".join(f"%{ord(c):02X}" if c in "_." else c for c in key[:2]) + key[2:]
    if len(key) > MAX_KEY:
        cut = key[:MAX_KEY - 17]
        if "%" in cut[-2:]:  # never half an escape
            cut = cut[:cut.rindex("%")]
        key = f"{cut}~{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return key


NODE_SEP = "@"  # between a network's name and a layer's key in a node of the pass (neither can hold it)


def node(network: str, layer: str | None = None) -> str:
    """The name of (network, layer) as a node of the pass and of its block store: the network's own name for its
    embedding (None or :data:`EMBEDDING`), else ``NETWORK@KEY`` (:func:`layer_key`; network names hold letters,
    digits, ``_`` and ``-`` only, and a key never holds ``@``, so the name is never ambiguous). The block store's
    attribute ``nodes`` maps every node back to its network and layer."""
    return network if layer in (None, EMBEDDING) else f"{network}{NODE_SEP}{layer_key(layer)}"


def layer_path(name: str) -> str:
    """The path of layer ``name``'s array inside a store: ``layers/KEY`` (:func:`layer_key`)."""
    return f"{LAYERS}/{layer_key(name)}"


def _layer_names(v) -> bool:
    return (isinstance(v, list) and all(isinstance(x, str) and x and x != EMBEDDING for x in v)
            and len(set(v)) == len(v))


# -- attributes ---------------------------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _size(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_is_int(x) and x > 0 for x in v)


def _range(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v) and v[0] < v[1]


def _optional(test):
    return lambda v: v is None or test(v)


# Attributes the workflow reads from a store: name -> (test, what it must be, what reads it). Every other
# attribute (dataset, seed, spec, versions, created, experiment, manifest, skipped, tf_threads, your own)
# is provenance: kept, shown by `python -m embmap inspect`, never read.
ATTRIBUTES = {
    "complete": (lambda v: v is True, "the boolean true, written last", "every reader"),
    "format_version": (lambda v: _is_int(v) and 1 <= v <= FORMAT_VERSION,
                       f"an integer from 1 to {FORMAT_VERSION} (the store layout's version)", "every reader"),
    "split": (_optional(lambda v: isinstance(v, str)), "a string (the split the store holds: its file name) or null",
              "the store checks"),
    "network": (_optional(lambda v: isinstance(v, str)), "a string or null", "provenance"),
    "source_kind": (_optional(lambda v: isinstance(v, str)), "a string or null", "provenance"),
    "source": (_optional(lambda v: isinstance(v, str)), "a string or null", "provenance"),
    "handle": (_optional(lambda v: isinstance(v, str)), "a string or null", "Table 1 `handle`"),
    "classifier_handle": (_optional(lambda v: isinstance(v, str)), "a string or null",
                          "Table 1 `classifier_handle`"),
    "parameters": (_optional(lambda v: _is_int(v) and v >= 0), "a non-negative integer or null",
                   "Table 1 `parameters`"),
    "input_size": (_optional(_size), "[height, width] in pixels (positive integers) or null",
                   "Table 1 `input_size`"),
    "preprocessing": (_optional(lambda v: isinstance(v, dict)), "a mapping or null, e.g. {'crop_fraction': 0.875, "
                      "'input_range': [-1, 1], 'description': 'your words'}", "Table 1 `crop_fraction`, `input_range`"),
    "randomized": (lambda v: v is None or isinstance(v, (bool, dict)),
                   "null, false, or a mapping describing the re-initialisation (seed, counts)",
                   "Table 1 `randomized`"),
    "l2_normalised": (_optional(lambda v: isinstance(v, bool)), "a boolean or null", "open_set.json"),
    "alignment": (_optional(lambda v: isinstance(v, dict)), "a mapping or null", "open_set.json"),
    LAYERS: (_layer_names, f"a list of distinct layer names (non-empty strings, not {EMBEDDING!r}, which names the "
             "embedding itself), one per array under layers/", "readers of layers (format version 2)"),
}
# keys of the `preprocessing` mapping that Table 1 reads; others are provenance
PREPROCESSING = {
    "crop_fraction": (_optional(lambda v: _is_number(v) and 0 < v <= 1), "a number in (0, 1] or null"),
    "input_range": (_optional(_range), "[low, high] with low < high, or null"),
    "input_size": (_optional(_size), "[height, width] (positive integers) or null"),
}
CLASSIFIER_ATTRIBUTES = {
    "method": (_optional(lambda v: isinstance(v, str)), "a string (variables, least_squares, or how you "
               "obtained C and b) or null", "Table 1 `classifier`"),
}


def _show(v) -> str:
    text = json.dumps(v, default=str)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} (a {type(v).__name__})" if not isinstance(v, (dict, list)) or v == [] else text


def check_complete(attrs: dict, path) -> None:
    """``complete`` must be the boolean true; anything else is an unfinished (or hand-made) store."""
    if "complete" not in attrs:
        raise StoreError(
            f"store {path}: not marked complete (no 'complete' attribute). The workflow's own stores appear at "
            "their final path only when complete, so this one was written by something else or changed by hand: "
            "finish writing it (set the root attribute complete: true last, as embmap.stores.write_embeddings "
            "does), or delete it if the workflow wrote it and run the workflow again")
    if attrs["complete"] is not True:
        raise StoreError(f"store {path}: attribute 'complete' is {_show(attrs['complete'])}; it must be the boolean "
                         "true, written last, once every array is whole")


def version(attrs: dict) -> int:
    """A store's format version (absent: 1, the stores written before the attribute existed)."""
    v = attrs.get("format_version", 1)
    return v if _is_int(v) else 1


def layer_names(attrs: dict) -> list[str]:
    """The layers a store holds, in order: its attribute ``layers`` (none before format version 2)."""
    names = attrs.get(LAYERS) if version(attrs) >= LAYERS_SINCE else None
    return list(names) if _layer_names(names) else []


def check_attributes(attrs: dict, path, split: str | None = None, classifier_attrs: dict | None = None) -> None:
    """Check every attribute the workflow reads (:data:`ATTRIBUTES`); ``split``: the split the store is used as."""
    check_complete(attrs, path)
    for name, (test, want, _) in ATTRIBUTES.items():
        if name == LAYERS and version(attrs) < LAYERS_SINCE:
            continue  # before format version 2, `layers` was an attribute like any other: kept, never read
        if name in attrs and not test(attrs[name]):
            extra = " (this store was written by a newer embmap)" if name == "format_version" and _is_int(
                attrs[name]) and attrs[name] > FORMAT_VERSION else ""
            raise StoreError(f"store {path}: attribute {name!r} is {_show(attrs[name])}; it must be {want}{extra}")
    for name, (test, want) in PREPROCESSING.items():
        pre = attrs.get("preprocessing") or {}
        if name in pre and not test(pre[name]):
            raise StoreError(f"store {path}: attribute 'preprocessing.{name}' is {_show(pre[name])}; it must be "
                             f"{want}")
    if split is not None and attrs.get("split") is not None and attrs["split"] != split:
        raise StoreError(f"store {path}: its attribute split is {attrs['split']!r}, but it is read as split "
                         f"{split!r}: is it the right file?")
    for name, (test, want, _) in CLASSIFIER_ATTRIBUTES.items():
        if classifier_attrs and name in classifier_attrs and not test(classifier_attrs[name]):
            raise StoreError(f"store {path}: attribute 'classifier/{name}' is {_show(classifier_attrs[name])}; it "
                             f"must be {want}")


# -- metadata, with the standard library ---------------------------------------------------
@dataclass
class ArrayMeta:
    shape: tuple
    dtype: str  # zarr v3 data type name: float32, int64, string, ...
    chunks: tuple | None = None

    @property
    def kind(self) -> str:
        """'f' float, 'i' integer, 's' string, 'b' boolean, '?' other."""
        d = self.dtype
        if d.startswith("float"):
            return "f"
        if d.startswith(("int", "uint")):
            return "i"
        if d in ("string", "fixed_length_utf32") or d.startswith(("<U", ">U", "|S", "|O")):
            return "s"
        if d == "bool":
            return "b"
        return "?"


@dataclass
class Meta:
    """What a store's metadata says: root and classifier attributes, and the arrays of :data:`ARRAYS` present."""

    path: Path
    attrs: dict
    arrays: dict = field(default_factory=dict)
    classifier_attrs: dict | None = None

    @property
    def n(self) -> int:
        return int(self.arrays["embeddings"].shape[0])

    @property
    def dim(self) -> int:
        return int(self.arrays["embeddings"].shape[1])

    @property
    def has_classifier(self) -> bool:
        return "classifier/weight" in self.arrays or "classifier/bias" in self.arrays

    @property
    def layers(self) -> dict:
        """{layer name: its array's metadata}, in the order of the attribute ``layers``."""
        return {name: self.arrays[layer_path(name)] for name in layer_names(self.attrs)
                if layer_path(name) in self.arrays}

    @property
    def classes(self) -> int | None:
        w = self.arrays.get("classifier/weight")
        return int(w.shape[0]) if w is not None and len(w.shape) == 2 else None


def _read_json(p: Path, path) -> dict | None:
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise StoreError(f"store {path}: {p.relative_to(path) if p != path else p.name} cannot be read "
                         f"({type(e).__name__}: {e})") from None


def _dtype(meta: dict) -> str:
    d = meta.get("data_type")
    if isinstance(d, dict):
        d = d.get("name")
    return str(d)


def _array(meta: dict) -> ArrayMeta:
    grid = meta.get("chunk_grid") or {}
    chunks = (grid.get("configuration") or {}).get("chunk_shape")
    return ArrayMeta(tuple(meta.get("shape") or ()), _dtype(meta), tuple(chunks) if chunks else None)


def convert_hint(path) -> str:
    p = Path(path)
    return (f"convert it with `python -m embmap convert {p} NEWDIR/{p.name}` (it reads the old store and writes "
            "a new one; or write it with embmap.stores.write_embeddings) and set the network's path to NEWDIR")


def metadata(path) -> Meta:
    """Read a store's metadata (standard library only); raise :class:`StoreError` naming what is wrong.

    Refuses a missing folder, a file, a partial store, a Zarr v2 store (with how
    to convert it), a folder that is no Zarr group, and consolidated metadata
    that disagrees with an array's own (the store was changed after it was
    consolidated: Zarr would read the stale shapes).
    """
    p = Path(path)
    if p.name.endswith(".partial"):
        raise StoreError(f"store {p}: an unfinished writer's partial store (incomplete), never a finished one; the workflow "
                         "resumes its own partial stores when their rule runs again")
    if not p.exists():
        raise StoreError(f"store {p}: does not exist")
    if not p.is_dir():
        raise StoreError(f"store {p}: is a file; embmap reads Zarr stores that are folders (a zipped store must "
                         "be unzipped)")
    root = _read_json(p / "zarr.json", p)
    if root is None:
        v2 = [m for m in V2_MARKERS if (p / m).exists()]
        if v2:
            raise StoreError(f"store {p}: is a Zarr v2 store (it has {v2[0]}); embmap reads Zarr v3 stores: "
                             + convert_hint(p))
        raise StoreError(f"store {p}: not a Zarr store (no zarr.json)")
    if root.get("zarr_format") != 3 or root.get("node_type") != "group":
        raise StoreError(f"store {p}: zarr.json describes a {root.get('node_type')!r} of Zarr format "
                         f"{root.get('zarr_format')!r}; a store is a Zarr v3 group")
    consolidated = (root.get("consolidated_metadata") or {}).get("metadata")
    attrs = dict(root.get("attributes") or {})
    listed = [layer_path(n) for n in layer_names(attrs)]
    arrays = {}
    for name in (*ARRAYS, *listed):
        own = _read_json(p / name / "zarr.json", p)
        if own is not None and own.get("node_type") != "array":
            raise StoreError(f"store {p}: {name!r} is a {own.get('node_type')}, not an array")
        if consolidated is not None:
            cons = consolidated.get(name)
            if (own is None) != (cons is None) or (own is not None and (
                    list(own.get("shape") or []) != list(cons.get("shape") or [])
                    or _dtype(own) != _dtype(cons))):
                say = "absent" if cons is None else f"shape {cons.get('shape')}, {_dtype(cons)}"
                has = "absent" if own is None else f"shape {own.get('shape')}, {_dtype(own)}"
                raise StoreError(
                    f"store {p}: its consolidated metadata is out of date for {name!r} (it says {say}; the array "
                    f"is {has}): the store was changed after it was consolidated and Zarr would read the stale "
                    f"description. Run zarr.consolidate_metadata({str(p)!r}), or write the store again")
        if own is not None:
            arrays[name] = _array(own)
    cls = _read_json(p / "classifier" / "zarr.json", p)
    return Meta(p, attrs, arrays,
                dict(cls.get("attributes") or {}) if cls is not None else None)


def check_layout(meta: Meta, need_classifier: bool = False) -> None:
    """The arrays: ``embeddings`` [n, d] numeric, ``ids`` and ``labels`` [n], labels integers, the classifier."""
    p, a = meta.path, meta.arrays
    for name in ("embeddings", "ids", "labels"):
        if name not in a:
            raise StoreError(f"store {p}: has no array {name!r} (a store holds embeddings [sample, feature], ids "
                             "[sample] and labels [sample])")
    e = a["embeddings"]
    if len(e.shape) != 2:
        raise StoreError(f"store {p}: 'embeddings' has shape {list(e.shape)}; it must be 2-D [sample, feature]")
    if e.kind not in "fi":
        raise StoreError(f"store {p}: 'embeddings' has data type {e.dtype}; it must be numbers (float32)")
    n, d = e.shape
    if d < 1:
        raise StoreError(f"store {p}: 'embeddings' has no features (shape {list(e.shape)})")
    for name in ("ids", "labels"):
        if tuple(a[name].shape) != (n,):
            raise StoreError(f"store {p}: {name!r} has shape {list(a[name].shape)}; 'embeddings' has {n} samples, "
                             f"so it must be [{n}]")
    if a["labels"].kind != "i":
        raise StoreError(f"store {p}: 'labels' has data type {a['labels'].dtype}; labels must be integers "
                         "(class indices, -1 where unknown)")
    if a["ids"].kind not in "si":
        raise StoreError(f"store {p}: 'ids' has data type {a['ids'].dtype}; ids must be strings naming the images")
    if meta.has_classifier:
        w, b = a.get("classifier/weight"), a.get("classifier/bias")
        if w is None or b is None:
            raise StoreError(f"store {p}: has classifier/{'bias' if w is None else 'weight'} without classifier/"
                             f"{'weight' if w is None else 'bias'}; a classifier is both (logits = weight @ f + bias)")
        if len(w.shape) != 2 or w.shape[1] != d or tuple(b.shape) != (w.shape[0],):
            raise StoreError(f"store {p}: classifier weight {list(w.shape)} and bias {list(b.shape)} do not fit "
                             f"{d} features: weight must be [classes, {d}] and bias [classes]")
        if w.kind != "f" or b.kind != "f":
            raise StoreError(f"store {p}: classifier weight and bias must be floating point numbers, not "
                             f"{w.dtype} and {b.dtype}")
        if w.shape[0] < 2:
            raise StoreError(f"store {p}: classifier has {w.shape[0]} class(es); a classifier chooses among at "
                             "least 2")
    elif need_classifier:
        raise StoreError(f"store {p}: has no classifier (classifier/weight [classes, features] and classifier/bias "
                         "[classes]), which task closed_set needs")
    listed = [layer_path(n) for n in layer_names(meta.attrs)]
    if (p / LAYERS / "zarr.json").exists():
        if version(meta.attrs) < LAYERS_SINCE:
            raise StoreError(f"store {p}: holds a {LAYERS}/ group but its format_version is "
                             f"{meta.attrs.get('format_version', 'absent (1)')}; layers are read from stores of format "
                             f"version {LAYERS_SINCE}, which list them in the attribute {LAYERS!r} "
                             "(embmap.stores.write_embeddings(..., layers=...) writes such a store)")
        stray = sorted(f"{LAYERS}/{q.name}" for q in (p / LAYERS).iterdir()
                       if (q / "zarr.json").exists() and f"{LAYERS}/{q.name}" not in listed)
        if stray:
            raise StoreError(f"store {p}: holds {stray[0]} ({len(stray)} array(s) in all) that its attribute "
                             f"{LAYERS!r} does not list ({layer_names(meta.attrs) or 'none'}); list every layer in it, "
                             "by its name")
    for name in layer_names(meta.attrs):
        arr = a.get(layer_path(name))
        if arr is None:
            raise StoreError(f"store {p}: lists layer {name!r} in its attribute {LAYERS!r} but has no array "
                             f"{layer_path(name)!r}")
        if len(arr.shape) != 2 or arr.shape[0] != n or arr.shape[1] < 1:
            raise StoreError(f"store {p}: layer {name!r} ({layer_path(name)}) has shape {list(arr.shape)}; it must be "
                             f"[{n}, feature] (one vector per sample, like 'embeddings')")
        if arr.kind not in "fi":
            raise StoreError(f"store {p}: layer {name!r} ({layer_path(name)}) has data type {arr.dtype}; it must be "
                             "numbers (float32)")


def check_store(path, split: str | None = None, need_classifier: bool = False) -> Meta:
    """Every metadata check of one store (standard library only); returns its :class:`Meta`."""
    meta = metadata(path)
    check_attributes(meta.attrs, meta.path, split, meta.classifier_attrs)
    check_layout(meta, need_classifier)
    return meta


def fingerprint(path) -> str:
    """A digest of the names, sizes and modification times of every file in a store.

    Snakemake sees only a folder's own modification time, which does not change
    when a file inside is rewritten; this digest does, so a bring-your-own store
    edited in place reruns everything computed from it.
    """
    h = hashlib.sha256()
    root = Path(path)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            p = Path(dirpath) / f
            try:
                s = p.stat()
            except FileNotFoundError:
                continue
            h.update(f"{p.relative_to(root)}\0{s.st_size}\0{s.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


# -- contents (numpy): ids, labels and classifiers across networks and splits ---------------
def _values(counts: dict) -> str:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{v} ({c}x)" for v, c in items[:8])
    return text + (f", ... ({len(items)} values in all)" if len(items) > 8 else "")


def duplicate_ids(ids, path) -> None:
    """Refuse ids that occur more than once, naming the first and its rows."""
    import numpy as np

    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if len(uniq) == len(ids):
        return
    dup = uniq[counts > 1]
    rows = np.flatnonzero(ids == dup[0])[:3]
    raise StoreError(f"store {path}: {len(dup)} id(s) occur more than once ({int(counts[counts > 1].sum())} rows), "
                     f"first {str(dup[0])!r} at rows {', '.join(map(str, rows))}; every id must name one image")


def missing_chunks(array, path) -> None:
    """Refuse an ``embeddings`` (or layer) array with chunks never written: Zarr would read their rows as its fill
    value."""
    total, stored = array.nchunks, array.nchunks_initialized
    if stored < total:
        name = (array.path or "embeddings").strip("/")
        raise StoreError(f"store {path}: {total - stored} of {total} chunks of {name!r} were never written, so "
                         f"Zarr would read their rows as the fill value ({array.fill_value}): was the store written to "
                         "the end? (Zarr also skips a chunk that is exactly the fill value throughout; "
                         "write_embeddings uses NaN as fill value, so every row it writes is stored.)")


def check_labels(labels, classes: int | None, path, offset: int = 0) -> None:
    """Labels are -1 (unknown) or, with a classifier of ``classes`` classes whose class 0 is label ``offset``,
    in [offset, offset + classes)."""
    import numpy as np

    lo = offset if classes is not None else 0
    hi = offset + classes if classes is not None else np.iinfo(np.int64).max
    bad = (labels < -1) | ((labels >= 0) & ((labels < lo) | (labels >= hi)))
    if bad.any():
        vals, counts = np.unique(labels[bad], return_counts=True)
        within = (f"the classifier's {classes} classes ({lo}..{hi - 1}" if classes is not None
                  else "(class indices")
        raise StoreError(f"store {path}: {int(bad.sum())} of {len(labels)} labels lie outside {within}; -1 = "
                         f"unknown): {_values(dict(zip(vals.tolist(), counts.tolist())))}")


def same_samples(ref: tuple, other: tuple, offset: int | None = None) -> None:
    """``ref`` and ``other`` = (network, path, ids, labels): the same samples, in the same order, same labels.

    The one check that stores agree (every job that reads several networks' stores runs it); ``offset``
    is the row of the first id when only a block of rows is compared (a shard of the pass)."""
    import numpy as np

    (rn, rp, rids, rlab), (n, p, ids, lab) = ref, other
    rows, offset = ("" if offset is None else f" of rows {offset}..{offset + len(ids) - 1}"), offset or 0
    if len(ids) != len(rids):
        raise StoreError(f"network {n!r}: store {p} has {len(ids)} samples, network {rn!r} has {len(rids)} ({rp})")
    diff = np.flatnonzero(ids != rids)
    if len(diff):
        i = diff[0]
        raise StoreError(f"network {n!r}: ids of {p} disagree with network {rn!r} at {len(diff)} position(s)"
                         f"{rows}; first "
                         f"at row {offset + i}: {str(ids[i])!r} vs {str(rids[i])!r} (every network's store of a split "
                         "holds the same images in the same order)")
    if lab is not None and rlab is not None:
        diff = np.flatnonzero(lab != rlab)
        if len(diff):
            i = diff[0]
            raise StoreError(f"network {n!r}: labels of {p} disagree with network {rn!r} at {len(diff)} "
                             f"position(s); first at row {offset + i} ({str(ids[i])!r}): {lab[i]} vs {rlab[i]} (the same images "
                             "carry the same labels in every network's store; -1 = unknown)")
