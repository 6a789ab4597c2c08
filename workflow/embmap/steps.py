"""One function per workflow rule, taking plain paths and values.

Every rule runs ``workflow/scripts/step.py``, which calls :func:`run`: it
finds the rule's step in :data:`STEPS` and calls it with the arguments its
signature names, looked up in this order: the rule's ``params.job`` (from
:meth:`embmap.plan.Plan.job`), its named outputs, its named inputs, its
wildcards, and ``threads``. So every step can also be run (and tested)
without Snakemake, with the same arguments.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("embmap")
STEPS: dict = {}
TRAIN_THREADS = 1  # see train_network


def step(*rules):
    """Register a function as the step of ``rules`` (default: the rule of its own name)."""

    def register(fn):
        for rule in rules or (fn.__name__,):
            STEPS[rule] = fn
        return fn

    return register


FILE_OUTPUTS = (".csv", ".json", ".txt", ".png", ".svg")  # written whole by a step; stores are atomic themselves


def run(smk) -> None:
    """Run the step of Snakemake job ``smk`` (the ``snakemake`` object of a script) with its log.

    Output files (tables, figures, metadata) are written under temporary
    names beside their paths and renamed into place only when the step has
    succeeded, so a job killed mid-write never leaves a truncated file that
    looks finished (to a later run from another working directory, which
    cannot see Snakemake's incomplete markers of this one).
    """
    fn = STEPS[smk.rule]
    outputs = dict(smk.output.items())
    staged = {name: _staging(path) for name, path in outputs.items()
              if isinstance(path, str) and path.endswith(FILE_OUTPUTS)}
    pools = [dict(smk.params.items()).get("job", {}), {**outputs, **staged}, dict(smk.input.items()),
             dict(smk.wildcards.items()), {"threads": smk.threads}]
    kwargs = {}
    for name, p in inspect.signature(fn).parameters.items():
        for pool in pools:
            if name in pool:
                kwargs[name] = pool[name]
                break
        else:
            if p.default is inspect.Parameter.empty:
                raise TypeError(f"rule {smk.rule}: its step {fn.__name__} needs {name!r}, which the rule does not give")
    # embmap never uses tf.keras (TF Hub models load through tf_keras, Keras Applications through
    # keras): asked for the legacy one, TensorFlow's import skips loading Keras 3 and scikit-learn
    # with it, 3 of the 9 s every TensorFlow job of the demo spent importing it (benchmarks/demo.py)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    with logged(smk.log[0] if smk.log else None):
        set_threads(smk.threads)
        try:
            fn(**kwargs)
        except BaseException:
            for tmp in staged.values():
                Path(tmp).unlink(missing_ok=True)
            raise
        for name, tmp in staged.items():
            if Path(tmp).exists():
                os.replace(tmp, outputs[name])


def _staging(path: str) -> str:
    """Where output file ``path`` is written until its step succeeds: ``.NAME.partial.EXT`` beside it."""
    p = Path(path)
    return str(p.with_name(f".{p.stem}.partial{p.suffix}"))


def explained(e: BaseException) -> bool:
    """An error of embmap's own (StoreError, ConfigError, DatasetError, ...): its message names the file, key or
    network at fault and says what to do; any other exception is a bug and keeps its traceback."""
    return isinstance(e, ValueError) and type(e).__module__.split(".")[0] == "embmap"


@contextmanager
def logged(path: str | None):
    """Send this job's log records, warnings and any traceback to ``path`` (and stderr).

    An error of embmap's own (:func:`explained`) is logged as its one-line
    message and the job exits with status 1.
    """
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
    except Exception as e:
        if explained(e):  # bad input, said in one line naming what is wrong: a traceback would bury it
            log.error("%s", e)
            raise SystemExit(1) from None
        log.error("failed:\n%s", traceback.format_exc())
        raise
    finally:
        for h in handlers:
            root.removeHandler(h)
            h.close()


def set_threads(n: int) -> None:
    """Limit BLAS to the job's ``threads``."""
    n = max(1, int(n))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        pass


def tf_threads(n: int, concurrent: int | None = None) -> int:
    """Run each of TensorFlow's CPU kernels on ``n`` threads and up to ``concurrent`` (default ``min(2, n)``) ops
    at once; returns the kernels' thread count in effect.

    Its CPU kernels split sums by their thread count, so results are
    bit-identical for the same ``n`` and differ by float32 rounding between
    counts. Extraction therefore runs every kernel on one thread and
    ``concurrent`` batches at once (:func:`embmap.extract.extract`'s
    ``workers``): its stores do not depend on the job's cores. Stores record
    ``n`` (attribute ``tf_threads``).
    """
    import tensorflow as tf

    n = max(1, int(n))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, int(concurrent or min(2, n))))
    except RuntimeError:  # already initialised in this process
        pass
    return tf.config.threading.get_intra_op_parallelism_threads() or n


