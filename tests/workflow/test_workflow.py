"""The workflow end to end through snakemake, in a temporary directory."""

import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
import zarr

from embmap.evaluate import closed_set
from helpers import ROOT, byo_config, snakemake, synthetic_stores

pytestmark = pytest.mark.workflow


def test_bring_your_own_embeddings_end_to_end(tmp_path):
    dirs = synthetic_stores(tmp_path / "byo", names=("a", "b", "ctrl"), dims=(12, 10, 12), random_control="ctrl")
    cfg = byo_config(dirs)
    cfg["experiments"]["byo"]["networks"]["ctrl"]["control"] = True
    snakemake(tmp_path, cfg)
    res = tmp_path / "results" / "byo"
    t = pd.read_csv(res / "tables" / "closed_set.csv")
    assert list(t.columns) == closed_set.COLUMNS
    an = t[t.method == "analytic"]
    np.testing.assert_allclose(an.accuracy, an.source_accuracy)
    m = pd.read_csv(res / "tables" / "closed_set_matrix.csv", index_col=0)
    assert list(m.index) == ["a", "b", "ctrl"] and list(m.columns) == ["a", "b", "ctrl"]
    for ext in ("png", "svg"):
        assert (res / "figures" / f"closed_set_heatmap.{ext}").stat().st_size > 1000
    # map stores: the documented arrays and attributes
    g = zarr.open_group(str(res / "maps" / "ridge" / "a" / "b.zarr"), mode="r")
    assert g["weight"].shape == (12, 10) and g["intercept"].shape == (10,)
    assert g.attrs["alpha"] == 1.0 and g.attrs["n"] == 400 and g.attrs["fit_split"] == "train"
    blocks = zarr.open_group(str(res / "fit" / "blocks.zarr"), mode="r")
    assert blocks.attrs["networks"] == ["a", "b", "ctrl"] and blocks["gram/a/b"].shape == (12, 10)
    assert all((res / "logs" / f).exists() for f in ("cross_products.log", "evaluate_closed_set.log"))
    # nothing to do on a second run
    r = snakemake(tmp_path, cfg, "-n")
    assert "Nothing to be done" in r.stdout + r.stderr
    # docs/bring-your-own.md: a deleted intermediate alone is not rerun; named to --forcerun, it and everything
    # after it are
    shutil.rmtree(res / "maps" / "ridge" / "a")
    r = snakemake(tmp_path, cfg, "-n")
    assert "Nothing to be done" in r.stdout + r.stderr
    r = snakemake(tmp_path, cfg, "-n", "--forcerun", "results/byo/maps/ridge/a")
    jobs = _job_counts(r.stdout + r.stderr)
    assert jobs.get("fit_maps") == 1 and jobs.get("evaluate_closed_set") == 1 and "extract" not in jobs, jobs


def test_misspelled_key_fails_before_any_job(tmp_path):
    dirs = synthetic_stores(tmp_path / "byo", names=("a", "b"), dims=(4, 4))
    cfg = byo_config(dirs)
    cfg["experiments"]["byo"]["maping"] = {"alpha": 1.0}
    r = snakemake(tmp_path, cfg, check=False)
    assert r.returncode != 0
    assert "embmap: config error: experiments.byo.maping: unknown key" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr and 'File "' not in r.stderr, r.stderr  # one line, no frames to wade through
    assert not (tmp_path / "results").exists()


def test_disagreeing_ids_fail_naming_the_network_and_leave_no_tables(tmp_path):
    dirs = synthetic_stores(tmp_path / "byo", names=("a", "b"), dims=(6, 6))
    other = synthetic_stores(tmp_path / "other", names=("c",), dims=(6,), n_train=399, n_test=200)
    cfg = byo_config({**dirs, "c": other["c"]})
    r = snakemake(tmp_path, cfg, check=False)
    assert r.returncode != 0
    log = (tmp_path / "results" / "byo" / "logs" / "check_stores.log").read_text()
    assert "network 'c'" in log and "399 samples" in log
    assert not (tmp_path / "results" / "byo" / "fit").exists(), "the pass must not start on stores that disagree"
    assert not (tmp_path / "results" / "byo" / "tables").exists()


