"""TF Hub-format handle pairs: extraction of image files, classifiers located or recovered, random control."""

import numpy as np
import pytest

from embmap import data, stores
from embmap.data import manifest as mf
from fake_hub import tiny_hub_pair
from fake_imagenet import WNIDS, fake_imagenet

pytestmark = pytest.mark.tensorflow

N_CLASSES = len(WNIDS) + 1  # background + synsets, as the ImageNet models


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("hub")
    root = fake_imagenet(base / "imagenet", per_class=4, val_layout="flat")
    return {
        "root": root,
        "pair": tiny_hub_pair(base / "pair", d=6, n_classes=N_CLASSES, seed=1),
        "hidden": tiny_hub_pair(base / "hidden", d=6, n_classes=N_CLASSES, seed=2, locatable=False),
        "other": tiny_hub_pair(base / "other", d=6, n_classes=N_CLASSES, seed=3),
        "soft": tiny_hub_pair(base / "soft", d=6, n_classes=N_CLASSES, seed=4, locatable=False, softmax=True),
    }


def spec_of(pair, **kw):
    return {"source": "tfhub", "handle": str(pair / "feature_vector"), "classifier": str(pair / "classification"),
            "input_size": [24, 28], "input_range": [-1, 1], **kw}


def run_extract(world, spec, tmp_path, split="train", name="net", crop=0.875, **kw):
    from embmap import steps

    dataset = {"kind": "imagenet", "root": str(world["root"]), "devkit": "ILSVRC2012_devkit_t12"}
    manifest = tmp_path / "manifest.csv"
    if not manifest.exists():
        steps.prepare_split(dataset, str(manifest))
    out = tmp_path / f"{name}-{split}.zarr"
    pre = {"input_size": spec["input_size"], "crop_fraction": crop, "input_range": spec["input_range"]}
    steps.extract("exp", name, split, spec, dataset, str(manifest), str(out), chunk_rows=None, batch_size=5,
                  with_classifier=True, normalise=False, preprocessing=pre, **kw)
    return stores.open_embeddings(out), mf.read_manifest(manifest, split)