# -- data ---------------------------------------------------------------------------
@step()
def prepare_split(dataset: dict, manifest: str, pairs: str | None = None) -> None:
    """The manifest of the experiment's images (``pairs``: the written pairs file it lists, if any)."""
    from .data.manifest import write_manifest

    m = write_manifest(dataset, manifest, log=log.warning)
    log.info("manifest %s: %d images, splits %s", manifest, len(m), m["split"].value_counts().to_dict())


@step()
def write_pairs(dataset: dict, pairs: str) -> None:
    from . import data

    data.get(dataset).write_pairs(pairs)
    log.info("wrote %s", pairs)


@step()
def detect_faces(dataset: dict, manifest: str, faces: str, threads: int = 1) -> None:
    """MTCNN over every image of the pairs split: one face's box and landmarks (facenet's choice), one row each."""
    import pandas as pd

    from . import data
    from .data import faces as fc
    from .data.manifest import read_manifest
    from .plan import PAIRS_SPLIT

    tf_threads(threads)
    ds = data.get(dataset)
    ids = read_manifest(manifest, PAIRS_SPLIT)["id"].tolist()
    from mtcnn import MTCNN

    detector = MTCNN()
    rows = []
    for i, id_ in enumerate(ids):
        img = ds.image(id_)
        rows.append(fc.detection_row(id_, img.shape, fc.detect([img], detector)[0]))
        if (i + 1) % 500 == 0:
            log.info("%d of %d images", i + 1, len(ids))
    t = pd.DataFrame(rows, columns=fc.DETECTION_COLUMNS)
    tmp = f"{faces}.partial"
    Path(faces).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(tmp, index=False, float_format="%.3f")
    os.replace(tmp, faces)
    log.info("faces found in %d of %d images; the others fall back to a centre crop", t.detected.sum(), len(t))


@step()
def align_faces(dataset: dict, faces: str, align: str, aligned: str) -> None:
    import pandas as pd

    from . import data
    from .data import faces as fc

    spec = fc.parse_align_key(align)
    t = pd.read_csv(faces, dtype={"id": str})
    n = fc.write_crops(data.get(dataset), t, spec, aligned, attrs={"detections": faces})
    log.info("wrote %s: %d crops, %d centre-crop fallbacks", aligned, len(t), n)


# -- networks -----------------------------------------------------------------------
@step()
def train_network(network: str, train: dict, dataset: dict, manifest: str, model: str) -> None:
    """Train one demo network. TensorFlow runs on :data:`TRAIN_THREADS` threads whatever the job was given:
    its reductions change order with the thread count, so the weights (and every table after them) are
    bit-identical only if the count is fixed (``--cores 1`` and ``--cores 8`` give the same results)."""
    from . import data
    from .data.manifest import part_of, read_manifest
    from .models import demo

    tf_threads(TRAIN_THREADS)
    ds = data.get(dataset)
    rows = read_manifest(manifest, "train")
    if train["part"]:
        rows = part_of(rows, *train["part"])
    images = ds.images(list(rows["id"]))
    labels = rows["label"].to_numpy()
    log.info("training %s (%s) on %d images", network, train["architecture"], len(labels))
    summary = demo.train(train["architecture"], train["width"], train["epochs"], train["seed"], train["batch_size"],
                         train["learning_rate"], images, labels, ds.n_classes, model, log=log.info)
    log.info("exported %s: embedding dim %d, train accuracy %s", model, summary["embedding_dim"],
             summary["train_accuracy"])


