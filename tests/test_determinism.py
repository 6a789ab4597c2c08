"""Same config and seeds give identical tables and stores, run twice and with --cores 1 versus --cores 2;
two experiments sharing a network and dataset share one store written by one job."""

import filecmp
import re

import numpy as np
import pytest

from embmap import stores
from test_workflow import snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.tensorflow]

DIGITS = {"kind": "digits", "test_size": 0.3, "seed": 0}


def tiny_config():
    shared = {"source": "train", "train": {"architecture": "cnn", "width": 16, "epochs": 2, "seed": 2}}
    return {"experiments": {
        "one": {"task": "closed_set", "dataset": DIGITS, "networks": {
            "mlp": {"source": "train", "train": {"architecture": "mlp", "width": 16, "epochs": 3, "seed": 1}},
            "cnn": shared}},
        "two": {"task": "closed_set", "dataset": DIGITS, "mapping": {"alpha": 10.0}, "networks": {
            "cnn": shared,
            "rnd": {"source": "train", "control": True,
                    "train": {"architecture": "separable", "width": 16, "epochs": 0, "seed": 5}}}},
    }}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("cores2"), tmp_path_factory.mktemp("cores1")
    ra = snakemake(a, tiny_config(), "--cores", "2")
    rb = snakemake(b, tiny_config(), "--cores", "1")
    return (a, ra), (b, rb)


def test_tables_are_identical_across_runs_and_core_counts(two_runs):
    (a, _), (b, _) = two_runs
    for exp in ("one", "two"):
        for table in ("closed_set.csv", "closed_set_matrix.csv"):
            fa, fb = a / "results" / exp / "tables" / table, b / "results" / exp / "tables" / table
            assert filecmp.cmp(fa, fb, shallow=False), f"{exp}/{table} differs between the runs"


def test_embedding_stores_are_identical_across_runs(two_runs):
    (a, _), (b, _) = two_runs
    for net, exp in (("mlp", "one"), ("cnn", "one"), ("rnd", "two")):
        for split in ("train", "test"):
            sa = stores.open_embeddings(a / "results" / exp / "embeddings" / net / f"{split}.zarr")
            sb = stores.open_embeddings(b / "results" / exp / "embeddings" / net / f"{split}.zarr")
            np.testing.assert_array_equal(sa.embeddings[:], sb.embeddings[:])
            np.testing.assert_array_equal(sa.ids, sb.ids)


def test_a_shared_network_is_trained_and_extracted_by_one_job_per_split(two_runs):
    (a, ra), _ = two_runs
    out = ra.stdout + ra.stderr
    jobs = re.findall(r"rule (extract|train_network):\n(?:.*\n){0,8}?\s+wildcards: ([^\n]+)", out)
    cnn = [(rule, wc) for rule, wc in jobs if "network=cnn" in wc]
    assert sorted(rule for rule, _ in cnn) == ["extract", "extract", "train_network"], cnn
    assert all("exp=one" in wc for _, wc in cnn)
    assert not (a / "results" / "two" / "embeddings" / "cnn").exists()
    assert (a / "results" / "two" / "tables" / "closed_set.csv").exists()