@pytest.mark.tensorflow
def test_digits_demo_reproduces_the_papers_pattern(tmp_path):
    """The default config, shortened: trained nets lose little, the random column is at chance."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    del cfg["experiments"]["digits_open_set"]  # tests/evaluate/test_open_set.py runs that one
    nets = cfg["experiments"]["digits"]["networks"]
    for k in ("resnet",):
        del nets[k]
    for n in nets.values():
        if n["train"]["epochs"]:
            n["train"]["epochs"] = 8
    snakemake(tmp_path, cfg)
    res = tmp_path / "results" / "digits"
    t = pd.read_csv(res / "tables" / "closed_set.csv")
    native = t[t.method == "native"].set_index("source").accuracy
    assert (native.drop("random") > 0.85).all()
    assert native["random"] < 0.25
    ridge = t[t.method == "ridge"]
    trained = ridge[(ridge.source != "random") & (ridge.target != "random")]
    assert (trained["pct_change"] > -10).all()
    assert (ridge[ridge.target == "random"].accuracy < 0.25).all()
    an = t[t.method == "analytic"]
    np.testing.assert_allclose(an.accuracy, an.source_accuracy)
    store = zarr.open_group(str(res / "embeddings" / "cnn" / "test.zarr"), mode="r")
    assert store.attrs["source"] == "train" and store.attrs["split"] == "test"
    assert store["classifier/weight"].shape == (10, 128)
    assert (res / "models" / "cnn" / "feature_vector" / "saved_model.pb").exists()
    # the demo's neighbourhood index, on the 540 test images: trained networks share far more than chance
    s = pd.read_csv(res / "tables" / "similarity.csv")
    knn = s[(s["index"] == "mutual_knn") & (s.source != "random") & (s.target != "random")]
    assert len(knn) == 3 and (knn.n == 540).all() and np.allclose(knn.chance, 10 / 539)
    assert (knn.value > knn.chance_q95).all() and (knn.chance_q95 > knn.chance).all()
    # the analyses the demo lists, each a table and a figure: 6 pairs, 24 triples, 12 ordered pairs per method
    methods = cfg["experiments"]["digits"]["mapping"]["methods"]
    for name, rows in (("asymmetry", 6), ("composition", 24), ("classifier_view", 12)):
        table = pd.read_csv(res / "tables" / f"{name}.csv")
        assert len(table) == rows * (len(methods) + (name == "classifier_view")), name  # and the analytic map
        for ext in ("png", "svg"):
            assert (res / "figures" / f"{name}.{ext}").stat().st_size > 1000
    assert "loss_per_hop" in (res / "logs" / "composition.log").read_text()
    # the shared space: every ordered pair (4 networks: 12) beside its direct ridge map, at a fraction of the cost
    shared = pd.read_csv(res / "tables" / "shared_space.csv")
    assert len(shared) == 12 and (shared.shared_dim == 32).all()
    direct_ridge = ridge.set_index(["source", "target"]).accuracy
    np.testing.assert_allclose(shared.set_index(["source", "target"]).accuracy_direct, direct_ridge.loc[
        list(zip(shared.source, shared.target))], atol=1e-6)  # the same maps, the same images as closed_set.csv
    plain = shared[(shared.source != "random") & (shared.target != "random")]
    assert (plain["diff"] > -0.15).all() and ((plain.diff_low <= plain["diff"]) & (plain["diff"] <= plain.diff_high)).all()
    log = (res / "logs" / "shared_space.log").read_text()
    assert "8 maps" in log and "the direct ridge maps: 12 maps" in log
    # which index predicts accuracy: 7 indices and the fit R2, 3 methods, 2 outcomes, over the 6 trained pairs
    pred = pd.read_csv(res / "tables" / "index_predicts.csv")
    assert len(pred) == 8 * len(methods) * 2 and (pred.pairs == 6).all() and (pred.networks == 3).all()
    assert pred.spearman.between(-1, 1).all()
    n95 = pd.read_csv(res / "tables" / "n95.csv")
    assert len(n95) == 12 * len(methods) and n95.reached.all() and (n95.full == "all").all()
    assert (n95.n95 <= n95.largest_n_fit).all() and (n95.accuracy_at_n95 >= n95.threshold - 1e-9).all()
    # layer by layer: every layer the networks name beside their embeddings, one pass; early layers map worse
    n_layers = sum(len(n["layers"]) for n in nets.values())
    nodes, k = len(nets) + n_layers, len(nets)
    lm = pd.read_csv(res / "tables" / "layer_maps.csv")
    lr = lm[lm.method == "ridge"].set_index(["source", "source_layer", "target"])
    assert len(lm) == k + len(methods) * (nodes * k - k) and set(lm.target_layer) == {"embedding"}
    assert lr.loc[("cnn", "conv1", "cnn")].accuracy < lr.loc[("cnn", "pool", "cnn")].accuracy - 0.2
    assert lr.loc[("cnn", "conv1", "mlp")].accuracy_high < lr.loc[("cnn", "embedding", "mlp")].accuracy_low
    np.testing.assert_allclose(lr.xs("embedding", level="source_layer").accuracy.sort_index(),
                               ridge.set_index(["source", "target"]).accuracy.sort_index(), atol=1e-6)
    ls = pd.read_csv(res / "tables" / "layer_similarity.csv")
    own = ls[(ls["index"] == "cka") & (ls.source == ls.target) & (ls.source_layer == ls.target_layer)]
    assert len(own) == nodes and np.allclose(own.value, 1.0)
    assert f"{n_layers} of them layers" in (res / "logs" / "cross_products_shard" / "0.log").read_text()
    # sample sizes apply to every layer; the whole split's rows are layer_maps.csv's, the embeddings' the curves'
    lse = pd.read_csv(res / "tables" / "layer_sample_efficiency.csv")
    sizes = cfg["experiments"]["digits"]["mapping"]["sample_sizes"]
    assert len(lse) == k + len(methods) * (nodes * k - k) * len(sizes)
    whole = lse[lse.n_fit == lse.n_fit.max()].set_index(["source", "source_layer", "target", "method"]).accuracy
    np.testing.assert_allclose(whole.sort_index(), lm[lm.method != "native"].set_index(
        ["source", "source_layer", "target", "method"]).accuracy.sort_index(), atol=1e-6)
    pool = lse[(lse.method == "ridge") & (lse.source == "cnn") & (lse.source_layer == "pool") & (lse.target == "cnn")]
    assert pool.sort_values("n_fit").accuracy.iloc[-1] > pool.sort_values("n_fit").accuracy.iloc[0] + 0.1
    for name in ("shared_space", "index_predicts", "layer_maps", "layer_similarity"):
        for ext in ("png", "svg"):
            assert (res / "figures" / f"{name}.{ext}").stat().st_size > 1000


def _job_counts(out: str) -> dict:
    """{rule: count} from the 'Job stats' table of a dry run."""
    stats = out[out.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, flags=re.M)}


def test_a_named_configfile_replaces_the_demo_instead_of_joining_it(tmp_path):
    """--configfile configs/imagenet.yaml from a folder holding the demo's config.yaml plans the paper only."""
    (tmp_path / "data" / "ILSVRC2012" / "train").mkdir(parents=True)
    (tmp_path / "data" / "ILSVRC2012" / "val").mkdir()
    (tmp_path / "data" / "models").mkdir()
    (tmp_path / "data" / "models" / "inception_v4.ckpt").write_bytes(b"")
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")  # what the Snakefile's configfile: would read
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(ROOT / "configs" / "imagenet.yaml"), "--cores", "8", "-n", "--quiet", "rules"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = _job_counts(r.stdout + r.stderr)
    assert jobs["extract"] == 22 and jobs["fit_maps"] == 11 and jobs["cross_products_shard"] == 1, jobs
    assert "train_network" not in jobs and jobs["prepare_split"] == 1, jobs
    # without --configfile, the demo in config.yaml is the config
    r = subprocess.run(cmd[:7] + ["--cores", "2", "-n", "--quiet", "rules"], capture_output=True, text=True)
    jobs = _job_counts(r.stdout + r.stderr)
    assert jobs["train_network"] == 8 and jobs["prepare_split"] == 2, jobs