@step()
def extract(experiment: str, network: str, split: str, spec: dict, dataset: dict, manifest: str, store: str,
            chunk_rows: int | None, batch_size: int, with_classifier: bool, normalise: bool, preprocessing: dict,
            model: str | None = None, aligned: str | None = None, threads: int = 1,
            lstsq_images: int | None = None) -> None:
    """``network``'s embeddings of the images of ``split`` (or of their face crops) into ``store``."""
    from . import data, models
    from .data.manifest import read_manifest, skipped_ids
    from .extract import extract as run_extraction

    import tensorflow as tf

    kernel_threads = tf_threads(1, concurrent=threads)  # see tf_threads: the same embeddings whatever `threads`
    # a GPU runs one batch after another anyway: batches side by side would only hold their activations at once
    workers = 1 if tf.config.list_physical_devices("GPU") else threads
    rows = read_manifest(manifest, split)
    net = models.open_model(network, spec, preprocessing, model_dir=model)
    if net.randomized:
        log.info("%s: re-initialised %d variables (%d parameters) with seed %d, kernels %s", network,
                 net.randomized["reinitialised"], net.randomized["parameters"], net.randomized["seed"],
                 net.randomized["kernels"])
    images, extra = data.get(dataset), {}
    if aligned:  # cached face crops instead of the raw images
        from .data.faces import AlignedImages

        images = AlignedImages(aligned)
        a = images.attrs
        extra["alignment"] = {k: a.get(k) for k in ("style", "size", "margin", "fallbacks", "n")} | {"store": aligned}
        log.info("reading %s crops from %s (%s fallbacks to a centre crop)", a.get("style"), aligned,
                 a.get("fallbacks"))
    seed = spec["train"]["seed"] if "train" in spec else spec.get("seed", dataset.get("seed"))
    run_extraction(
        net, images, rows["id"].to_numpy(), rows["label"].to_numpy(), store, chunk_rows=chunk_rows,
        batch_size=batch_size, with_classifier=with_classifier, normalise=normalise, log=log.info,
        preprocessing=preprocessing, lstsq_images=lstsq_images, flip=bool(spec.get("flip", False)), workers=workers,
        attrs={"experiment": experiment, "source": spec["source"], "source_kind": spec["source"], "dataset": dataset,
               "split": split, "seed": seed, "spec": spec, "manifest": str(manifest),
               "skipped": skipped_ids(manifest, split), "tf_threads": kernel_threads, **extra},
    )
    log.info("wrote %s (%d images)", store, len(rows))


@step()
def check_stores(stores: dict, task: str, fit_split: str | None, eval_split: str | None, checked: str,
                 fingerprints: dict | None = None) -> None:
    """Hold an experiment's stores to each other before anything reads them (:func:`embmap.stores.check_experiment`).

    Ids unique and equal across networks, labels equal across networks and
    within every classifier's classes, the fit and evaluation splits
    disjoint; ``checked`` records what was checked.
    """
    import json

    from .stores import check_experiment

    summary = check_experiment(stores, task, fit_split, eval_split, log=log.info)
    summary["fingerprints"] = fingerprints or {}
    Path(checked).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{checked}.partial"
    Path(tmp).write_text(json.dumps(summary, indent=1))
    os.replace(tmp, checked)
    log.info("stores agree: %s", ", ".join(f"{s} ({len(v)} networks)" for s, v in summary["splits"].items()))


# -- fitting ------------------------------------------------------------------------
def _open_shard(stores: dict[str, str], shards: int, folds: int, shard: int):
    """Open the fit stores and check, before any heavy work, that they hold the same samples.

    Counts come from metadata; ids are compared over this shard's row blocks
    only, so over all shards every id is read once, like every feature.
    """
    from . import contract
    from . import stores as st
    from .fit import gram

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
    lay = gram.pass_layout(arrays, shards, folds)
    for b in lay.blocks(shard):
        lo, hi = lay.span(b)
        first = None
        for name, s in opened.items():
            here = (name, s.path, st.as_str(s.group["ids"][lo:hi]), None)
            if first is None:
                first = here
            else:
                contract.same_samples(first, here, offset=lo)
    return arrays, lay


