"""Config checks name the key at fault; the plan resolves stores, owners and targets."""

import copy

import pytest
import yaml

from conftest import ROOT, synthetic_stores
from embmap import plan
from embmap.config import ConfigError, check as check_config, dotted

DEMO = yaml.safe_load((ROOT / "config.yaml").read_text())


def _with(path, value, base=DEMO):
    c = copy.deepcopy(base)
    d = c
    for k in path[:-1]:
        d = d[k]
    if value is KeyError:
        del d[path[-1]]
    else:
        d[path[-1]] = value
    return c


def test_demo_config_is_valid():
    check_config(DEMO)
    p = plan.Plan(DEMO, ROOT)
    assert list(p.experiments) == ["digits", "digits_open_set"]
    assert p.targets()[0] == "results/digits/tables/closed_set.csv"
    assert p.experiments["digits"].networks["random"].control
    assert p.experiments["digits"].networks["random"].label == "CNN*"


@pytest.mark.parametrize("path,value,message", [
    (("experiments", "digits", "mapping", "aplha"), 1.0, r"experiments\.digits\.mapping\.aplha: unknown key"),
    (("experiments", "digits", "networks", "mlp", "source"), "onnx", r"networks\.mlp\.source: 'onnx' is not one"),
    (("experiments", "digits", "networks", "cnn", "train", "epoks"), 3, r"networks\.cnn\.train\.epoks: unknown"),
    (("experiments", "digits", "mapping", "alpha"), -1, r"mapping\.alpha: -1 is less than the minimum"),
    (("experiments", "digits", "dataset", "kind"), "mnist", r"dataset\.kind: 'mnist'"),
    (("experiments", "digits", "task"), KeyError, r"experiments\.digits: 'task' is a required property"),
    (("experiment",), {}, r"experiment: unknown key"),
])
def test_schema_errors_name_the_key(path, value, message):
    with pytest.raises(ConfigError, match=message):
        check_config(_with(path, value))


def test_missing_handle_path_names_the_network(tmp_path):
    c = _with(("experiments", "digits", "networks", "mlp"),
              {"source": "savedmodel", "handle": "models/nowhere", "classifier": "models/nowhere2"})
    check_config(c)
    with pytest.raises(ConfigError, match=r"networks\.mlp\.handle: no SavedModel at .*nowhere"):
        plan.Plan(c, tmp_path)


def test_missing_zarr_store_names_network_and_split(tmp_path):
    dirs = synthetic_stores(tmp_path, names=("a", "b"), dims=(4, 4))
    c = {"experiments": {"byo": {"task": "closed_set", "dataset": {"kind": "embeddings"},
                                 "fit_split": "train", "eval_split": "val",
                                 "networks": {k: {"source": "zarr", "path": d} for k, d in dirs.items()}}}}
    check_config(c)
    with pytest.raises(ConfigError, match=r"networks\.a\.path: no store for split 'val'"):
        plan.Plan(c, tmp_path)


def test_stores_of_bring_your_own_networks_are_used_in_place(tmp_path):
    dirs = synthetic_stores(tmp_path, names=("a", "b"), dims=(4, 4))
    c = {"experiments": {"byo": {"task": "closed_set", "dataset": {"kind": "embeddings"},
                                 "networks": {k: {"source": "zarr", "path": d} for k, d in dirs.items()}}}}
    p = plan.Plan(c, tmp_path)
    assert p.store("byo", "a", "train") == f"{dirs['a']}/train.zarr"
    assert p.owned_stores() == []


def test_a_network_shared_by_two_experiments_is_extracted_once():
    c = copy.deepcopy(DEMO)
    del c["experiments"]["digits_open_set"]
    second = copy.deepcopy(c["experiments"]["digits"])
    second["mapping"] = {"alpha": 10.0}
    del second["networks"]["resnet"]
    c["experiments"]["digits_alpha10"] = second
    p = plan.Plan(c, ROOT)
    assert p.store("digits_alpha10", "mlp", "test") == p.store("digits", "mlp", "test")
    assert p.model_dir("digits_alpha10", "cnn") == "results/digits/models/cnn"
    assert {e for e, _, _ in p.owned_stores()} == {"digits"}
    # a different network under the same key on the same data is refused
    second["networks"]["mlp"]["train"]["seed"] = 99
    with pytest.raises(ConfigError, match=r"digits_alpha10\.networks\.mlp.*differently"):
        plan.Plan(c, ROOT)


def test_same_fit_and_eval_split_is_refused():
    c = _with(("experiments", "digits", "eval_split"), "train")
    with pytest.raises(ConfigError, match="eval_split: equals fit_split"):
        plan.Plan(c, ROOT)


def test_closed_set_savedmodel_needs_a_classifier(tmp_path):
    (tmp_path / "fv").mkdir()
    c = _with(("experiments", "digits", "networks", "mlp"), {"source": "savedmodel", "handle": "fv"})
    with pytest.raises(ConfigError, match=r"networks\.mlp\.classifier"):
        plan.Plan(c, tmp_path)
