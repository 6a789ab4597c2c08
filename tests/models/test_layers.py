"""Layers extracted beside the embedding, source by source: one forward pass gives, bit for bit, what separate
extractions of each layer give, the embedding is unchanged, each layer is its output reduced as recorded, and names
that do not exist are refused with the nearest ones."""

import numpy as np
import pytest

from embmap import models, stores
from embmap.contract import EMBEDDING
from embmap.extract import extract
from test_file_sources import _tflite

pytestmark = pytest.mark.tensorflow


def images(n=7, size=16, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3)).astype(np.float32)


class _Pixels:
    def __init__(self, x):
        self.x = x

    def images(self, ids):
        return self.x[[int(i) for i in ids]]


def _store(spec, x, path, layers=None, workers=1, with_classifier=True, model_dir=None, **kw):
    net = models.open_model("net", {**spec, **({"layers": layers} if layers else {}), **kw}, model_dir=model_dir)
    ids = np.array([str(i) for i in range(len(x))])
    extract(net, _Pixels(x), ids, np.zeros(len(x), int), path, chunk_rows=3, batch_size=2,
            with_classifier=with_classifier and net.has_logits, progress=False, workers=workers)
    return stores.open_embeddings(path)


def one_pass_equals_separate(spec, x, names, tmp_path, **kw):
    """The store with every layer of ``names`` (two batches at a time), checked bit for bit against the store
    without layers and the store of each layer alone; returns it."""
    together = _store(spec, x, tmp_path / "all.zarr", names, workers=2, **kw)
    plain = _store(spec, x, tmp_path / "plain.zarr", **kw)
    assert plain.layers == []
    np.testing.assert_array_equal(together.embeddings[:], plain.embeddings[:])
    if plain.has_classifier:
        np.testing.assert_array_equal(together.classifier()[0], plain.classifier()[0])
    for i, name in enumerate(together.layers):
        alone = _store(spec, x, tmp_path / f"{i}.zarr", [name], **kw)
        assert alone.layers == [name]
        np.testing.assert_array_equal(together.as_layer(name).embeddings[:], alone.as_layer(name).embeddings[:])
        assert together.as_layer(name).layer_attrs == alone.as_layer(name).layer_attrs
    return together


# -- keras ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3), name="image")
    c1 = keras.layers.Conv2D(4, 3, activation="relu", name="block1_conv")(inp)
    c2 = keras.layers.Conv2D(6, 3, strides=2, activation="relu", name="block2_conv")(c1)
    pool = keras.layers.GlobalAveragePooling2D(name="pool")(c2)
    head = keras.layers.Dense(5, name="head")(pool)
    model = keras.Model(inp, head)
    path = tmp_path_factory.mktemp("keras") / "m.keras"
    model.save(path)
    return {"source": "keras", "model": str(path), "input_range": [0, 1]}, model


def test_keras_layers_come_from_the_forward_pass_of_the_embedding(keras_file, tmp_path):
    import keras

    spec, model = keras_file
    x = images()
    s = one_pass_equals_separate(spec, x, ["block*_conv", "pool"], tmp_path)
    assert s.layers == ["block1_conv", "block2_conv", "pool"]  # the pattern's matches in the model's order
    conv = keras.Model(model.inputs, model.get_layer("block2_conv").output)(x).numpy()
    np.testing.assert_allclose(s.as_layer("block2_conv").embeddings[:], conv.mean(axis=(1, 2)), rtol=1e-5,
                               atol=1e-6)
    a = s.as_layer("block2_conv").layer_attrs
    assert a["reduction"] == "mean" and a["pooled_axes"] == [1, 2] and a["shape"] == [6, 6, 6] and a["dim"] == 6
    assert s.as_layer("pool").layer_attrs["reduction"] == "none"  # a vector already
    np.testing.assert_array_equal(s.as_layer("pool").embeddings[:], s.embeddings[:])  # pool is the embedding
    maxed = _store(spec, x, tmp_path / "max.zarr", ["block1_conv"], layer_reduction="max")
    conv1 = keras.Model(model.inputs, model.get_layer("block1_conv").output)(x).numpy()
    np.testing.assert_allclose(maxed.as_layer("block1_conv").embeddings[:], conv1.max(axis=(1, 2)), rtol=1e-6)
    assert maxed.as_layer("block1_conv").layer_attrs["reduction"] == "max"