@step()
def cross_products_shard(stores: dict[str, str], split: str, shards: int, folds: int, precision: str, shard,
                         partial: str, threads: int = 1, sample_sizes: list | None = None) -> None:
    """One shard of the pass: centred cross products of all networks over this shard's row blocks.

    The blocks of each sample-size prefix are written as soon as the pass is
    past it, so they never add to the shard's memory more than one at a time.
    """
    from . import stores as st
    from .evaluate.sample_efficiency import check_sizes
    from .fit import gram

    shard = int(shard)
    arrays, lay = _open_shard(stores, shards, folds, shard)
    check_sizes(sample_sizes or [], lay.n, f"mapping.sample_sizes (fit split {split!r})")  # before the pass
    sizes = [int(m) for m in sample_sizes or [] if m != "all"]
    mine = lay.blocks(shard)
    log.info("shard %d of %d over split %r: %d of %d blocks of %d rows, %d networks, %d features in all, folds %s, "
             "%s products", shard, shards, split, len(mine), lay.n_blocks, lay.block_rows, len(arrays),
             sum(a.shape[1] for a in arrays.values()), lay.folds_of_shard(shard) if folds > 1 else "-", precision)
    if not len(mine):
        log.warning("shard %d has no rows: more shards (%d) than row blocks (%d)", shard, shards, lay.n_blocks)
    with st.atomic_group(partial) as g:
        bl = gram.cross_products(arrays, shard, shards, folds, precision=precision, num_workers=threads,
                                 sample_sizes=sizes, on_subset=lambda m, b: st.write_subset(g, m, b))
        st.write_blocks_to(g, bl, full=False, split=split)
    log.info("wrote %s (%d samples)", partial, bl.n)


@step()
def cross_products(partials: list, blocks: str, split: str, stores: dict[str, str]) -> None:
    """Pool the shard partials into ``fit/blocks.zarr`` (and its per-fold blocks)."""
    from . import stores as st
    from .fit import gram

    paths = list(partials)
    merged = gram.reduce([st.open_blocks(p) for p in paths], paths)
    st.write_blocks(blocks, merged, split=split, stores=dict(stores))
    log.info("wrote %s: %d samples from %d shard(s), %d fold(s)", blocks, merged.n, len(paths),
             max(1, len(merged.folds)))


def _write_maps(fitted, method: str, path, experiment: str, fit_split: str, blocks: str) -> None:
    """Write the maps of the iterator ``fitted`` (((source, target), LinearMap) of ``method``, one at a time) to
    ``path(source, target)``, logging each with its fit R2, the method's own figures and its warnings."""
    from . import stores as st
    from .fit import FitError
    from .fit import methods as mt

    m_ = mt.get(method)
    versions = st.versions()
    while True:
        try:
            (source, target), m = next(fitted)
        except StopIteration:
            break
        except FitError as e:
            raise FitError(f"experiment {experiment!r}, method {method}: {e}") from None
        out = Path(path(source, target))
        out.parent.mkdir(parents=True, exist_ok=True)
        st.write_map(str(out), m, experiment=experiment, fit_split=fit_split, blocks=blocks, versions=versions)
        warning = m_.warning(m) if m_.warning else None
        if warning:
            log.warning("%s -> %s: %s", source, target, warning)
        extra = f", {m_.describe(m)}" if m_.describe else ""
        log.info("%s -> %s (%s): fit R2 %.4f%s", source, target, method, m.attrs["fit_r2"], extra)


@step()
def fit_maps(blocks: str, method: str, source: str, targets: list[str], mapping: dict, maps: str, experiment: str,
             fit_split: str) -> None:
    """Maps of a method fitted per source network (ridge: ``alpha`` a number or a list, CV) from ``source`` to
    every target, from the block store, into ``maps/METHOD/SOURCE/TARGET.zarr``."""
    from . import stores as st
    from .fit import FitError
    from .fit import methods as mt

    bl = st.open_blocks(blocks)
    try:
        fitted = mt.get(method).from_blocks(bl, source, list(targets), mapping)
    except FitError as e:
        raise FitError(f"experiment {experiment!r}, method {method}, source network {source!r}: {e}") from None
    _write_maps(iter(((source, b), m) for b, m in fitted.items()), method, lambda a, b: f"{maps}/{b}.zarr",
                experiment, fit_split, blocks)


