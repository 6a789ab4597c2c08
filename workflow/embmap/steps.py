"""One function per workflow rule, taking plain paths and config blocks.

The scripts in ``workflow/scripts`` only unpack the ``snakemake`` object and
call these, so every rule can also be run (and tested) without Snakemake.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("embmap")


@contextmanager
def logged(path: str | None):
    """Send this job's log records, warnings and any traceback to ``path`` (and stderr)."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield log
    except Exception:
        log.error("failed:\n%s", traceback.format_exc())
        raise
    finally:
        for h in handlers:
            root.removeHandler(h)
            h.close()


def set_threads(n: int) -> None:
    """Limit BLAS and TensorFlow to the job's ``threads``."""
    n = max(1, int(n))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        pass


def _tf_threads(n: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, n))
    except RuntimeError:  # already initialised in this process
        pass


# -- data ---------------------------------------------------------------------------
def prepare_split(dataset: dict, output: str) -> None:
    from . import datasets

    m = datasets.write_manifest(dataset, output, log=log.warning)
    log.info("manifest %s: %d images, splits %s", output, len(m), m["split"].value_counts().to_dict())


# -- networks -----------------------------------------------------------------------
TRAIN_THREADS = 1


def train_network(name: str, spec: dict, dataset: dict, manifest: str, output: str) -> None:
    """Train one demo network. TensorFlow runs on :data:`TRAIN_THREADS` threads whatever the job was given:
    its reductions change order with the thread count, so the weights (and every table after them) are
    bit-identical only if the count is fixed (``--cores 1`` and ``--cores 8`` give the same results)."""
    from . import datasets, networks

    _tf_threads(TRAIN_THREADS)
    ds = datasets.get(dataset)
    train = datasets.read_manifest(manifest, "train")
    if spec.get("part"):
        train = datasets.part_of(train, *spec["part"])
    images = ds.images(list(train["id"]))
    labels = train["label"].to_numpy()
    log.info("training %s (%s) on %d images", name, spec["architecture"], len(labels))
    summary = networks.train(spec, images, labels, ds.n_classes, output, log=log.info)
    log.info("exported %s: embedding dim %d, train accuracy %s", output, summary["embedding_dim"],
             summary["train_accuracy"])


def extract(experiment: str, name: str, spec: dict, dataset: dict, manifest: str, split: str, output: str,
            model_dir: str | None = None, store: dict | None = None, with_classifier: bool = True,
            normalise: bool = False, aligned: str | None = None, threads: int = 1,
            preprocessing: dict | None = None, lstsq_images: int | None = None) -> None:
    from . import datasets, networks

    _tf_threads(threads)
    store = store or {}
    rows = datasets.read_manifest(manifest, split)
    every = datasets.read_manifest(manifest, split, with_skipped=True)
    skipped = sorted(every["id"][every["skipped"] != ""]) if "skipped" in every.columns else []
    net = networks.open_network(name, spec, model_dir, preprocessing)
    if net.randomized:
        log.info("%s: re-initialised %d variables (%d parameters) with seed %d", name,
                 net.randomized["reinitialised"], net.randomized["parameters"], net.randomized["seed"])
    images, extra = datasets.get(dataset), {}
    if aligned:  # cached face crops instead of the raw images
        from .faces import AlignedImages

        images = AlignedImages(aligned)
        a = images.attrs
        extra["alignment"] = {k: a.get(k) for k in ("style", "size", "margin", "fallbacks", "n")} | {"store": aligned}
        log.info("reading %s crops from %s (%s fallbacks to a centre crop)", a.get("style"), aligned,
                 a.get("fallbacks"))
    networks.extract(
        net, images, rows["id"].to_numpy(), rows["label"].to_numpy(), output,
        chunk_rows=store.get("chunk_rows"), batch_size=int(store.get("batch_size", 256)),
        with_classifier=with_classifier, normalise=normalise, log=log.info, preprocessing=preprocessing,
        lstsq_images=lstsq_images,
        attrs={"experiment": experiment, "source": spec["source"], "dataset": dataset, "split": split,
               "seed": (spec.get("train") or {}).get("seed", spec.get("seed", dataset.get("seed"))), "spec": spec,
               "manifest": str(manifest), "skipped": skipped, **extra},
    )
    log.info("wrote %s (%d images)", output, len(rows))


