"""Bad bring-your-own stores through snakemake: refused before any job or by check_stores, before the pass."""

import shutil

import numpy as np
import pytest
import zarr

from helpers import byo_config, raw_store, snakemake, synthetic_stores

pytestmark = pytest.mark.workflow


def _rewrite(path, **change):
    """Rewrite a store as a user's own code would, with some arrays or attributes changed."""
    g = zarr.open_group(str(path), mode="r")
    arrays = {k: g[k][:] for k in ("embeddings", "ids", "labels")}
    cls = (g["classifier/weight"][:], g["classifier/bias"][:])
    attrs = dict(g.attrs)
    attrs.update(change.pop("attrs", {}))
    arrays.update(change)
    raw_store(path, arrays["embeddings"], np.asarray(arrays["ids"].tolist(), dtype=str), arrays["labels"], cls, attrs)


def test_a_store_breaking_the_contract_is_refused_before_any_job(tmp_path):
    dirs = synthetic_stores(tmp_path / "byo", names=("a", "b"), dims=(5, 4), n_train=60, n_test=30)
    _rewrite(tmp_path / "byo" / "b" / "test.zarr", attrs={"preprocessing": "Resize(256), CenterCrop(224)"})
    r = snakemake(tmp_path, byo_config(dirs), check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and not (tmp_path / "results").exists()
    assert (f"experiments.byo.networks.b.path: store {tmp_path}/byo/b/test.zarr: attribute 'preprocessing' is "
            '"Resize(256), CenterCrop(224)" (a str); it must be a mapping or null') in out, out[-2000:]


def test_a_zarr_v2_store_is_named_with_how_to_convert_it(tmp_path):
    dirs = synthetic_stores(tmp_path / "byo", names=("a", "b"), dims=(5, 4), n_train=60, n_test=30)
    g = zarr.open_group(str(tmp_path / "byo" / "a" / "train.zarr"), mode="r")
    f, ids, labels = g["embeddings"][:], np.asarray(g["ids"][:].tolist(), dtype=str), g["labels"][:]
    shutil.rmtree(tmp_path / "byo" / "a" / "train.zarr")
    raw_store(tmp_path / "byo" / "a" / "train.zarr", f, ids, labels, zarr_format=2)
    r = snakemake(tmp_path, byo_config(dirs), check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and not (tmp_path / "results").exists()
    assert (f"experiments.byo.networks.a.path: store {tmp_path}/byo/a/train.zarr: is a Zarr v2 store") in out
    assert f"python -m embmap convert {tmp_path}/byo/a/train.zarr NEWDIR/train.zarr" in out


def test_labels_beyond_the_classifier_stop_the_run_before_the_pass(tmp_path):
    """The issue's case: 3 classes, labels 0-4, reported 0.58-0.60 accuracy instead of an error."""
    dirs = synthetic_stores(tmp_path / "byo", names=("a", "b"), dims=(5, 4), n_train=60, n_test=30, n_classes=3)
    for k in ("a", "b"):
        _rewrite(tmp_path / "byo" / k / "test.zarr", labels=np.arange(30) % 5)
    r = snakemake(tmp_path, byo_config(dirs), check=False)
    assert r.returncode != 0
    log = (tmp_path / "results" / "byo" / "logs" / "check_stores.log").read_text()
    assert (f"network 'a': store {tmp_path}/byo/a/test.zarr: 12 of 30 labels lie outside the classifier's 3 classes "
            "(0..2; -1 = unknown): 3 (6x), 4 (6x)") in log
    assert "12 of 30 labels lie outside" in r.stderr, "the reason is on the terminal, not only in the log"
    assert not (tmp_path / "results" / "byo" / "fit").exists() and not (tmp_path / "results" / "byo" / "tables").exists()
    assert not (tmp_path / "results" / "byo" / ".embmap.lock").exists(), "a failed run releases its lock"


def test_a_store_edited_in_place_reruns_what_was_computed_from_it(tmp_path):
    dirs = synthetic_stores(tmp_path / "byo", names=("a", "b"), dims=(5, 4), n_train=60, n_test=30)
    cfg = byo_config(dirs)
    snakemake(tmp_path, cfg)
    r = snakemake(tmp_path, cfg, "-n")
    assert "Nothing to be done" in r.stdout + r.stderr
    store = tmp_path / "byo" / "b" / "test.zarr"
    mtime = store.stat().st_mtime_ns
    labels = zarr.open_group(str(store), mode="r+")["labels"]  # in place: the folder's time stays
    labels[3] = 9
    assert store.stat().st_mtime_ns == mtime
    r = snakemake(tmp_path, cfg, "-n")
    out = r.stdout + r.stderr
    for rule in ("check_stores", "cross_products_shard", "evaluate_closed_set", "network_table"):
        assert rule in out, f"{rule} is not rerun after the edit:\n{out[-2000:]}"
    r = snakemake(tmp_path, cfg, check=False)
    assert r.returncode != 0 and "labels of" in r.stderr and "disagree with network 'a'" in r.stderr
