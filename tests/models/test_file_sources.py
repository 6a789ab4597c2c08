"""Sources keras, tflite and onnx on models these tests build: classifiers read, verified, and bad names listed."""

import numpy as np
import pytest

from embmap import models

pytestmark = pytest.mark.tensorflow


def images(n=6, size=16, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3)).astype(np.float32)


# -- keras ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """A small Keras 3 model (conv, pooled embedding 'pool', softmax head 'head') as .keras and .h5, and a
    second pooled branch 'other' that is not the head's input."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inp)
    pool = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    other = keras.layers.GlobalMaxPooling2D(name="other")(x)
    head = keras.layers.Dense(5, activation="softmax", name="head")(pool)
    model = keras.Model(inp, [head, other])
    model = keras.Model(inp, head)  # 'other' stays reachable by name through the layer graph
    root = tmp_path_factory.mktemp("keras")
    model.save(root / "m.keras")
    model.save(root / "m.h5")
    return root, model


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_a_keras_model_file_gives_its_pooled_features_and_its_dense_head(keras_files, ext):
    import keras

    root, model = keras_files
    net = models.open_model("small", {"source": "keras", "model": str(root / f"m.{ext}"), "input_range": [0, 1]})
    x = images()
    f = net.features(x)
    want = keras.Model(model.inputs, model.get_layer("pool").output)(x).numpy()
    np.testing.assert_allclose(f, want, rtol=1e-5, atol=1e-6)
    assert net.input_size == (16, 16) and net.has_logits
    w, b, info = net.classifier(x)
    head = model.get_layer("head")
    np.testing.assert_array_equal(w, head.kernel.numpy().T)
    np.testing.assert_array_equal(b, head.bias.numpy())
    assert info["layer"] == "head" and info["activation"] == "softmax" and info["max_logit_error"] < 1e-5
    # logits are the head before its softmax: softmax(logits) is the model's output
    z = net.logits(x)
    p = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(1, keepdims=True), model(x).numpy(), atol=1e-5)
    assert net.input_attrs()["input_range"] == [0.0, 1.0]
    assert net.parameters() == sum(int(np.prod(v.shape)) for v in model.weights)


def test_keras_names_that_do_not_exist_list_the_layers_and_a_wrong_feature_layer_is_caught(keras_files):
    root, _ = keras_files
    spec = {"source": "keras", "model": str(root / "m.keras"), "input_range": [0, 1]}
    with pytest.raises(models.NetworkError, match=r"'small': .*m\.keras has no layer 'poool' \(features\); its "
                                                  r"layers: image, conv, pool, head"):
        models.open_model("small", {**spec, "features": "poool"})
    with pytest.raises(models.NetworkError, match=r"classifier layer 'pool' .* is a GlobalAveragePooling2D, not a "
                                                  r"Dense layer.*classifier: none"):
        models.open_model("small", {**spec, "classifier": "pool"})
    with pytest.raises(models.NetworkError, match=r"feature layer gives shape \(14, 14, 8\)"):
        models.open_model("small", {**spec, "features": "conv"}).features(images())
    open_set = models.open_model("small", {**spec, "classifier": "none"})
    assert not open_set.has_logits and open_set.features(images()).shape == (6, 5)  # the model's output


def test_a_classifier_that_does_not_reproduce_the_outputs_names_the_network(tmp_path):
    import keras

    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    a = keras.layers.GlobalAveragePooling2D(name="mean_pool")(x)
    m = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    head = keras.layers.Dense(3, name="head")(keras.layers.Add()([a, m]))
    keras.Model(inp, head).save(tmp_path / "two.keras")
    net = models.open_model("twobranch", {"source": "keras", "model": str(tmp_path / "two.keras"),
                                          "features": "mean_pool", "input_range": [0, 1]})
    with pytest.raises(models.NetworkError, match=r"network 'twobranch': layer 'head' \(kernel, bias\) do not "
                                                  r"reproduce the model's outputs: max error"):
        net.classifier(images())