def test_keras_layer_names_that_do_not_exist_list_the_nearest(keras_file):
    spec, _ = keras_file
    with pytest.raises(models.NetworkError, match=r"network 'net': has no layer 'block2_cnv' \(layers\); nearest: "
                                                  r"block2_conv, block1_conv; its layers: block1_conv, block2_conv, "
                                                  r"pool, head"):
        models.open_model("net", {**spec, "layers": ["block2_cnv"]})
    with pytest.raises(models.NetworkError, match=r"the pattern 'stage\*' \(layers\) matches none of its layers"):
        models.open_model("net", {**spec, "layers": ["stage*"]})
    with pytest.raises(models.NetworkError, match=r"'embedding' names the embedding itself"):
        models.open_model("net", {**spec, "layers": ["embedding"]})


# -- tflite --------------------------------------------------------------------------
@pytest.mark.parametrize("quantised", [True, False])
def test_tflite_layers_are_tensors_of_the_same_invocation(tmp_path, quantised):
    spec = {"source": "tflite", "model": _tflite(tmp_path / "m.tflite", quantised, convs=(5, 6))[0]}
    net = models.open_model("net", spec)
    maps = [n for n in net.layer_names() if len(net.details[net._by_name[n]]["shape"]) == 4]
    assert len(maps) >= 2, net.layer_names()
    x = images(5, 12, seed=2)
    s = one_pass_equals_separate(spec, x, maps[-2:], tmp_path)
    assert s.layers == maps[-2:]
    # each is its tensor, dequantised, averaged over its positions
    it = net.interpreter
    for name in s.layers:
        i, want = net._by_name[name], []
        for image in np.asarray(net.preprocess(x), np.float64):
            it.set_tensor(net.input["index"], net._feed(image))
            it.invoke()
            want.append(models.tflite.dequantize(it.get_tensor(i), net.details[i])[0].mean(axis=(0, 1)))
        np.testing.assert_allclose(s.as_layer(name).embeddings[:], np.array(want, np.float32), rtol=1e-6)
        assert s.as_layer(name).layer_attrs["reduction"] == "mean"
    with pytest.raises(models.NetworkError, match=r"network 'net': has no tensor 'nope' \(layers\).*its tensors: "):
        models.open_model("net", {**spec, "layers": ["nope"]})


