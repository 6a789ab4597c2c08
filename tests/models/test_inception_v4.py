"""Inception-v4 in Keras: the published architecture under TF-slim's checkpoint names, loaded back exactly."""

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow

SMALL = (75, 75)  # the smallest input the stride-2 VALID stages allow: a 1 x 1 grid before the pool


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    """A full Inception-v4 with random weights (BN statistics included), saved under the slim names."""
    from embmap.models import inception_v4 as iv4

    features, logits = iv4.build(SMALL)
    rng = np.random.default_rng(0)
    for v in logits.weights:
        shape = v.shape
        if "moving_variance" in v.name:
            value = rng.uniform(0.5, 2.0, shape)
        else:
            fan_in = np.prod(shape[:-1]) if len(shape) > 1 else 1
            value = rng.normal(0, 1.0 / np.sqrt(fan_in), shape)
        v.assign(value.astype(np.float32))
    prefix = tmp_path_factory.mktemp("iv4") / "inception_v4.ckpt"
    iv4.save_checkpoint(logits, prefix)
    return features, logits, prefix


def test_variables_carry_the_tf_slim_names_and_shapes(random_checkpoint):
    from embmap.models import inception_v4 as iv4

    _, logits, _ = random_checkpoint
    names = {k: tuple(v.shape) for k, v in iv4.checkpoint_names(logits).items()}
    # names and shapes as in tf-slim's nets/inception_v4.py
    assert names["InceptionV4/Conv2d_1a_3x3/weights"] == (3, 3, 3, 32)
    assert names["InceptionV4/Conv2d_1a_3x3/BatchNorm/moving_variance"] == (32,)
    assert "InceptionV4/Conv2d_1a_3x3/BatchNorm/gamma" not in names  # slim's inception batch norm has no scale
    assert names["InceptionV4/Mixed_4a/Branch_1/Conv2d_0b_1x7/weights"] == (1, 7, 64, 64)
    assert names["InceptionV4/Mixed_5e/Branch_3/Conv2d_0b_1x1/weights"] == (1, 1, 384, 96)
    assert names["InceptionV4/Mixed_6a/Branch_1/Conv2d_1a_3x3/weights"] == (3, 3, 224, 256)
    assert names["InceptionV4/Mixed_6h/Branch_2/Conv2d_0e_1x7/weights"] == (1, 7, 224, 256)
    assert names["InceptionV4/Mixed_7a/Branch_1/Conv2d_1a_3x3/weights"] == (3, 3, 320, 320)
    assert names["InceptionV4/Mixed_7d/Branch_2/Conv2d_0c_1x3/weights"] == (1, 3, 448, 512)
    assert names["InceptionV4/Logits/Logits/weights"] == (1536, 1001)
    assert names["InceptionV4/Logits/Logits/biases"] == (1001,)
    # 149 convolutions with weights, beta, moving mean and variance, plus the logits layer
    assert len(names) == 149 * 4 + 2
    # about 42.7 million parameters (Table 1: 43M), moving statistics excluded
    params = sum(np.prod(s) for k, s in names.items() if "moving_" not in k)
    assert 42.5e6 < params < 42.8e6


def test_checkpoint_loads_back_with_identical_outputs(random_checkpoint):
    from embmap import models

    features, logits, prefix = random_checkpoint
    net = models.open_model("iv4", {"source": "checkpoint", "architecture": "inception_v4",
                                        "checkpoint": str(prefix)}, preprocessing={"input_size": list(SMALL)})
    assert net.input_range == (-1.0, 1.0) and net.input_size == SMALL
    x = np.random.default_rng(1).uniform(0, 1, (3, *SMALL, 3)).astype(np.float32)
    x11 = 2 * x - 1
    f = net.features(x)
    assert f.shape == (3, 1536)
    np.testing.assert_array_equal(f, features(x11).numpy())
    np.testing.assert_array_equal(net.logits(x), logits(x11).numpy())
    w, b, info = net.classifier(x)
    assert w.shape == (1001, 1536) and info["kernel"].startswith("Logits/Logits")


def test_randomize_reinitialises_every_variable_of_the_checkpoint_network(random_checkpoint):
    from embmap.models import inception_v4 as iv4
    from embmap import models

    _, logits, prefix = random_checkpoint
    spec = {"source": "checkpoint", "architecture": "inception_v4", "checkpoint": str(prefix), "randomize": True,
            "seed": 0}
    net = models.open_model("ctrl", spec, preprocessing={"input_size": list(SMALL)})
    before = iv4.checkpoint_names(logits)
    after = iv4.checkpoint_names(net.logits_layer)
    assert all(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)
    assert net.randomized["reinitialised"] == len(before)


def test_missing_variables_name_the_checkpoint(tmp_path):
    import tensorflow as tf

    from embmap import models

    prefix = tmp_path / "other.ckpt"
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=["InceptionV3/Conv2d_1a_3x3/weights"],
                      shape_and_slices=[""], tensors=[tf.zeros((3, 3, 3, 32))])
    with pytest.raises(models.NetworkError, match=r"network 'iv4': checkpoint .*other.ckpt: 598 of 598 "
                                                     r"Inception-v4 variables missing, first: InceptionV4/"):
        models.open_model("iv4", {"source": "checkpoint", "architecture": "inception_v4",
                                      "checkpoint": str(prefix)}, preprocessing={"input_size": list(SMALL)})
