"""Steps of ``workflow/rules/networks.smk``: training the demo networks, extraction, and the check of every store."""

from __future__ import annotations

import os
from pathlib import Path

from . import TRAIN_THREADS, log, step, tf_threads


def _train_network_job(plan, wc) -> dict:
    """``networks.KEY.train`` and the dataset block."""
    return {"train": plan.network(wc.exp, wc.network).spec["train"], "dataset": plan.experiments[wc.exp].dataset}


@step(job=_train_network_job)
def train_network(network: str, train: dict, dataset: dict, manifest: str, model: str) -> None:
    """Train one demo network. TensorFlow runs on :data:`TRAIN_THREADS` threads whatever the job was given:
    its reductions change order with the thread count, so the weights (and every table after them) are
    bit-identical only if the count is fixed (``--cores 1`` and ``--cores 8`` give the same results)."""
    from .. import data
    from ..data.manifest import part_of, read_manifest
    from ..models import demo

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


def _extract_inputs(plan, wc) -> dict:
    net = plan.network(wc.exp, wc.network)
    out = {"manifest": plan.manifest(wc.exp)}
    if net.trained_here:
        out["model"] = plan.model_dir(wc.exp, wc.network)
    if plan.aligned(wc.exp, wc.network):
        out["aligned"] = plan.aligned(wc.exp, wc.network)
    return out


def _extract_job(plan, wc) -> dict:
    """The network's block, the dataset block, ``store.chunk_rows`` and ``store.batch_size``, what the task asks
    of embeddings, and the network's resolved preprocessing."""
    exp = plan.experiments[wc.exp]
    return {"experiment": wc.exp, "spec": plan.network(wc.exp, wc.network).spec, "dataset": exp.dataset,
            "chunk_rows": exp.store["chunk_rows"], "batch_size": exp.store["batch_size"],
            "kernel_threads": exp.store["kernel_threads"],
            "with_classifier": exp.task_def.classifier, "normalise": exp.task_def.normalise,
            "preprocessing": plan.preprocessing(wc.exp, wc.network)}


@step(inputs=_extract_inputs, job=_extract_job)
def extract(experiment: str, network: str, split: str, spec: dict, dataset: dict, manifest: str, store: str,
            chunk_rows: int | None, batch_size: int, with_classifier: bool, normalise: bool, preprocessing: dict,
            model: str | None = None, aligned: str | None = None, threads: int = 1,
            lstsq_images: int | None = None, kernel_threads: int = 1) -> None:
    """``network``'s embeddings of the images of ``split`` (or of their face crops) into ``store``."""
    from .. import data, models
    from ..data.manifest import read_manifest, skipped_ids
    from ..extract import extract as run_extraction

    import tensorflow as tf

    # every kernel on a fixed count of threads (store.kernel_threads) and the job's other cores running batches side
    # by side: the same embeddings whatever `threads` (see tf_threads)
    batches = max(1, int(threads) // max(1, int(kernel_threads)))
    kernel_threads = tf_threads(kernel_threads, concurrent=max(2, batches))  # ops at once: no effect on values
    # a GPU runs one batch after another anyway: batches side by side would only hold their activations at once
    workers = 1 if tf.config.list_physical_devices("GPU") else batches
    rows = read_manifest(manifest, split)
    net = models.open_model(network, spec, preprocessing, model_dir=model)
    if net.randomized:
        log.info("%s: re-initialised %d variables (%d parameters) with seed %d, kernels %s", network,
                 net.randomized["reinitialised"], net.randomized["parameters"], net.randomized["seed"],
                 net.randomized["kernels"])
    images, extra = data.get(dataset), {}
    if aligned:  # cached face crops instead of the raw images
        from ..data.faces import AlignedImages

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


def _check_stores_inputs(plan, wc) -> dict:
    return {"network_stores": [p for s in plan.experiments[wc.exp].splits for p in plan.stores(wc.exp, s).values()]}


def _check_stores_job(plan, wc) -> dict:
    """The stores of every split, and a fingerprint of each bring-your-own store's files.

    Snakemake reruns a job whose params changed: a store edited in place
    (which leaves its folder's modification time alone) changes its
    fingerprint, so the check and everything after it run again.
    """
    from .. import contract

    exp = plan.experiments[wc.exp]
    stores = {s: plan.stores(wc.exp, s) for s in exp.splits}
    own = {k for k, n in exp.networks.items() if not n.extracted_here}
    return {"stores": stores, "task": exp.task,
            "fit_split": exp.fit_split if exp.task_def.fit_pass else None,
            "eval_split": exp.eval_split if exp.task_def.fit_pass else None, "layers": exp.layerwise,
            "fingerprints": {f"{k}/{s}": contract.fingerprint(stores[s][k]) for s in stores for k in sorted(own)}}


@step(inputs=_check_stores_inputs, job=_check_stores_job)
def check_stores(stores: dict, task: str, fit_split: str | None, eval_split: str | None, checked: str,
                 fingerprints: dict | None = None, layers: bool = False) -> None:
    """Hold an experiment's stores to each other before anything reads them (:func:`embmap.stores.check_experiment`).

    Ids unique and equal across networks, labels equal across networks and
    within every classifier's classes, the fit and evaluation splits
    disjoint; with ``layers`` the same layers in every store of a network, and the pass's cost over every
    (network, layer) stated (a warning when large); ``checked`` records what was checked.
    """
    import json

    from ..stores import check_experiment

    summary = check_experiment(stores, task, fit_split, eval_split, log=log.info, layers=layers, warn=log.warning)
    summary["fingerprints"] = fingerprints or {}
    Path(checked).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{checked}.partial"
    Path(tmp).write_text(json.dumps(summary, indent=1))
    os.replace(tmp, checked)
    log.info("stores agree: %s", ", ".join(f"{s} ({len(v)} networks)" for s, v in summary["splits"].items()))


__all__ = ['check_stores', 'extract', 'train_network']
