"""Layers of networks someone else trained (tests/real_assets.py), extracted beside the embedding in one forward
pass: EfficientNet-Lite3 (int8 TFLite) and SFace (ONNX, where onnxruntime's graph optimisations could differ once
intermediate tensors are outputs) give, bit for bit, the embedding without layers and each layer alone."""

import numpy as np
import pytest

from embmap import stores
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


# -- layer by layer on real photos (issue 24, item 4) --------------------------------------------------------------
LITE3_LAYERS = {"stem": "efficientnet-lite3/model/stem/Relu6;*", "blocks_4": "*/model/blocks_4/Relu6;*",
                "blocks_12": "*/model/blocks_12/Relu6;*", "blocks_22": "*/model/blocks_22/Relu6;*"}
SFACE_LAYERS = ["conv_1_relu", "conv_6_relu", "conv_12_relu", "bn1"]
VIEWS = 5  # views of each photo: the first VIEWS - 1 fit the maps, the last is the evaluation split


def views(seed=0):
    """(photo, x0, y0, side, mirrored) of ``VIEWS`` square crops of each of ai-benchmark's 100 photos (a side of
    300-479 of their 512 pixels, anywhere, mirrored or not), in the order train (views 0..VIEWS-2 of every photo)
    then test (the last view of every photo)."""
    rng = np.random.default_rng(seed)
    boxes = []
    for i in range(100):
        for _ in range(VIEWS):
            side = int(rng.integers(300, 480))
            x0, y0 = (int(v) for v in rng.integers(0, 512 - side, 2))
            boxes.append((i, x0, y0, side, bool(rng.integers(2))))
    last = VIEWS - 1
    return [b for j, b in enumerate(boxes) if j % VIEWS != last] + [b for j, b in enumerate(boxes) if j % VIEWS == last]


def cropped(boxes, size):
    from PIL import Image

    out = []
    for i, x0, y0, side, mirrored in boxes:
        image = Image.open(asset("classification_photos") / f"{i}.jpg").convert("RGB")
        x = np.asarray(image.crop((x0, y0, x0 + side, y0 + side)).resize(size), np.float32) / 255
        out.append(x[:, ::-1] if mirrored else x)
    return np.stack(out)


class _Views:
    def __init__(self, x):
        self.x = x

    def images(self, ids):
        return self.x[[int(i.split(".")[0]) for i in ids]]


@pytest.fixture(scope="module")
def real_layered(tmp_path_factory):
    """Stores of EfficientNet-Lite3 (tflite) and SFace (onnx) with four layers each, extracted with the project's
    sources on 500 views of 100 real photos (400 train, 100 test: one unseen view of every photo), and the pass
    with layers over the train split of both and of Lite3 alone (the workflow's shard and pool steps).

    The photos come without labels (each shows one clear ImageNet class); a view is labelled by what Lite3 says of
    its whole photo, so Lite3's own accuracy on the views is below 1 and `agreement` is with its view."""
    from embmap import models, steps
    from embmap.evaluate import closed_set as cs
    from embmap.extract import extract

    root = tmp_path_factory.mktemp("real_layers")
    lite3 = {"source": "tflite", "model": str(asset("efficientnet_lite3"))}
    sface = {"source": "onnx", "model": str(asset("sface")), "input_range": [0, 255], "classifier": "none"}
    whole = models.open_model("lite3", lite3)
    ids = np.array([f"{i}.jpg" for i in range(100)])
    extract(whole, _Views(photos(100, (280, 280))), ids, np.zeros(100, int), root / "photos.zarr", chunk_rows=32,
            batch_size=8, progress=False)
    s = stores.open_embeddings(root / "photos.zarr")
    photo_label = cs.predict(np.asarray(s.embeddings[:], np.float64), s.classifier(), s.label_offset)
    boxes = views()
    n_fit = 100 * (VIEWS - 1)
    ids = np.array([f"{j}.jpg" for j in range(len(boxes))])
    labels = photo_label[[b[0] for b in boxes]]
    nets = {"lite3": (models.open_model("lite3", {**lite3, "layers": list(LITE3_LAYERS.values())}), (280, 280)),
            "sface": (models.open_model("sface", {**sface, "layers": SFACE_LAYERS}), (112, 112))}
    for name, (net, size) in nets.items():
        x = _Views(cropped(boxes, size))
        for split, rows in (("train", slice(0, n_fit)), ("test", slice(n_fit, None))):
            extract(net, x, ids[rows], labels[rows], root / name / f"{split}.zarr", chunk_rows=64, batch_size=8,
                    with_classifier=net.has_logits, progress=False)
    blocks = {}
    for tag, names in (("both", ["lite3", "sface"]), ("lite3", ["lite3"])):
        paths = {k: str(root / k / "train.zarr") for k in names}
        steps.cross_products_shard(paths, "train", 1, 1, "float64", 0, str(root / tag / "p0.zarr"), threads=2,
                                   layers=True)
        steps.cross_products([str(root / tag / "p0.zarr")], str(root / tag / "blocks.zarr"), "train", paths)
        blocks[tag] = str(root / tag / "blocks.zarr")
    return root, blocks


