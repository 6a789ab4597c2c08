"""Config checks name the key at fault; the plan resolves stores, owners and targets."""

import copy

import pytest
import yaml

from embmap import plan
from embmap.config import ConfigError, check as check_config
from helpers import ROOT, synthetic_stores

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
    (("experiments", "digits", "networks", "mlp", "source"), "caffe", r"networks\.mlp\.source: 'caffe' is not one"),
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
    second["analyses"].remove("n95")  # no sample sizes: the plan refuses n95 (tests/test_task_registry.py)
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


# -- defaults and structure -----------------------------------------------------------
def test_defaults_come_from_the_schema_and_are_filled_once():
    from embmap import config

    p = plan.Plan(DEMO, ROOT)
    closed, open_ = p.experiments["digits"], p.experiments["digits_open_set"]
    assert closed.mapping == {"alpha": 1.0, "folds": 5, "shards": 1, "precision": "float64",
                              "methods": ["ridge", "lstsq", "procrustes"], "scale": "none",
                              "sample_sizes": [32, 64, 128, 256, 512, "all"]}
    assert open_.mapping["methods"] == ["ridge", "lstsq", "procrustes"] and open_.mapping["sample_sizes"] == []
    bare = config.load({"experiments": {"x": {"task": "closed_set", "dataset": {"kind": "digits"},
                                              "networks": {"a": {"source": "zarr", "path": "p"},
                                                           "b": {"source": "zarr", "path": "q"}}}}})
    x = bare["experiments"]["x"]  # the new analyses are off by default: existing outputs do not change
    assert x["mapping"]["methods"] == ["ridge"] and x["mapping"]["sample_sizes"] == []
    assert x["similarity"]["indices"] == []
    assert closed.store == {"chunk_rows": None, "batch_size": 256, "kernel_threads": 2}
    assert "identification" not in closed.spec and open_.identification == {"folds": 2, "seed": 0}
    cnn = closed.networks["cnn"].spec
    assert cnn["train"]["batch_size"] == 64 and cnn["train"]["learning_rate"] == 0.001 and cnn["control"] is False
    # every default the plan filled is the schema's own
    schema = config.schema()
    assert schema["$defs"]["train"]["properties"]["batch_size"]["default"] == 64
    assert config.defaults("align", {"style": "facenet"}) == {"style": "facenet", "size": 160, "margin": 32}
    assert config.defaults("align", {"style": "arcface"}) == {"style": "arcface", "size": 112}


