"""Layers of networks someone else trained (tests/real_assets.py), extracted beside the embedding in one forward
pass: EfficientNet-Lite3 (int8 TFLite) and SFace (ONNX, where onnxruntime's graph optimisations could differ once
intermediate tensors are outputs) give, bit for bit, the embedding without layers and each layer alone."""

import numpy as np
import pytest

from real_assets import path as asset
from test_layers import one_pass_equals_separate

pytestmark = [pytest.mark.real, pytest.mark.tensorflow]


def photos(n=3, size=None):
    from PIL import Image

    out = []
    for i in range(n):
        image = Image.open(asset("classification_photos") / f"{i}.jpg").convert("RGB")
        out.append(np.asarray(image.resize(size) if size else image, np.float32) / 255)
    return np.stack(out)


def test_efficientnet_lite3_block_outputs_come_from_the_invocation_of_its_embedding(tmp_path):
    spec = {"source": "tflite", "model": str(asset("efficientnet_lite3"))}
    s = one_pass_equals_separate(spec, photos(3, (280, 280)), ["*/blocks_2[23]/Relu6;*",
                                                               "efficientnet-lite3/model/head/AvgPool"], tmp_path)
    assert len(s.layers) == 3 and s.layers[-1] == "efficientnet-lite3/model/head/AvgPool"
    # the head's average pool is the embedding (head/Squeeze1, the classifier's input), dequantised alike
    np.testing.assert_array_equal(s.as_layer(s.layers[-1]).embeddings[:], s.embeddings[:])
    assert s.as_layer(s.layers[0]).layer_attrs["reduction"] == "mean" and s.as_layer(s.layers[0]).dim > 100


def test_sface_layers_come_from_the_session_run_of_its_embedding(tmp_path):
    pytest.importorskip("onnxruntime")
    spec = {"source": "onnx", "model": str(asset("sface")), "input_range": [0, 255], "classifier": "none"}
    s = one_pass_equals_separate(spec, photos(3, (112, 112)), ["conv_1_relu", "bn1"], tmp_path)
    assert s.as_layer("conv_1_relu").layer_attrs["pooled_axes"] == [2, 3]  # NCHW
    assert s.as_layer("bn1").dim == s.as_layer("bn1").layer_attrs["shape"][0]
