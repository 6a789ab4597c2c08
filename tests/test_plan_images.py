"""Config checks for image datasets, TF Hub / checkpoint networks and their preprocessing."""

import copy

import pytest

from embmap import data, plan
from embmap.config import ConfigError, check as check_config


def imagenet_config(tmp_path, **networks):
    for sub in ("train", "val"):
        (tmp_path / "in" / sub).mkdir(parents=True, exist_ok=True)
    hub = {"source": "tfhub", "handle": "google/imagenet/inception_v3/feature_vector/5",
           "classifier": "google/imagenet/inception_v3/classification/5", "input_size": [299, 299]}
    nets = networks or {"a": dict(hub), "b": {**hub, "input_size": [224, 224], "fixed_input": True}}
    return {"experiments": {"in": {"task": "closed_set", "dataset": {"kind": "imagenet", "root": "in"},
                                   "fit_split": "train", "eval_split": "val", "networks": nets}}}


def check(cfg, root):
    check_config(cfg)
    return plan.Plan(cfg, root)


def test_experiment_input_size_overrides_all_but_fixed_networks(tmp_path):
    cfg = imagenet_config(tmp_path)
    cfg["experiments"]["in"]["preprocessing"] = {"input_size": [331, 331], "crop_fraction": 0.9}
    cfg["experiments"]["in"]["networks"]["b"]["crop_fraction"] = 1.0
    p = check(cfg, tmp_path)
    rng = {"input_range": [0.0, 1.0]}  # the schema's default for TF Hub models
    assert p.preprocessing("in", "a") == {"input_size": [331, 331], "crop_fraction": 0.9, **rng}
    assert p.preprocessing("in", "b") == {"input_size": [224, 224], "crop_fraction": 1.0, **rng}
    del cfg["experiments"]["in"]["preprocessing"]
    assert check(cfg, tmp_path).preprocessing("in", "a") == {"input_size": [299, 299], "crop_fraction": 0.875, **rng}


def test_controls_come_last_whatever_the_config_order(tmp_path):
    cfg = imagenet_config(tmp_path)
    nets = cfg["experiments"]["in"]["networks"]
    cfg["experiments"]["in"]["networks"] = {"ctrl": {**nets["a"], "control": True, "randomize": True}, **nets}
    assert list(check(cfg, tmp_path).experiments["in"].networks) == ["a", "b", "ctrl"]


@pytest.mark.parametrize("change,message", [
    (lambda c: c["networks"]["a"].pop("classifier"), r"networks\.a\.classifier: closed_set needs"),
    (lambda c: c["networks"]["a"].pop("input_size"), r"networks\.a\.input_size: networks reading image files"),
    (lambda c: c["networks"].update(c={"source": "checkpoint", "architecture": "inception_v4",
                                       "checkpoint": "nowhere/inception_v4.ckpt"}),
     r"networks\.c\.checkpoint: no checkpoint at .*nowhere/inception_v4.ckpt"),
    (lambda c: c["networks"].update(t={"source": "train", "train": {"architecture": "cnn"}}),
     r"networks\.t\.source: 'train' trains the demo architectures on digits only"),
    (lambda c: c["dataset"].update(val_labels="LOC_val_solution.csv"),
     r"dataset\.val_labels: .*in/LOC_val_solution.csv does not exist"),
    (lambda c: c["dataset"].update(root="elsewhere"), r"dataset\.root: no train/ folder in .*elsewhere"),
    (lambda c: c["dataset"].update(kind="image_list", path="list.csv", root=None) or c["dataset"].pop("root"),
     r"dataset\.path: no image list at .*list.csv"),
])
def test_bad_image_configs_name_the_key(tmp_path, change, message):
    cfg = imagenet_config(tmp_path)
    change(cfg["experiments"]["in"])
    with pytest.raises(ConfigError, match=message):
        check(cfg, tmp_path)


@pytest.mark.parametrize("change,message", [
    (lambda c: c["networks"]["a"].update(handel="x"), r"networks\.a\.handel: unknown key"),
    (lambda c: c["networks"].update(a={"source": "checkpoint", "architecture": "inception_v9", "checkpoint": "x"}),
     r"networks\.a\.architecture: 'inception_v9' is not one of \['inception_v4'\]"),
    (lambda c: c["dataset"].update(per_class=0), r"dataset\.per_class: 0 is less than the minimum of 1"),
    (lambda c: c.update(preprocessing={"crop_fraction": 1.5}), r"preprocessing\.crop_fraction: 1\.5 is greater"),
    (lambda c: c["dataset"].update(devkt="x"), r"dataset\.devkt: unknown key"),
])
def test_schema_names_bad_image_keys(tmp_path, change, message):
    cfg = imagenet_config(tmp_path)
    change(cfg["experiments"]["in"])
    with pytest.raises(ConfigError, match=message):
        check_config(cfg)


def test_a_network_under_other_preprocessing_is_not_shared(tmp_path):
    cfg = imagenet_config(tmp_path)
    other = copy.deepcopy(cfg["experiments"]["in"])
    cfg["experiments"]["in331"] = other
    p = check(cfg, tmp_path)
    assert p.store("in331", "a", "val") == p.store("in", "a", "val")
    other["preprocessing"] = {"input_size": [331, 331]}
    with pytest.raises(ConfigError, match=r"in331\.networks\.a: .*differently"):
        check(cfg, tmp_path)


def test_only_experiments_on_the_bundled_digits_ask_for_one_core(tmp_path):
    from types import SimpleNamespace

    cfg = imagenet_config(tmp_path)
    cfg["experiments"]["digits"] = {"task": "closed_set", "dataset": {"kind": "digits"}, "fit_split": "train",
                                    "eval_split": "test", "networks": {
                                        k: {"source": "train", "train": {"architecture": k}} for k in ("mlp", "cnn")}}
    threads = check(cfg, tmp_path).threads(4)
    assert threads(SimpleNamespace(exp="in")) == 4
    assert threads(SimpleNamespace(exp="digits")) == 1
    # faces (LFW) and brought stores may be ImageNet-sized: they keep the rule's threads
    assert {k for k, kind in data.KINDS.items() if kind.small} == {"digits", "digit_pairs"}