def test_the_plan_imports_the_standard_library_only(tmp_path):
    """The Snakefile builds the plan while parsing, where numpy, pandas, zarr or TensorFlow may be missing."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for m in ('numpy', 'pandas', 'zarr', 'tensorflow', 'dask', 'scipy', 'sklearn'): sys.modules[m] = None\n"
        f"sys.path.insert(0, {str(ROOT / 'workflow')!r})\n"
        "import yaml\n"
        "from embmap.plan import Plan\n"
        "for name in ('config.yaml', 'configs/imagenet.yaml', 'configs/lfw.yaml', 'configs/modern.yaml'):\n"
        f"    p = Plan(yaml.safe_load(open({str(ROOT)!r} + '/' + name)), check_paths=False)\n"
        "    assert p.targets()\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


def test_every_source_and_dataset_kind_is_registered_with_its_schema_branch():
    from embmap import config, data, models

    schema = config.schema()
    sources = schema["$defs"]["network"]["properties"]["source"]["enum"]
    assert sorted(sources) == sorted(models.SOURCES)
    branches = [b["if"]["properties"]["source"]["const"] for b in schema["$defs"]["network"]["allOf"]
                if "source" in b["if"].get("properties", {})]  # beside conditions of every branch (layers)
    assert sorted(branches) == sorted(models.SOURCES)
    kinds = schema["$defs"]["dataset"]["properties"]["kind"]["enum"]
    assert sorted(kinds) == sorted(data.KINDS)


@pytest.mark.parametrize("where,value,message", [
    (("experiments", "digits_open_set", "mapping", "shards"), 4,
     r"experiments\.digits_open_set\.mapping\.shards: open_set fits its per-fold maps in memory"),
    (("experiments", "digits_open_set", "mapping", "folds"), 3,
     r"experiments\.digits_open_set\.mapping\.folds: open_set cross-validates an alpha list over the pairs"),
    (("experiments", "digits", "identification"), {"folds": 3},
     r"experiments\.digits\.identification: only task open_set identifies"),
])
def test_keys_a_task_does_not_use_are_refused_not_ignored(where, value, message):
    with pytest.raises(ConfigError, match=message):
        plan.Plan(_with(where, value), ROOT)


def test_an_open_set_alpha_list_is_planned_for_the_evaluation_jobs():
    c = _with(("experiments", "digits_open_set", "mapping", "alpha"), [0.1, 1.0, 10.0])
    p = plan.Plan(c, ROOT)

    class W:
        exp = "digits_open_set"

    assert p.job("evaluate_open_set")(W)["mapping"]["alpha"] == [0.1, 1.0, 10.0]
    assert p.job("evaluate_identification")(W)["mapping"]["alpha"] == [0.1, 1.0, 10.0]


def test_every_rule_job_of_the_demo_is_answered_by_the_plan():
    """What the rules ask the plan for exists for every experiment and wildcard (no lambda left to fail)."""
    from types import SimpleNamespace

    from embmap import steps

    p = plan.Plan(DEMO, ROOT)
    for exp, e in p.experiments.items():
        for net in e.networks:
            wc = SimpleNamespace(exp=exp, network=net, source=net, target=net, split=e.splits[0], shard="0",
                                 align="facenet160m32", method="lstsq")
            for rule, fn in steps.STEPS.items():
                rules_of_task = {"closed_set": ("evaluate_open_set", "evaluate_identification", "write_pairs",
                                                "plot_open_set", "plot_identification"),
                                 "open_set": ("evaluate_closed_set", "network_table", "plot_closed_set",
                                              "similarity", "sample_efficiency", "plot_similarity",
                                              "plot_sample_efficiency", "fit_method_maps")}
                if rule in rules_of_task[e.task] or rule in ("detect_faces", "align_faces"):
                    continue
                job = p.job(rule)(wc)
                assert isinstance(job, dict), rule
                if rule in steps.INPUTS:
                    assert isinstance(p.inputs(rule)(wc), dict), rule


def _image_list_experiment(tmp_path, networks, task="closed_set"):
    (tmp_path / "list.csv").write_text("path,label\n")
    return {"experiments": {"e": {"task": task, "dataset": {"kind": "image_list", "path": str(tmp_path / "list.csv")},
                                  "networks": networks}}}


@pytest.mark.parametrize("network,message", [
    ({"source": "keras", "model": "nowhere.keras", "input_range": [0, 1]}, r"networks\.a\.model: nothing at .*nowhere"),
    ({"source": "keras", "model": "m.keras"}, r"networks\.a\.input_range: a model file does not say"),
    ({"source": "keras", "application": "ConvNeXtTiny", "input_range": [0, 1]},
     r"networks\.a\.input_range: an application preprocesses with its own preprocess_input"),
    ({"source": "keras", "application": "ConvNeXtTiny", "model": "m.keras"}, r"networks\.a: give either application"),
    ({"source": "keras", "model": "m.keras", "weights": "w.h5", "input_range": [0, 1]},
     r"networks\.a\.weights: weights go with application"),
    ({"source": "onnx", "model": "m.onnx", "input_range": [0, 255], "classifier": "none"},
     r"networks\.a\.classifier: closed_set reads the network's classifier"),
    ({"source": "onnx", "model": "m.onnx"}, r"networks\.a: 'input_range' is a required property"),
    ({"source": "tflite", "model": "m.tflite", "flip": True}, r"networks\.a\.flip: the test-time flip"),
    ({"source": "tflite", "model": "m.tflite", "randomize": True}, r"networks\.a\.randomize: unknown key"),
])
def test_keras_tflite_and_onnx_blocks_are_checked_before_any_job(tmp_path, network, message):
    for f in ("m.keras", "m.onnx", "m.tflite"):
        (tmp_path / f).write_bytes(b"")
    cfg = _image_list_experiment(tmp_path, {"a": network, "b": {"source": "tflite", "model": "m.tflite"}})
    with pytest.raises(ConfigError, match=message):
        plan.Plan(cfg, tmp_path)


def test_file_sources_need_no_input_size_in_the_config(tmp_path):
    """keras, tflite and onnx read their input size from the model, so image-file experiments plan without it."""
    for f in ("m.keras", "m.onnx", "m.tflite"):
        (tmp_path / f).write_bytes(b"")
    cfg = _image_list_experiment(tmp_path, {
        "k": {"source": "keras", "model": "m.keras", "input_range": [0, 255]},
        "t": {"source": "tflite", "model": "m.tflite"},
        "o": {"source": "onnx", "model": "m.onnx", "input_range": [0, 1], "mean": [0.485, 0.456, 0.406],
              "std": [0.229, 0.224, 0.225]},
        "app": {"source": "keras", "application": "EfficientNetV2B0"}})
    p = plan.Plan(cfg, tmp_path)
    assert p.preprocessing("e", "t") == {"crop_fraction": 0.875}
    assert p.experiments["e"].networks["app"].spec["weights"] == "imagenet"


def test_layers_are_refused_where_the_source_cannot_extract_them_and_their_reduction_is_filled_where_named():
    lfw = yaml.safe_load((ROOT / "configs" / "lfw.yaml").read_text())
    exp = next(iter(lfw["experiments"]))
    net, spec = next((k, v) for k, v in lfw["experiments"][exp]["networks"].items() if v["source"] == "frozen_graph")
    c = _with(("experiments", exp, "networks", net, "layers"), ["InceptionResnetV1/Repeat/block35_5/Relu"], lfw)
    with pytest.raises(ConfigError, match=rf"{exp}\.networks\.{net}\.layers: source 'frozen_graph' cannot extract "
                                          r"layers beside the embedding \(sources that can: savedmodel, tfhub, "
                                          r"checkpoint, train, keras, tflite, onnx\)"):
        plan.Plan(c, ROOT, check_paths=False)
    bare = _with(("experiments", "digits", "networks", "cnn", "layers"), KeyError)  # the demo's cnn names layers
    c = _with(("experiments", "digits", "networks", "cnn", "layer_reduction"), "max", bare)
    with pytest.raises(ConfigError, match=r"digits\.networks\.cnn\.layer_reduction: says how layers are reduced, "
                                          "but the network names no layers"):
        plan.Plan(c, ROOT)
    c = _with(("experiments", "digits", "networks", "cnn", "layers"), ["conv*"])
    assert plan.Plan(c, ROOT).network("digits", "cnn").spec["layer_reduction"] == "mean"
    assert "layer_reduction" not in plan.Plan(bare, ROOT).network("digits", "cnn").spec
    with pytest.raises(ConfigError, match=r"digits\.networks\.cnn\.layers"):
        plan.Plan(_with(("experiments", "digits", "networks", "cnn", "layers"), []), ROOT)