# -- fitting ------------------------------------------------------------------------
def _open_shard(stores: dict[str, str], lay_args: dict, shard: int):
    """Open the fit stores and check, before any heavy work, that they hold the same samples.

    Counts come from metadata; ids are compared over this shard's row blocks
    only, so over all shards every id is read once, like every feature.
    """
    import numpy as np

    from . import ridge
    from . import stores as st

    opened = {}
    ref = None
    for name, path in stores.items():
        try:
            s = st.open_embeddings(path)
        except st.StoreError as e:
            raise st.StoreError(f"network {name!r}: {e}") from None
        if ref is None:
            ref = (name, s)
        elif s.n != ref[1].n:
            raise st.StoreError(f"network {name!r}: store {path} has {s.n} samples, network {ref[0]!r} has {ref[1].n}")
        opened[name] = s
    arrays = {k: s.embeddings for k, s in opened.items()}
    lay = ridge.pass_layout(arrays, **lay_args)
    ref_ids = {}
    for b in lay.blocks(shard):
        lo, hi = lay.span(b)
        for name, s in opened.items():
            ids = st.as_str(s.group["ids"][lo:hi])
            if name == ref[0]:
                ref_ids = ids
                continue
            diff = np.flatnonzero(ids != ref_ids)
            if len(diff):
                i = diff[0]
                raise st.StoreError(f"network {name!r}: ids of {s.path} disagree with network {ref[0]!r}; first at "
                                    f"row {lo + i}: {ids[i]!r} vs {ref_ids[i]!r}")
    return arrays, lay


def cross_products_shard(stores: dict[str, str], output: str, split: str, shard: int = 0, shards: int = 1,
                         folds: int = 1, precision: str = "float64", chunk_rows: int | None = None,
                         threads: int = 1) -> None:
    """One shard of the pass: centred cross products of all networks over this shard's row blocks."""
    from . import ridge

    set_threads(threads)
    lay_args = {"shards": shards, "folds": folds, "chunk_rows": chunk_rows or ridge.PASS_ROWS}
    arrays, lay = _open_shard(stores, lay_args, shard)
    mine = lay.blocks(shard)
    log.info("shard %d of %d over split %r: %d of %d blocks of %d rows, %d networks, %d features in all, folds %s, "
             "%s products", shard, shards, split, len(mine), lay.n_blocks, lay.rows, len(arrays),
             sum(a.shape[1] for a in arrays.values()), lay.folds_of_shard(shard) if folds > 1 else "-", precision)
    if not len(mine):
        log.warning("shard %d has no rows: more shards (%d) than row blocks (%d)", shard, shards, lay.n_blocks)
    bl = ridge.cross_products(arrays, shard, shards, folds, lay_args["chunk_rows"], precision, num_workers=threads)
    ridge.write_blocks(output, bl, full=False, split=split)
    log.info("wrote %s (%d samples)", output, bl.n)


def reduce_cross_products(partials: list[str], output: str, split: str, stores: dict[str, str]) -> None:
    """Pool the shard partials into ``fit/blocks.zarr`` (and its per-fold blocks)."""
    from . import ridge

    bl = ridge.reduce_partials(list(partials), output, split=split, stores=dict(stores))
    log.info("wrote %s: %d samples from %d shard(s), %d fold(s)", output, bl.n, len(partials), max(1, len(bl.folds)))


def fit_maps(blocks: str, source: str, targets: list[str], alpha, output: str, experiment: str,
             fit_split: str, threads: int = 1) -> None:
    """Ridge maps from ``source`` to every target from the block store; ``alpha`` a number or a list (CV)."""
    from . import ridge
    from . import stores as st

    set_threads(threads)
    bl = ridge.open_blocks(blocks)
    versions = st.versions()
    try:
        maps = ridge.fit_maps(bl, source, targets, alpha)
    except ridge.FitError as e:
        raise ridge.FitError(f"experiment {experiment!r}, source network {source!r}: {e}") from None
    Path(output).mkdir(parents=True, exist_ok=True)
    for target, m in maps.items():
        ridge.write_map(f"{output}/{target}.zarr", m, experiment=experiment, fit_split=fit_split, blocks=blocks,
                        versions=versions)
        curve = ""
        if "cv_score" in m.attrs:
            curve = ", CV " + " ".join(f"{a:g}:{s if s is None else round(s, 5)}"
                                       for a, s in zip(m.attrs["alphas"], m.attrs["cv_score"]))
        log.info("%s -> %s: alpha %g, fit R2 %.4f%s", source, target, m.attrs["alpha"], m.attrs["fit_r2"], curve)


# -- evaluation ---------------------------------------------------------------------
def evaluate_closed_set(stores: dict[str, str], maps: str, table: str, matrix: str, chunk_rows: int = 4096,
                        threads: int = 1) -> None:
    from . import closed_set, ridge
    from . import stores as st

    set_threads(threads)
    opened = st.open_aligned(stores, need_classifier=True)
    names = list(opened)
    fitted = {(a, b): ridge.read_map(f"{maps}/{a}/{b}.zarr") for a in names for b in names if a != b}
    t = closed_set.evaluate(opened, fitted, chunk_rows=chunk_rows)
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.6g")
    closed_set.matrix(t, names).to_csv(matrix, float_format="%.6g")
    log.info("wrote %s and %s", table, matrix)


def network_table(stores: dict[str, str], labels: dict, output: str, chunk_rows: int = 4096) -> None:
    from . import network_table as nt
    from . import stores as st

    opened = st.open_aligned(stores)
    t = nt.describe(opened, labels, chunk_rows=chunk_rows)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(output, index=False, float_format="%.6g")
    log.info("wrote %s:\n%s", output, t[["network", "feature_dim", "parameters", "input_size", "top1"]].to_string())