def test_a_keras_application_by_name_uses_its_preprocessing_and_its_predictions_layer():
    net = models.open_model("mnv3", {"source": "keras", "application": "MobileNetV3Small", "weights": None},
                            {"input_size": [64, 64]})
    assert net.input_size == (64, 64) and net.input_range == (0.0, 255.0)
    assert net.input_attrs()["preprocess_input"].endswith("mobilenet_v3.preprocess_input")
    x = images(2, 64)
    w, b, info = net.classifier(x)
    # MobileNetV3's head is a 1 x 1 convolution 'logits' followed by Flatten and the (here linear) activation
    assert w.shape == (1000, net.features(x).shape[1]) and info["layer"] == "logits"
    assert info["activation"] == "linear"
    with pytest.raises(models.NetworkError, match=r"keras.applications has no model 'EfficientNetV9'; it has .*"
                                                  r"ConvNeXtTiny.*EfficientNetV2B0"):
        models.open_model("typo", {"source": "keras", "application": "EfficientNetV9", "weights": None})
    kernels = [v for v in net.model.weights if len(v.shape) >= 2]
    before = {v.path: v.numpy().copy() for v in kernels}
    r = net.randomize(3, "auto")
    assert r["initializer"] == "fan_in" and r["reinitialised"] > 100
    assert all(not np.array_equal(before[v.path], v.numpy()) for v in kernels)
    same_shape = [v for v in kernels if v.shape == kernels[1].shape]  # drawn by path: no two alike
    assert len({v.numpy().tobytes() for v in same_shape}) == len(same_shape)


def test_lambda_layers_need_safe_mode_false(tmp_path):
    import keras

    inp = keras.Input((4,))
    out = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    keras.Model(inp, keras.layers.Dense(2, name="d")(out)).save(tmp_path / "lam.keras")
    spec = {"source": "keras", "model": str(tmp_path / "lam.keras"), "input_range": [0, 1], "input_size": [2, 2]}
    with pytest.raises(models.NetworkError, match=r"'lam': .*Lambda layers.*safe_mode: false"):
        models.open_model("lam", spec)


# -- tflite --------------------------------------------------------------------------
def _tflite(path, quantised: bool, convs=(6,)):
    """A 12 x 12 conv net (a 3 x 3 convolution of each of ``convs`` channels) with a pooled embedding and a
    4-class dense head, converted to TFLite (int8 or float)."""
    import tensorflow as tf
    import tf_keras as k

    k.utils.set_random_seed(1)
    inp = k.Input((12, 12, 3), batch_size=1)
    x = inp
    for channels in convs:
        x = k.layers.Conv2D(channels, 3, activation="relu")(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    out = k.layers.Dense(4)(x)
    model = k.Model(inp, out)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantised:
        rng = np.random.default_rng(0)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.random((1, 12, 12, 3), np.float32)] for _ in range(32))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())
    return str(path), model


@pytest.mark.parametrize("quantised", [True, False])
def test_a_tflite_model_gives_the_input_of_its_last_fully_connected_op_and_its_dequantised_classifier(
        tmp_path, quantised):
    path, model = _tflite(tmp_path / "m.tflite", quantised)
    net = models.open_model("lite", {"source": "tflite", "model": path})
    assert net.input_size == (12, 12)
    x = images(5, 12, seed=2)
    f, z = net.features(x), net.logits(x)
    assert f.shape == (5, 6) and z.shape == (5, 4)
    w, b, info = net.classifier(x, f, z)
    assert w.shape == (4, 6)
    dense = model.layers[-1]
    if quantised:
        # uint8 input fed as pixels 0..255: its quantisation spans the input range the file states
        lo, hi = net.input_range
        assert info["quantised"] and "int8 output quantisation" in info["tolerance"]
        scale = net.input_attrs()["input_quantisation"]["scale"]
        assert hi - lo == pytest.approx(255 * scale)
        # dequantised weights are the float ones to within their quantisation step
        np.testing.assert_allclose(w, dense.kernel.numpy().T, atol=np.abs(dense.kernel.numpy()).max() / 100)
        # and the network still computes what the float model does, to quantisation error
        pixels = np.round(x * 255) / 255
        want = model(lo + pixels * (hi - lo)).numpy()
        assert np.abs(z - want).max() < 0.1 * np.abs(want).max() + 0.05
    else:
        np.testing.assert_allclose(w, dense.kernel.numpy().T, rtol=1e-6)
        np.testing.assert_allclose(z, model(x).numpy(), rtol=1e-4, atol=1e-5)
        assert info["max_logit_error"] < 1e-4