# -- onnx ----------------------------------------------------------------------------
def _onnx(path, batch_one: bool):
    """NCHW [N, 3, 6, 6] -> Conv 'conv' -> Relu 'act' -> GlobalAveragePool 'gap' -> Flatten 'feat' -> Gemm
    'logits'."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((5, 4)).astype(np.float32)
    b2 = rng.standard_normal(5).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["act"], name="relu"),
             helper.make_node("GlobalAveragePool", ["act"], ["gap"], name="gap"),
             helper.make_node("Flatten", ["gap"], ["feat"], name="flatten"),
             helper.make_node("Gemm", ["feat", "w2", "b2"], ["logits"], name="head", transB=1)]
    batch = 1 if batch_one else "N"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 6, 6])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 5])],
                              [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (w2, "w2"), (b2, "b2"))])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return {"source": "onnx", "model": str(path), "input_range": [0, 255]}


@pytest.mark.parametrize("batch_one", [True, False])
def test_onnx_layers_are_outputs_of_the_same_session_run_pooled_over_their_channel_first_positions(
        tmp_path, batch_one):
    pytest.importorskip("onnxruntime")
    spec = _onnx(tmp_path / "m.onnx", batch_one)
    x = images(5, 6, seed=4)
    s = one_pass_equals_separate(spec, x, ["conv", "act", "feat"], tmp_path)
    # the Relu's map averaged over its positions (axes 2, 3 of NCHW) is the pooled embedding
    np.testing.assert_allclose(s.as_layer("act").embeddings[:], s.embeddings[:], rtol=1e-5, atol=1e-6)
    assert s.as_layer("act").layer_attrs["pooled_axes"] == [2, 3] and s.as_layer("act").layer_attrs["shape"] == \
        [4, 6, 6]
    np.testing.assert_array_equal(s.as_layer("feat").embeddings[:], s.embeddings[:])  # the embedding's own tensor
    with pytest.raises(models.NetworkError, match=r"has no tensor 'gpa' \(layers\); nearest: gap"):
        models.open_model("net", {**spec, "layers": ["gpa"]})


# -- checkpoint (Inception-v4) -----------------------------------------------------------
def test_inception_v4_layers_are_its_block_outputs_by_their_slim_scopes(tmp_path):
    from embmap.models import inception_v4 as iv4

    _, logits = iv4.build((75, 75))
    rng = np.random.default_rng(0)
    for v in logits.weights:
        value = (rng.uniform(0.5, 2.0, v.shape) if "moving_variance" in v.name
                 else rng.normal(0, 1.0 / np.sqrt(np.prod(v.shape[:-1]) if len(v.shape) > 1 else 1), v.shape))
        v.assign(value.astype(np.float32))
    iv4.save_checkpoint(logits, tmp_path / "inception_v4.ckpt")
    spec = {"source": "checkpoint", "architecture": "inception_v4", "checkpoint": str(tmp_path / "inception_v4.ckpt"),
            "input_size": [75, 75]}
    net = models.open_model("iv4", {**spec, "layers": ["Mixed_??/concat"]})
    assert net.layers[0] == "Mixed_3a/concat" and net.layers[-1] == "Mixed_7d/concat" and len(net.layers) == 19
    x = images(3, 75, seed=5)
    s = one_pass_equals_separate(spec, x, ["Mixed_6a/concat", "Mixed_7d/concat"], tmp_path)
    # the last block's output averaged over its grid is the embedding (PreLogitsFlatten of its average pool)
    np.testing.assert_allclose(s.as_layer("Mixed_7d/concat").embeddings[:], s.embeddings[:], rtol=1e-5, atol=1e-6)
    assert s.as_layer("Mixed_6a/concat").dim == 1024


# -- train (the demo's networks) and savedmodel ------------------------------------------------
@pytest.fixture(scope="module")
def demo_networks(tmp_path_factory):
    from embmap import data
    from helpers import train_demo

    out = tmp_path_factory.mktemp("demo")
    ds = data.get({"kind": "digits", "seed": 0})
    m = ds.manifest()
    train = m[m.split == "train"].iloc[:200]
    for arch in ("cnn", "resnet"):
        train_demo({"architecture": arch, "width": 8, "epochs": 1, "seed": 1}, ds.images(list(train.id)),
                   train.label.to_numpy(), 10, out / arch, log=lambda *_: None)
    return out, ds.images(list(m.id[:7]))


@pytest.mark.parametrize("arch,layers,pooled", [("cnn", ["conv*", "flatten"], "conv2"),
                                                ("resnet", ["block?_add", "stem"], "block2_add")])
def test_demo_networks_give_their_named_layers_from_the_savedmodels_layers_function(demo_networks, tmp_path, arch,
                                                                                    layers, pooled):
    import tensorflow as tf

    out, x = demo_networks
    model_dir = str(out / arch)
    net = models.open_model("net", {"source": "train", "train": {"architecture": arch}, "layers": layers},
                            model_dir=model_dir)
    assert EMBEDDING not in net.layer_names() and pooled in net.layer_names()
    # a pattern's matches come in the model's order (the SavedModel's layer_order), not its dict's
    want = {"cnn": ["conv1", "conv2", "flatten"], "resnet": ["block1_add", "block2_add", "stem"]}[arch]
    assert list(net.layers) == want
    assert net.layer_names()[:2] == {"cnn": ["conv1", "conv2"], "resnet": ["stem", "block1_bn1"]}[arch]
    trained = one_pass_equals_separate({"source": "train", "train": {"architecture": arch}}, x, layers,
                                       tmp_path, model_dir=model_dir)
    (tmp_path / "savedmodel").mkdir()
    s = one_pass_equals_separate({"source": "savedmodel", "handle": f"{model_dir}/feature_vector",
                                  "classifier": f"{model_dir}/classification"}, x, layers, tmp_path / "savedmodel")
    for name in s.layers:  # the savedmodel source reads the same function
        np.testing.assert_array_equal(s.as_layer(name).embeddings[:], trained.as_layer(name).embeddings[:])
    assert s.layers == list(net.layers)
    saved = tf.saved_model.load(f"{model_dir}/feature_vector")
    every = saved.layers(net.preprocess(x))
    np.testing.assert_allclose(s.as_layer(pooled).embeddings[:], every[pooled].numpy().mean(axis=(1, 2)), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("source", ["savedmodel", "tfhub"])
def test_a_savedmodel_without_a_layers_function_is_refused_naming_the_network(tmp_path, source):
    from fake_hub import tiny_hub_pair

    out = tiny_hub_pair(tmp_path / "hub")
    with pytest.raises(models.NetworkError, match=r"network 'tf_hub_like': the SavedModel .*feature_vector exposes no "
                                                  r"layers \(it has no function 'layers'"):
        models.open_model("tf_hub_like", {"source": source, "handle": str(out / "feature_vector"),
                                          "layers": ["conv"]})