def plot_closed_set(matrix: str, outputs: list[str], labels: dict, controls: list[str], title: str,
                    xlabel: str = "target network (classifier)") -> None:
    import pandas as pd

    from . import plots

    m = pd.read_csv(matrix, index_col=0)
    plots.heatmap(m, labels, controls, title, outputs, xlabel=xlabel)


# -- open set -----------------------------------------------------------------------
def write_pairs(dataset: dict, output: str) -> None:
    from . import datasets

    datasets.get(dataset).write_pairs(output)
    log.info("wrote %s", output)


def _pairs_features(stores: dict[str, str]):
    """Whole stores of split ``pairs`` in memory (float64), their ids and attributes."""
    import numpy as np

    from . import stores as st

    opened = st.open_aligned(stores)
    first = next(iter(opened.values()))
    feats = {k: np.asarray(s.embeddings[:], dtype=np.float64) for k, s in opened.items()}
    return feats, first.ids, {k: s.attrs for k, s in opened.items()}


def evaluate_open_set(stores: dict[str, str], pairs: str, table: str, folds: str, matrix: str, meta: str,
                      alpha: float = 1.0, precision: str = "float64", threads: int = 1) -> None:
    import json

    from . import open_set

    set_threads(threads)
    p = open_set.read_pairs(pairs)
    feats, ids, attrs = _pairs_features(stores)
    log.info("%d pairs in %d folds over %d images, %d networks", len(p), p.n_folds, len(ids), len(feats))
    t, f = open_set.verification(feats, ids, p, alpha=float(alpha), precision=precision)
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.6g")
    f.to_csv(folds, index=False, float_format="%.8g")
    open_set.matrix(t, list(feats)).to_csv(matrix, float_format="%.6g")
    info = {"pairs": pairs, "folds": p.n_folds, "pairs_per_fold": p.per_fold, "n_pairs": len(p),
            "n_images": len(ids), "alpha": float(alpha), "precision": precision,
            "networks": {k: {"store": stores[k], "dim": int(feats[k].shape[1]),
                             "l2_normalised": a.get("l2_normalised"), "alignment": a.get("alignment")}
                         for k, a in attrs.items()}}
    Path(meta).write_text(json.dumps(info, indent=1, default=str))
    for r in t.itertuples():
        log.info("%s -> %s %s: %.4f +- %.4f", r.source, r.target, r.method, r.accuracy_mean, r.accuracy_std)


def evaluate_identification(stores: dict[str, str], table: str, matrix: str, folds: int = 5, seed: int = 0,
                            alpha: float = 1.0, precision: str = "float64", threads: int = 1) -> None:
    from . import open_set

    set_threads(threads)
    feats, ids, _ = _pairs_features(stores)
    t = open_set.identification(feats, ids, n_folds=int(folds), seed=int(seed), alpha=float(alpha),
                                precision=precision)
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.6g")
    open_set.matrix(t, list(feats), value="rank1").to_csv(matrix, float_format="%.6g")
    log.info("wrote %s: %d probes, gallery of %.0f identities per fold", table, t.n_probes.iloc[0],
             t.gallery_size.iloc[0])


def plot_open_set(matrix: str, outputs: list[str], labels: dict, controls: list[str], title: str) -> None:
    plot_closed_set(matrix, outputs, labels, controls, title, xlabel="target network (features)")


def detect_faces(dataset: dict, manifest: str, output: str, split: str = "pairs", threads: int = 1) -> None:
    """MTCNN over every image of ``split``: the largest face's box and landmarks, one CSV row per image."""
    import pandas as pd

    from . import datasets, faces

    _tf_threads(threads)
    ds = datasets.get(dataset)
    ids = datasets.read_manifest(manifest, split)["id"].tolist()
    from mtcnn import MTCNN

    detector = MTCNN()
    rows = []
    for i, id_ in enumerate(ids):
        img = ds.image(id_)
        rows.append(faces.detection_row(id_, img.shape, faces.detect([img], detector)[0]))
        if (i + 1) % 500 == 0:
            log.info("%d of %d images", i + 1, len(ids))
    t = pd.DataFrame(rows, columns=faces.DETECTION_COLUMNS)
    tmp = f"{output}.partial"
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(tmp, index=False, float_format="%.3f")
    os.replace(tmp, output)
    log.info("faces found in %d of %d images; the others fall back to a centre crop", t.detected.sum(), len(t))


def align_faces(dataset: dict, detections: str, key: str, output: str) -> None:
    import pandas as pd

    from . import datasets, faces

    spec = faces.parse_align_key(key)
    t = pd.read_csv(detections, dtype={"id": str})
    n = faces.write_crops(datasets.get(dataset), t, spec, output, attrs={"detections": detections})
    log.info("wrote %s: %d crops, %d centre-crop fallbacks", output, len(t), n)