def _linear_cka(x, y):
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def test_layer_by_layer_cka_of_efficientnet_lite3_and_sface_on_real_photos(real_layered, tmp_path):
    """The layer x layer CKA of two real networks, re-derived from their raw layer features. What is known in
    advance: each network compared with itself peaks on the diagonal, falling off with the distance between layers;
    and the first layers of two CNNs trained for different things (objects, faces) are alike (Kornblith et al. 2019,
    Fig. 5): of all SFace's nodes Lite3's stem is closest to SFace's first layer, and the other way round."""
    from embmap.evaluate import layers as ly
    from embmap.evaluate import plots

    root, blocks = real_layered
    t = ly.layer_similarity(stores.open_blocks(blocks["both"], layers=True), ["cka"])
    feats = {}
    for name in ("lite3", "sface"):
        s = stores.open_embeddings(root / name / "train.zarr")
        feats[name] = {"embedding": np.asarray(s.embeddings[:], np.float64),
                       **{k: np.asarray(s.as_layer(k).embeddings[:], np.float64) for k in s.layers}}
    assert len(feats["lite3"]) == len(feats["sface"]) == 5 and len(t) == 15 + 25 + 15
    cka = {}
    for r in t.itertuples():
        want = _linear_cka(feats[r.source][r.source_layer], feats[r.target][r.target_layer])
        assert r.value == pytest.approx(want, abs=1e-9), (r.source, r.source_layer, r.target, r.target_layer)
        cka[(r.source, r.source_layer, r.target, r.target_layer)] = cka[
            (r.target, r.target_layer, r.source, r.source_layer)] = r.value
    lite = stores.open_embeddings(root / "lite3" / "train.zarr").layers + ["embedding"]  # shallow to deep
    sface = SFACE_LAYERS + ["embedding"]
    for net, order in (("lite3", lite), ("sface", sface)):
        for i, a in enumerate(order):
            row = [cka[(net, a, net, b)] for b in order]
            assert row[i] == pytest.approx(1.0, abs=1e-9) and max(row[:i] + row[i + 1:]) < 0.95
        # the first layer resembles its neighbour more than the network's last two nodes
        first = [cka[(net, order[0], net, b)] for b in order[1:]]
        assert first[0] > 2 * max(first[-2:]), (net, first)
    stem, conv1 = lite[0], sface[0]
    assert max(sface, key=lambda b: cka[("lite3", stem, "sface", b)]) == conv1
    assert max(lite, key=lambda a: cka[("lite3", a, "sface", conv1)]) == stem
    assert cka[("lite3", stem, "sface", conv1)] > 0.8 > max(cka[("lite3", lite[-1], "sface", b)] for b in sface)
    # the figure names the layers by what differs (TFLite's fused names would fill the ticks)
    fig = plots.layer_similarity_figure(t, ["lite3", "sface"])
    try:
        ticks = [x.get_text() for x in fig.axes[0].get_yticklabels()]
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    assert ticks[0] == "stem/Relu6" and ticks[-1] == "embedding"


def test_an_early_layer_of_lite3_maps_to_its_classes_worse_than_its_last(real_layered, tmp_path):
    """Maps from every layer of EfficientNet-Lite3 into its embedding, read by its own classifier on views it never
    saw (the workflow's `layers` step, ridge at the schema's alpha): the stem's 32 pooled channels carry the class
    of a view far worse than the last block's 1,392, with intervals that do not meet."""
    import pandas as pd

    from embmap import steps

    root, blocks = real_layered
    steps.layers(blocks["lite3"], {"lite3": str(root / "lite3" / "test.zarr")}, str(tmp_path / "sim.csv"),
                 str(tmp_path / "maps.csv"), ["cka"], {}, {"ridge": {"alpha": 1.0}}, None)
    t = pd.read_csv(tmp_path / "maps.csv")
    ridge = t[t.method == "ridge"].set_index("source_layer")
    stem, last = (ridge.loc[ridge.index.str.contains(k)].iloc[0] for k in ("/stem/", "/blocks_22/"))
    assert (stem.source_dim, last.source_dim) == (32, 1392) and stem.n == last.n == 100
    assert stem.accuracy_high < last.accuracy_low and last.accuracy > 0.8 > 0.5 > stem.accuracy
    assert stem.agreement < last.agreement and stem.r2 < last.r2
    native = t[t.method == "native"].iloc[0]
    assert 0.8 < native.accuracy <= 1.0  # Lite3 on its views against what it says of the whole photo