def test_pair_extracts_image_files_with_its_classifier_and_preprocessing(world, tmp_path):
    from embmap import models

    s, rows = run_extract(world, spec_of(world["pair"]), tmp_path, split="val")
    np.testing.assert_array_equal(s.ids, rows.id.to_numpy())
    np.testing.assert_array_equal(s.labels, rows.label.to_numpy())
    w, b = s.classifier()
    assert w.shape == (N_CLASSES, 6) and b.shape == (N_CLASSES,)
    c = s.group["classifier"].attrs
    assert c["method"] == "variables" and "logits" in c["kernel"]
    pre = s.attrs["preprocessing"]
    assert pre["crop_fraction"] == 0.875 and pre["input_size"] == [24, 28] and pre["input_range"] == [-1, 1]
    assert pre["resize"] == "bilinear" and s.attrs["input_size"] == [24, 28]
    # the same values as one file at a time through the network, which also gives the model's own logits
    net = models.open_model("net", spec_of(world["pair"]))
    x = data.get({"kind": "imagenet", "root": str(world["root"]), "devkit": "ILSVRC2012_devkit_t12"}).images(
        list(rows.id), (24, 28), 0.875)
    np.testing.assert_allclose(s.embeddings[:], net.features(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.embeddings[:] @ w.T + b, net.logits(x), rtol=1e-4, atol=1e-4)
    assert s.attrs["parameters"] > 0


def test_classifier_without_locatable_variables_is_recovered_by_least_squares(world, tmp_path):
    from embmap import models

    s, rows = run_extract(world, spec_of(world["hidden"]), tmp_path)
    c = s.group["classifier"].attrs
    assert c["method"] == "least_squares" and c["n_images"] == 2 * (6 + 1) <= len(rows) and c["residual"] < 1e-6
    assert c["label_offset"] == 0 and s.label_offset == 0  # the classes' own offset, not a batch's start
    w, b = s.classifier()
    net = models.open_model("net", spec_of(world["hidden"]))
    x = net.preprocess(data.get({"kind": "imagenet", "root": str(world["root"])}).images(
        list(rows.id[:5]), (24, 28), 0.875))
    np.testing.assert_allclose(net.features(x) @ w.T + b, net.logits(x), rtol=1e-4, atol=1e-4)


def test_least_squares_needs_d_plus_one_images_and_affine_logits(world, tmp_path):
    from embmap import models

    with pytest.raises(models.NetworkError, match=r"network 'net': recovering .* at least d \+ 1 = 7 images, "
                                                     r"the split has 5"):
        run_extract(world, spec_of(world["hidden"]), tmp_path, lstsq_images=5)
    with pytest.raises(models.NetworkError, match="'soft'.*not an affine function"):
        run_extract(world, spec_of(world["soft"]), tmp_path, name="soft")
    assert not (tmp_path / "soft-train.zarr").exists()


def test_handles_of_different_networks_are_refused(world, tmp_path):
    from embmap import models

    mixed = spec_of(world["pair"], classifier=str(world["other"] / "classification"))
    with pytest.raises(models.NetworkError, match="'mixed'.*do not reproduce the model's logits"):
        run_extract(world, mixed, tmp_path, name="mixed")
    assert not (tmp_path / "mixed-train.zarr").exists()


def test_a_head_without_background_gets_label_offset_one_and_other_counts_are_refused(world, tmp_path):
    """ImageNet labels are 1..1000 with background 0: a 1,000-class head (Keras, ONNX) predicts label - 1."""
    from embmap import models

    pair = tiny_hub_pair(tmp_path / "thousand", d=6, n_classes=N_CLASSES - 1)
    s, rows = run_extract(world, spec_of(pair), tmp_path, name="thousand")
    assert s.label_offset == 1 and s.group["classifier"].attrs["classes"] == N_CLASSES - 1
    s1001, _ = run_extract(world, spec_of(world["pair"]), tmp_path, name="with_background")
    assert s1001.label_offset == 0
    fewer = tiny_hub_pair(tmp_path / "fewer", d=6, n_classes=N_CLASSES - 2)
    with pytest.raises(models.NetworkError, match=r"'fewer'.*outputs 4 classes, the dataset has 6 labels .*6 with "
                                                  r"background or 5 without"):
        run_extract(world, spec_of(fewer), tmp_path, name="fewer")


def test_randomize_changes_every_variable_reproducibly_and_keeps_the_pair_consistent(world, tmp_path):
    from embmap import models

    def values(net):
        return {v.name: v.numpy().copy() for v in net.variables()}

    trained = values(models.open_model("a", spec_of(world["pair"])))
    a = models.open_model("a", spec_of(world["pair"], randomize=True, seed=5))
    b = models.open_model("b", spec_of(world["pair"], randomize=True, seed=5))
    c = models.open_model("c", spec_of(world["pair"], randomize=True, seed=6))
    ra, rb, rc = values(a), values(b), values(c)
    assert set(ra) == set(trained) and len(ra) == 10
    for name in trained:
        assert not np.allclose(ra[name], trained[name]), name
        np.testing.assert_array_equal(ra[name], rb[name])
    kernels = [n for n in ra if ra[n].ndim >= 2]
    assert kernels and all(not np.allclose(ra[n], rc[n]) for n in kernels)
    assert np.all(ra["conv/BatchNorm/moving_variance:0"] == 1) and np.all(ra["conv/BatchNorm/moving_mean:0"] == 0)
    assert a.randomized["reinitialised"] == 8 + 10  # both models hold their own copies
    # the feature and classification models were re-initialised alike: the classifier still verifies
    s, _ = run_extract(world, spec_of(world["pair"], randomize=True, seed=5), tmp_path, name="ctrl")
    assert s.attrs["randomized"]["seed"] == 5 and s.group["classifier"].attrs["method"] == "variables"


def test_kernel_initialisation_has_the_variance_scaling_spread():
    from embmap.models.randomize import initial_value

    w = initial_value("block/conv/kernel:0", (3, 3, 64, 128), seed=0)
    fan_in = 3 * 3 * 64
    assert abs(w.std() - np.sqrt(2.0 / fan_in)) < 0.02 * np.sqrt(2.0 / fan_in)
    assert np.abs(w).max() <= 2 * np.sqrt(2.0 / fan_in) / 0.8796 + 1e-6
    assert np.all(initial_value("dense/bias:0", (7,), 0) == 0)


def test_handles_that_do_not_answer_are_named(tmp_path, monkeypatch):
    from embmap import models
    from embmap.models import hub

    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    url = "http://127.0.0.1:9/google/imagenet/nothing/feature_vector/5"
    with pytest.raises(models.NetworkError, match=r"network 'gone': cannot load feature-vector handle "
                                                     r"'http://127.0.0.1:9/.*TFHUB_CACHE_DIR"):
        models.open_model("gone", {"source": "tfhub", "handle": url, "classifier": url})
    assert hub.hub_handle("google/imagenet/inception_v3/feature_vector/5") == \
        "https://tfhub.dev/google/imagenet/inception_v3/feature_vector/5"


def test_fetch_resolves_every_tfhub_handle_of_a_config(world, tmp_path):
    import yaml

    from embmap.__main__ import main

    cfg = {"experiments": {"e": {"networks": {
        "a": spec_of(world["pair"]), "b": {"source": "tfhub", "handle": "http://127.0.0.1:9/nothing/1"}}}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["fetch", str(tmp_path / "c.yaml")]) == 2
    del cfg["experiments"]["e"]["networks"]["b"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["fetch", str(tmp_path / "c.yaml")]) == 0


def test_pairing_of_feature_and_classifier_variables_by_name():
    from types import SimpleNamespace as V

    from embmap.models.randomize import pairing_key

    feats = [V(name="fv/conv/kernel:0"), V(name="fv/conv/bias:0")]
    same = [V(name="fv/conv/kernel:0"), V(name="fv/conv/bias:0"), V(name="fv/logits/kernel:0")]
    prefixed = [V(name="cls/conv/kernel:0"), V(name="cls/conv/bias:0"), V(name="cls/logits/kernel:0")]
    assert pairing_key(feats, same)("fv/conv/kernel:0") == "fv/conv/kernel"
    key = pairing_key(feats, prefixed)
    assert key("fv/conv/kernel:0") == key("cls/conv/kernel:0") == "conv/kernel"
    assert pairing_key(feats, [V(name="other/kernel:0")]) is None


def test_nasnet_controls_draw_kernels_as_tf_slims_fan_out_variance_scaling(world):
    from embmap import models
    from embmap.models.randomize import initial_value, resolve_initializer

    # tf.contrib.layers.variance_scaling_initializer(factor=2.0, mode='FAN_OUT'): fan_out = 3 * 3 * 128, a truncated
    # normal of parameter sqrt(1.3 * 2 / fan_out), whose standard deviation is 0.8796 times that
    w = initial_value("cell_0/sep/kernel:0", (3, 3, 64, 128), seed=0, initializer="fan_out")
    param = np.sqrt(1.3 * 2.0 / (3 * 3 * 128))
    assert abs(w.std() - 0.87962566 * param) < 0.02 * param and np.abs(w).max() <= 2 * param + 1e-7
    assert resolve_initializer("auto", "https://tfhub.dev/google/imagenet/pnasnet_large/feature_vector/5") == "fan_out"
    assert resolve_initializer("auto", "https://tfhub.dev/google/imagenet/nasnet_large/feature_vector/5") == "fan_out"
    assert resolve_initializer("auto", "https://tfhub.dev/google/imagenet/inception_v3/feature_vector/5") == "fan_in"
    net = models.open_model("c", spec_of(world["pair"], randomize=True, seed=5, initializer="fan_out"))
    assert net.randomized["initializer"] == "fan_out" and "FAN_OUT" in net.randomized["kernels"]
    assert models.open_model("d", spec_of(world["pair"], randomize=True)).randomized["initializer"] == "fan_in"


def test_a_handle_loads_without_importing_keras_3(world):
    """hub.KerasLayer given a path tries a Keras 2 import that pulls in all of Keras 3 and scikit-learn (seconds
    of every extraction job); the loader hands it the loaded SavedModel instead."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import embmap

    code = ("import sys; from embmap.models import hub; "
            f"m = hub.hub_model('n', {str(world['pair'] / 'feature_vector')!r}); "
            "print(len(m.features_layer.weights) > 0, 'keras' in sys.modules, 'sklearn' in sys.modules)")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(Path(embmap.__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False", "False"]


def test_a_savedmodel_without_a_call_function_is_named(tmp_path):
    import tensorflow as tf

    from embmap import models
    from embmap.models import hub

    obj = tf.Module()
    obj.f = tf.function(lambda x: x + 1.0, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(obj, str(tmp_path / "nocall"))
    with pytest.raises(models.NetworkError, match="network 'odd'.*no __call__"):
        hub.hub_model("odd", str(tmp_path / "nocall"))