@step()
def fit_method_maps(blocks: str, method: str, networks: list[str], mapping: dict, maps: str, experiment: str,
                    fit_split: str) -> None:
    """Maps of a method fitted for all ordered pairs in one job (lstsq, procrustes: work shared between A -> B and
    B -> A), from the block store, into ``maps/METHOD/SOURCE/TARGET.zarr``."""
    from . import stores as st
    from .fit import methods as mt

    bl = st.open_blocks(blocks)
    fitted = mt.get(method).fit_pairs(bl, list(networks), mapping)  # one map at a time
    _write_maps(fitted, method, lambda a, b: f"{maps}/{a}/{b}.zarr", experiment, fit_split, blocks)


# -- evaluation ---------------------------------------------------------------------
def _read_maps(paths: dict) -> dict:
    """{(source, target): map} of the map stores ``paths[source][target]`` (one method's)."""
    from . import stores as st

    return {(a, b): st.read_map(p) for a, row in paths.items() for b, p in row.items()}


@step()
def evaluate_closed_set(stores: dict[str, str], maps: dict, table: str, matrix: str) -> None:
    """Table 2: every target classifier on every source's mapped features (``maps[method][a][b]``: the map store
    a -> b of each method)."""
    from . import stores as st
    from .evaluate import closed_set, common

    opened = st.open_matched(stores, need_classifier=True)
    names = list(opened)
    t = closed_set.evaluate(opened, {m: _read_maps(paths) for m, paths in maps.items()})
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.6g")
    common.matrix(t, names, "accuracy").to_csv(matrix, float_format="%.6g")
    log.info("wrote %s and %s", table, matrix)


@step()
def network_table(stores: dict[str, str], labels: dict, table: str) -> None:
    """Table 1: each network's provenance, feature dimension, parameters and native top-1."""
    from . import stores as st
    from .evaluate import network_table as nt

    opened = st.open_matched(stores)
    t = nt.describe(opened, labels)
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.6g")
    log.info("wrote %s:\n%s", table, t[["network", "feature_dim", "parameters", "input_size", "top1"]].to_string())


def _pairs_features(stores: dict[str, str]):
    """Whole stores of split ``pairs`` in memory (as stored, float32: rows become float64 where used), their ids
    and attributes."""
    import numpy as np

    from . import stores as st

    opened = st.open_matched(stores)
    first = next(iter(opened.values()))
    feats = {k: np.asarray(s.embeddings[:]) for k, s in opened.items()}
    return feats, first.ids, {k: s.attrs for k, s in opened.items()}


@step()
def similarity(blocks: str, indices: list[str], options: dict, ridge_maps: dict, stores: dict | None,
               table: str) -> None:
    """Similarity indices of every pair of networks from the block store (indices that need them: the ridge
    maps' fit R2, or ``similarity.max_samples`` evenly spaced rows of the fit split's ``stores``)."""
    from . import stores as st
    from .evaluate import similarity as sim

    bl = st.open_blocks(blocks)
    r2 = {(a, b): float(st.open_group(p, "map store").attrs["fit_r2"])
          for a, row in ridge_maps.items() for b, p in row.items()}
    samples = None
    if stores:
        opened = st.open_matched(stores)
        rows = sim.sample_rows(len(next(iter(opened.values())).ids), options["max_samples"])
        samples = {k: st.read_rows(s, rows) for k, s in opened.items()}
        log.info("indices comparing samples read %d of the fit split's images", len(rows))
    t = sim.similarity(bl, indices, options, fit_r2=r2, samples=samples)
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.8g")
    log.info("wrote %s: %d rows, indices %s over %d fit samples", table, len(t), ", ".join(indices), bl.n)


@step()
def sample_efficiency(blocks: str, stores: dict[str, str], sizes: list[int], whole: bool, mapping: dict,
                      maps: dict, table: str) -> None:
    """Maps fitted on nested prefixes of the fit split, measured on the evaluation split like the full maps."""
    from . import stores as st
    from .evaluate import sample_efficiency as se
    from .fit import FitError

    bl = st.open_blocks(blocks)
    se.check_sizes(sizes, bl.n)
    subsets = se.prefix_blocks(bl, sizes)
    full = {m: _read_maps(paths) for m, paths in maps.items()}
    opened = st.open_matched(stores, need_classifier=True)
    try:
        t = se.sample_efficiency(opened, full, subsets, bl.n if whole else None, mapping, log=log.info)
    except FitError as e:
        raise FitError(f"mapping.sample_sizes: {e}") from None
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.6g")
    log.info("wrote %s: %d rows, sizes %s", table, len(t), sizes + (["all"] if whole else []))