def test_the_modern_config_plans_keras_and_tf_hub_networks_and_lints_clean(tmp_path):
    """configs/modern.yaml: a dry run plans one extraction per network and split, and snakemake --lint is clean."""
    (tmp_path / "data" / "ILSVRC2012" / "train").mkdir(parents=True)
    (tmp_path / "data" / "ILSVRC2012" / "val").mkdir()
    base = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
            "--configfile", str(ROOT / "configs" / "modern.yaml")]
    r = subprocess.run(base + ["--cores", "8", "-n", "--quiet", "rules"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = _job_counts(r.stdout + r.stderr)
    assert jobs["extract"] == 2 * 11 and jobs["fit_maps"] == 11 and jobs["prepare_split"] == 1, jobs
    r = subprocess.run(base + ["--lint"], capture_output=True, text=True)
    assert r.returncode == 0 and "Lints for" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]


def test_the_demo_has_the_number_of_jobs_the_readme_says(tmp_path):
    said = re.search(r"\((\d+) jobs\s+besides Snakemake's target rule `all`", (ROOT / "README.md").read_text())
    assert said, "README.md: the demo's job count is gone"
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                        str(tmp_path), "-n", "--cores", "2"], capture_output=True, text=True)
    jobs = _job_counts(r.stdout + r.stderr)
    assert sum(jobs.values()) - jobs["total"] - jobs["all"] == int(said.group(1)), jobs

