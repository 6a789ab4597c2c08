"""Config values the schema lets through are refused before any job, naming the key (and, for duplicates, the lines)."""

import copy
import subprocess
import sys

import pytest
import yaml

from embmap import plan
from embmap.config import ConfigError, check as check_config, read_file
from helpers import ROOT, synthetic_stores

DEMO = yaml.safe_load((ROOT / "config.yaml").read_text())

BYO = """\
results: {results}
experiments:
  byo:
    task: closed_set
    dataset: {{kind: embeddings}}
    mapping:
      alpha: {alpha}
    networks:
      netA:
        source: zarr
        path: {a}
      netB:
        source: zarr
        path: {b}
{extra}"""


def _byo_text(tmp_path, results="results", alpha="1.0", extra=""):
    dirs = synthetic_stores(tmp_path / "byo", names=("a", "b"), dims=(4, 3), n_train=30, n_test=12)
    return BYO.format(results=results, alpha=alpha, a=dirs["a"], b=dirs["b"], extra=extra), dirs


def test_a_network_given_twice_is_named_with_both_lines(tmp_path):
    """The issue's case: netA given twice ran on the second definition's stores."""
    text, dirs = _byo_text(tmp_path)
    text = text + f"      netA:\n        source: zarr\n        path: {dirs['b']}\n"
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError, match=rf"^experiments\.byo\.networks\.netA: given twice in {tmp_path}/config\.yaml "
                                          r"\(lines 9 and 15\); YAML would silently keep the second one only"):
        read_file(tmp_path / "config.yaml")
    with pytest.raises(ConfigError, match=r"networks\.netA: given twice"):  # the Snakefile's route
        plan.Plan(yaml.safe_load(text), tmp_path, files=[tmp_path / "config.yaml"])


def test_merge_keys_and_anchors_are_not_duplicates(tmp_path):
    (tmp_path / "c.yaml").write_text("base: &b {source: zarr, path: x}\nnets:\n  a:\n    <<: *b\n    path: y\n"
                                     "  b: *b\n")
    assert read_file(tmp_path / "c.yaml")["nets"]["a"] == {"source": "zarr", "path": "y"}


def test_json_configs_are_read_strictly_too(tmp_path):
    (tmp_path / "c.json").write_text('{"results": "r",\n\t"results": "s"}')  # a tab: YAML cannot read it, JSON can
    with pytest.raises(ConfigError, match=r"^results: given twice in one object of .*c\.json"):
        read_file(tmp_path / "c.json")
    (tmp_path / "ok.json").write_text('{"results": "r",\n\t"experiments": {}}')
    assert read_file(tmp_path / "ok.json") == {"results": "r", "experiments": {}}


@pytest.mark.parametrize("alpha,where,shown", [
    (".inf", "alpha", "inf is not a finite number"), ("-.inf", "alpha", "-inf is less than the minimum of 0"),
    (".nan", "alpha", "nan is not a finite number"), ("1.0e+400", "alpha", "inf is not a finite number"),
    ("[0.1, .nan, 10]", "alpha.1", "nan is not a finite number"),
])
def test_non_finite_numbers_are_refused_naming_the_key(tmp_path, alpha, where, shown):
    text, _ = _byo_text(tmp_path, alpha=alpha)
    (tmp_path / "config.yaml").write_text(text)
    config = read_file(tmp_path / "config.yaml")
    with pytest.raises(ConfigError, match=rf"^experiments\.byo\.mapping\.{where}: {shown}"):
        plan.Plan(config, tmp_path)


@pytest.mark.parametrize("path", [("experiments", "digits", "dataset", "test_size"),
                                  ("experiments", "digits", "networks", "cnn", "train", "learning_rate"),
                                  ("experiments", "digits", "preprocessing", "crop_fraction")])
def test_infinity_anywhere_is_refused(path):
    c = copy.deepcopy(DEMO)
    node = c
    for k in path[:-1]:
        node = node.setdefault(k, {})
    node[path[-1]] = float("nan")
    with pytest.raises(ConfigError, match=r"^" + r"\.".join(path) + r": nan is not a finite number"):
        check_config(c)


@pytest.mark.parametrize("results", ["", "   ", None])
def test_results_must_name_a_folder(results):
    c = {**copy.deepcopy(DEMO), "results": results}
    with pytest.raises(ConfigError, match=r"^results: must name a folder"):
        check_config(c)


def test_results_is_normalised_and_expanded_like_every_path(monkeypatch):
    monkeypatch.setenv("SCRATCH", "/scratch/me")
    for given, planned in (("results/", "results"), ("./out//", "out"), ("$SCRATCH/res", "/scratch/me/res")):
        p = plan.Plan({**copy.deepcopy(DEMO), "results": given}, ROOT)
        assert p.results == planned and p.targets()[0] == f"{planned}/digits/tables/closed_set.csv"


@pytest.mark.workflow
def test_snakemake_refuses_bad_configs_before_any_job(tmp_path):
    def run(text, *args):
        (tmp_path / "config.yaml").write_text(text)
        r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                            str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "1", *args],
                           capture_output=True, text=True)
        assert r.returncode != 0 and not (tmp_path / "results").exists()
        return r.stdout + r.stderr

    text, dirs = _byo_text(tmp_path)
    out = run(text + f"      netA:\n        source: zarr\n        path: {dirs['b']}\n")
    assert f"experiments.byo.networks.netA: given twice in {tmp_path}/config.yaml (lines 9 and 15)" in out
    out = run(_byo_text(tmp_path / "x", alpha=".inf")[0])
    assert "experiments.byo.mapping.alpha: inf is not a finite number" in out
    out = run(text, "--config", "results=")
    assert "results: must name a folder" in out
    assert not list(tmp_path.glob("byo/*.zarr*"))  # nothing outside the results either


def test_two_networks_on_the_same_stores_or_with_one_label_are_refused(tmp_path):
    dirs = synthetic_stores(tmp_path / "byo", names=("a", "b"), dims=(4, 3), n_train=30, n_test=12)
    nets = {"a": {"source": "zarr", "path": dirs["a"]}, "b": {"source": "zarr", "path": f"{dirs['a']}/../a/"}}
    c = {"experiments": {"x": {"task": "closed_set", "dataset": {"kind": "embeddings"}, "networks": nets}}}
    with pytest.raises(ConfigError, match=r"^experiments\.x\.networks\.b\.path: network 'a' reads the same stores"):
        plan.Plan(c, tmp_path)
    nets["b"] = {"source": "zarr", "path": dirs["b"], "label": "a"}
    with pytest.raises(ConfigError, match=r"^experiments\.x\.networks\.b\.label: 'a' is also the label of network 'a'"):
        plan.Plan(c, tmp_path)


def test_results_naming_a_file_and_seeds_out_of_range_are_refused(tmp_path):
    (tmp_path / "out").write_text("")
    with pytest.raises(ConfigError, match=r"^results: .*out is a file"):
        plan.Plan({**copy.deepcopy(DEMO), "results": str(tmp_path / "out")}, ROOT)
    for path, value in ((("dataset", "seed"), -1), (("networks", "cnn", "train", "seed"), 2**32)):
        c = copy.deepcopy(DEMO)
        node = c["experiments"]["digits"]
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        with pytest.raises(ConfigError, match=r"^experiments\.digits\." + r"\.".join(path) + ": "):
            check_config(c)