@step()
def evaluate_open_set(stores: dict[str, str], pairs: str, table: str, folds_table: str, matrix: str, meta: str,
                      mapping: dict, threads: int = 1) -> None:
    """Table 6: 10-fold verification through per-fold maps, with its per-fold table and metadata."""
    import json

    from .data.pairs import read_pairs
    from .evaluate import common, verification
    from .fit.methods.ridge import alphas_of

    p = read_pairs(pairs)
    feats, ids, attrs = _pairs_features(stores)
    log.info("%d pairs in %d folds over %d images, %d networks", len(p), p.n_folds, len(ids), len(feats))
    t, f = verification.verification(feats, ids, p, mapping, threads=threads)
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.6g")
    f.to_csv(folds_table, index=False, float_format="%.8g")
    common.matrix(t, list(feats), "accuracy_mean").to_csv(matrix, float_format="%.6g")
    alphas = alphas_of(mapping["alpha"])
    info = {"pairs": pairs, "folds": p.n_folds, "pairs_per_fold": p.per_fold, "n_pairs": len(p),
            "n_images": len(ids), "alpha": alphas if isinstance(mapping["alpha"], list) else alphas[0],
            "alpha_selection": "inner cross-validation over the other folds" if len(alphas) > 1 else "fixed",
            "precision": mapping["precision"], "methods": list(mapping["methods"]), "scale": mapping["scale"],
            "networks": {k: {"store": stores[k], "dim": int(feats[k].shape[1]),
                             "l2_normalised": a.get("l2_normalised"), "flip": bool(a.get("flip", False)),
                             "alignment": a.get("alignment")}
                         for k, a in attrs.items()}}
    Path(meta).write_text(json.dumps(info, indent=1, default=str))
    for r in t.itertuples():
        log.info("%s -> %s %s: %.4f +- %.4f", r.source, r.target, r.method, r.accuracy_mean, r.accuracy_std)


@step()
def evaluate_identification(stores: dict[str, str], table: str, matrix: str, n_folds: int, seed: int,
                            mapping: dict, threads: int = 1) -> None:
    """Rank-1 and rank-5 identification of each network's probes in every network's gallery."""
    from .evaluate import common, identification

    feats, ids, _ = _pairs_features(stores)
    t = identification.identification(feats, ids, n_folds=int(n_folds), seed=int(seed), mapping=mapping,
                                      log=log.info, threads=threads)
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.6g")
    common.matrix(t, list(feats), "rank1").to_csv(matrix, float_format="%.6g")
    log.info("wrote %s: %d probes, gallery of %.0f identities per fold", table, t.n_probes.iloc[0],
             t.gallery_size.iloc[0])


# -- report -------------------------------------------------------------------------
@step()
def plot_similarity(table: str, png: str, svg: str, labels: dict, controls: list[str], title: str) -> None:
    """One heatmap panel per similarity index."""
    import pandas as pd

    from .evaluate import plots

    t = pd.read_csv(table)
    plots.similarity_heatmap(t, list(labels), labels, controls, title, [png, svg])


@step()
def plot_sample_efficiency(table: str, target: str, png: str, svg: str, labels: dict, controls: list[str],
                           title: str) -> None:
    """Accuracy of maps into ``target`` against the number of fit samples, one line per source and method."""
    import pandas as pd

    from .evaluate import plots

    plots.sample_efficiency(pd.read_csv(table), target, labels, controls, title, [png, svg])


@step("plot_closed_set", "plot_open_set", "plot_identification")
def plot_heatmap(matrix: str, png: str, svg: str, labels: dict, controls: list[str], title: str,
                 xlabel: str) -> None:
    """A Table 2 / Table 6 style heatmap of a matrix table, as PNG and SVG."""
    import pandas as pd

    from .evaluate import plots

    m = pd.read_csv(matrix, index_col=0)
    plots.heatmap(m, labels, controls, title, [png, svg], xlabel=xlabel)