def test_tflite_names_that_do_not_exist_are_listed(tmp_path):
    path, _ = _tflite(tmp_path / "m.tflite", True)
    with pytest.raises(models.NetworkError, match=r"'lite': .* has no tensor 'nope' \(features\); its computed "
                                                  r"tensors: .*StatefulPartitionedCall"):
        models.open_model("lite", {"source": "tflite", "model": path, "features": "nope"})
    with pytest.raises(models.NetworkError, match=r"no FULLY_CONNECTED op of .* outputs 'nope' \(classifier\)"):
        models.open_model("lite", {"source": "tflite", "model": path, "classifier": "nope"})
    with pytest.raises(models.NetworkError, match=r"takes 12 x 12 images, the config asks for 16 x 16"):
        models.open_model("lite", {"source": "tflite", "model": path, "input_size": [16, 16]})


# -- onnx ----------------------------------------------------------------------------
def _onnx(path, *, gemm=True, batch_one=True, seed=0):
    """NCHW input [N, 3, 4, 4] -> Flatten -> MatMul W1 -> Relu ('feat') -> linear ('logits') -> Softmax ('prob')."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((48, 10)).astype(np.float32)
    w2 = rng.standard_normal((7, 10)).astype(np.float32)  # Gemm with transB: [out, in]
    b2 = rng.standard_normal(7).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], name="flatten"),
             helper.make_node("MatMul", ["flat", "w1"], ["pre"], name="fc1"),
             helper.make_node("Relu", ["pre"], ["feat"], name="relu")]
    inits = [numpy_helper.from_array(w1, "w1")]
    if gemm:
        nodes.append(helper.make_node("Gemm", ["feat", "w2", "b2"], ["logits"], name="head", transB=1, alpha=0.5,
                                      beta=2.0))
        inits += [numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b2, "b2")]
        weight, bias = 0.5 * w2, 2.0 * b2
    else:
        nodes += [helper.make_node("MatMul", ["feat", "w2t"], ["mm"], name="head_mm"),
                  helper.make_node("Add", ["mm", "b2"], ["logits"], name="head_add")]
        inits += [numpy_helper.from_array(w2.T.copy(), "w2t"), numpy_helper.from_array(b2, "b2")]
        weight, bias = w2, b2
    nodes.append(helper.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=1))
    batch = 1 if batch_one else "N"
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 4, 4]),
              helper.make_tensor_value_info("w1", TensorProto.FLOAT, [48, 10])]  # an old exporter's habit
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("prob", TensorProto.FLOAT,
                                                                                 [batch, 7])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path), w1, weight, bias


@pytest.mark.parametrize("gemm,batch_one", [(True, True), (False, False)])
def test_an_onnx_model_gives_a_named_tensor_and_its_linear_classifier(tmp_path, gemm, batch_one):
    pytest.importorskip("onnxruntime")
    path, w1, weight, bias = _onnx(tmp_path / "m.onnx", gemm=gemm, batch_one=batch_one)
    spec = {"source": "onnx", "model": path, "input_range": [0, 255], "classifier": "logits"}
    net = models.open_model("tiny", spec)
    assert net.input_size == (4, 4) and net.channels_first and net.batch_one == batch_one
    x = images(3, 4)
    f = net.features(x)
    chw = (255 * x).transpose(0, 3, 1, 2).reshape(3, -1)  # pixels 0..255, channel-first, flattened
    np.testing.assert_allclose(f, np.maximum(chw @ w1, 0), rtol=1e-4, atol=1e-3)
    w, b, info = net.classifier(x)
    np.testing.assert_allclose(w, weight, rtol=1e-6)
    np.testing.assert_allclose(b, bias, rtol=1e-6)
    assert info["max_logit_error"] < 1e-3 and net.parameters() == w1.size + weight.size + bias.size
    bgr = models.open_model("tiny", {**spec, "channel_order": "bgr"})
    np.testing.assert_allclose(bgr.features(x[..., ::-1]), f, rtol=1e-5)


def test_an_onnx_model_whose_last_op_is_not_linear_says_so(tmp_path):
    pytest.importorskip("onnxruntime")
    path, *_ = _onnx(tmp_path / "m.onnx")
    spec = {"source": "onnx", "model": path, "input_range": [0, 255]}
    with pytest.raises(models.NetworkError, match=r"'tiny': the op producing 'prob' .* is Softmax \('softmax'\), "
                                                  r"not a linear layer.*classifier: none"):
        models.open_model("tiny", spec)
    with pytest.raises(models.NetworkError, match=r"no node of .* outputs 'fe4t' \(features\); its tensors: flat, "
                                                  r"pre, feat, logits, prob"):
        models.open_model("tiny", {**spec, "features": "fe4t", "classifier": "none"})
    assert models.open_model("tiny", {**spec, "classifier": "none"}).features(images(2, 4)).shape == (2, 7)
    net = models.open_model("tiny", {**spec, "classifier": "logits", "features": "pre"})  # before the Relu
    with pytest.raises(models.NetworkError, match=r"network 'tiny': the weights of Gemm 'head' do not reproduce"):
        net.classifier(images(4, 4, seed=5) - 0.5)


# -- several batches at once (extraction's workers) ---------------------------------------------------------------
class _Pixels:
    def __init__(self, x):
        self.x = x

    def images(self, ids):
        return self.x[[int(i) for i in ids]]


def _stores_with_workers(net, x, tmp_path):
    """The store of ``x`` extracted one batch at a time and three at a time."""
    from embmap import stores
    from embmap.extract import extract

    ids = np.array([str(i) for i in range(len(x))])
    out = []
    for workers in (1, 3):
        extract(net, _Pixels(x), ids, np.zeros(len(x), int), tmp_path / f"w{workers}.zarr", chunk_rows=None,
                batch_size=2, with_classifier=False, progress=False, workers=workers)
        out.append(stores.open_embeddings(tmp_path / f"w{workers}.zarr").embeddings[:])
    return out


def test_a_tflite_model_runs_batches_on_threads_each_with_its_own_interpreter(tmp_path):
    path, _ = _tflite(tmp_path / "m.tflite", False)
    net = models.open_model("lite", {"source": "tflite", "model": path})
    x = images(9, 12, seed=3)
    one, three = _stores_with_workers(net, x, tmp_path)
    np.testing.assert_array_equal(three, one)
    np.testing.assert_array_equal(one, net.features(x))


def test_an_onnx_model_runs_batches_from_threads_with_the_same_results(tmp_path):
    pytest.importorskip("onnxruntime")
    path, *_ = _onnx(tmp_path / "m.onnx", gemm=True, batch_one=False)
    net = models.open_model("tiny", {"source": "onnx", "model": path, "input_range": [0, 255], "classifier": "logits"})
    x = images(9, 4, seed=3)
    one, three = _stores_with_workers(net, x, tmp_path)
    np.testing.assert_array_equal(three, one)
    np.testing.assert_allclose(one, net.features(x), rtol=1e-5, atol=1e-5)  # another batch size
