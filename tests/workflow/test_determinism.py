"""What is promised about reproducibility, checked exactly (docs/reproducibility.md, "Determinism"):

- the same config on the same machine with the same thread counts gives bit-identical stores, blocks,
  maps and tables, run after run;
- extraction gives the same embeddings, bit for bit, whatever the job's threads: every TensorFlow kernel
  runs on ``store.kernel_threads`` threads (2; its sums split by thread count) and the job's other cores run
  batches side by side; each store records the kernels' count (``tf_threads``) and its batches at once
  (``workers``);
- two experiments sharing a network and dataset share one store written by one job.
"""

import filecmp
import re
import subprocess
import sys

import numpy as np
import pytest
import zarr

from embmap import stores
from helpers import ROOT, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.tensorflow]

DIGITS = {"kind": "digits", "test_size": 0.3, "seed": 0}


def tiny_config():
    shared = {"source": "train", "train": {"architecture": "cnn", "width": 16, "epochs": 2, "seed": 2}}
    return {"experiments": {
        "one": {"task": "closed_set", "dataset": DIGITS, "networks": {
            "mlp": {"source": "train", "train": {"architecture": "mlp", "width": 16, "epochs": 3, "seed": 1}},
            "cnn": shared}},
        "two": {"task": "closed_set", "dataset": DIGITS,
                "mapping": {"alpha": 10.0, "methods": ["ridge", "lstsq", "procrustes"], "sample_sizes": [50, "all"]},
                "similarity": {"indices": ["cka", "cca", "svcca", "procrustes", "r2"]}, "networks": {
            "cnn": shared,
            "rnd": {"source": "train", "control": True,
                    "train": {"architecture": "separable", "width": 16, "epochs": 0, "seed": 5}}}},
    }}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    ra = snakemake(a, tiny_config(), "--cores", "2")
    rb = snakemake(b, tiny_config(), "--cores", "2")
    return (a, ra), (b, rb)


def _arrays(path):
    """{array path: values} of every array in a Zarr group."""
    g = zarr.open_group(str(path), mode="r")
    out = {}

    def walk(group, prefix):
        for name, member in group.members():
            if isinstance(member, zarr.Group):
                walk(member, f"{prefix}{name}/")
            else:
                out[prefix + name] = member[...]

    walk(g, "")
    return out


def test_tables_are_identical_run_after_run(two_runs):
    (a, _), (b, _) = two_runs
    for exp, extra in (("one", ()), ("two", ("similarity.csv", "sample_efficiency.csv"))):
        for table in ("closed_set.csv", "closed_set_matrix.csv", "networks.csv", *extra):
            fa, fb = a / "results" / exp / "tables" / table, b / "results" / exp / "tables" / table
            assert filecmp.cmp(fa, fb, shallow=False), f"{exp}/{table} differs between the runs"


def test_stores_blocks_and_maps_are_bit_identical_run_after_run(two_runs):
    (a, _), (b, _) = two_runs
    paths = [f"one/embeddings/{n}/{s}.zarr" for n in ("mlp", "cnn") for s in ("train", "test")]
    paths += ["two/embeddings/rnd/test.zarr", "one/fit/blocks.zarr", "two/fit/blocks.zarr",
              "one/maps/ridge/mlp/cnn.zarr", "two/maps/ridge/rnd/cnn.zarr", "two/maps/procrustes/rnd/cnn.zarr"]
    for p in paths:
        xa, xb = _arrays(a / "results" / p), _arrays(b / "results" / p)
        assert xa.keys() == xb.keys() and xa, p
        for k in xa:
            np.testing.assert_array_equal(xa[k], xb[k], err_msg=f"{p}/{k}")
    s = stores.open_embeddings(a / "results" / "one" / "embeddings" / "cnn" / "test.zarr")
    assert s.attrs["tf_threads"] == 2  # store.kernel_threads; the job's other threads run batches side by side


EXTRACT_WITH = """
import json, sys
sys.path.insert(0, {workflow!r})
from types import SimpleNamespace
import yaml
from embmap import steps
from embmap.plan import Plan
p = Plan(yaml.safe_load(open({config!r})), {root!r})
wc = SimpleNamespace(exp="one", network="cnn", split="test")
inputs = {{k: {root!r} + "/" + v for k, v in p.inputs("extract")(wc).items()}}
steps.extract(**p.job("extract")(wc), network="cnn", split="test", store={out!r}, threads={threads},
              manifest=inputs["manifest"], model=inputs["model"])
"""


@pytest.mark.parametrize("threads", [1, 4])
def test_extraction_on_another_thread_count_gives_the_same_embeddings(two_runs, tmp_path, threads):
    (a, _), _ = two_runs
    out = tmp_path / f"cnn-test-{threads}threads.zarr"
    code = EXTRACT_WITH.format(workflow=str(ROOT / "workflow"), config=str(a / "config.yaml"), root=str(a),
                               out=str(out), threads=threads)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    other, run = stores.open_embeddings(out), stores.open_embeddings(a / "results/one/embeddings/cnn/test.zarr")
    assert (other.attrs["tf_threads"], run.attrs["tf_threads"]) == (2, 2)  # kernels on 2 threads whatever the job's
    assert other.attrs["workers"] == max(1, threads // 2)
    np.testing.assert_array_equal(other.ids, run.ids)
    np.testing.assert_array_equal(other.embeddings[:], run.embeddings[:])
    for x, y in zip(other.classifier(), run.classifier()):
        np.testing.assert_array_equal(x, y)


def test_a_shared_network_is_trained_and_extracted_by_one_job_per_split(two_runs):
    (a, ra), _ = two_runs
    out = ra.stdout + ra.stderr
    jobs = re.findall(r"rule (extract|train_network):\n(?:.*\n){0,8}?\s+wildcards: ([^\n]+)", out)
    cnn = [(rule, wc) for rule, wc in jobs if "network=cnn" in wc]
    assert sorted(rule for rule, _ in cnn) == ["extract", "extract", "train_network"], cnn
    assert all("exp=one" in wc for _, wc in cnn)
    assert not (a / "results" / "two" / "embeddings" / "cnn").exists()
    assert (a / "results" / "two" / "tables" / "closed_set.csv").exists()
