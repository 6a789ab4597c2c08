"""SavedModels read through tensorflow_hub.KerasLayer: classifier located and verified, stores written."""

import numpy as np
import pytest

from embmap import data, stores
from helpers import train_demo

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def exported(tmp_path_factory):

    out = tmp_path_factory.mktemp("models")
    ds = data.get({"kind": "digits", "seed": 0})
    m = ds.manifest()
    train = m[m.split == "train"].iloc[:300]
    for arch, seed in (("mlp", 1), ("separable", 2)):
        train_demo({"architecture": arch, "width": 16, "epochs": 2, "seed": seed},
                       ds.images(list(train.id)), train.label.to_numpy(), 10, out / arch, log=lambda *_: None)
    return out, ds, m


def test_classifier_is_located_by_shape_and_reproduces_logits(exported):
    from embmap import models

    out, ds, m = exported
    net = models.open_model("mlp", {"source": "train"}, model_dir=str(out / "mlp"))
    x = ds.images(list(m.id[:40]))
    w, b, info = net.classifier(x)
    assert w.shape == (10, 16) and b.shape == (10,)
    assert "logits" in info["kernel"]
    np.testing.assert_allclose(net.features(x) @ w.T + b, net.logits(x), rtol=1e-4, atol=1e-4)


def test_mismatched_feature_and_classifier_handles_are_refused(exported):
    from embmap import models
    from embmap.models import hub

    out, ds, m = exported
    net = hub.hub_model("mixed", str(out / "mlp" / "feature_vector"), str(out / "separable" / "classification"))
    with pytest.raises(models.NetworkError, match="'mixed'.*do not reproduce"):
        net.classifier(ds.images(list(m.id[:40])))


def test_unloadable_handle_names_the_network(tmp_path):
    from embmap import models
    from embmap.models import hub

    (tmp_path / "empty").mkdir()
    with pytest.raises(models.NetworkError, match="network 'broken': cannot load"):
        hub.hub_model("broken", str(tmp_path / "empty"))


def test_extract_writes_a_complete_store_chunk_by_chunk(exported, tmp_path):
    from embmap import models
    from embmap.extract import extract as extract_store

    out, ds, m = exported
    rows = m[m.split == "test"].iloc[:101]
    net = models.open_model("sep", {"source": "train"}, model_dir=str(out / "separable"))
    extract_store(net, ds, rows.id.to_numpy(), rows.label.to_numpy(), tmp_path / "t.zarr", chunk_rows=32,
                     batch_size=20, attrs={"split": "test"}, progress=False)
    s = stores.open_embeddings(tmp_path / "t.zarr")
    assert s.embeddings.chunks == (32, 16) and s.n == 101
    np.testing.assert_array_equal(s.ids, rows.id.to_numpy())
    np.testing.assert_allclose(s.embeddings[:], net.features(ds.images(list(rows.id))), rtol=1e-5, atol=1e-6)
    assert s.attrs["network"] == "sep" and s.attrs["split"] == "test" and s.attrs["input_size"] == [8, 8]
    assert s.has_classifier


def test_resize_and_channels_preprocessing(exported):
    from embmap.models import hub

    out, *_ = exported
    net = hub.hub_model("n", str(out / "mlp" / "feature_vector"), input_size=(16, 16), channels=3,
                           input_range=(-1, 1))
    x = net.preprocess(np.ones((2, 8, 8, 1), np.float32)).numpy()
    assert x.shape == (2, 16, 16, 3) and np.allclose(x, 1.0)
    x0 = net.preprocess(np.zeros((1, 8, 8, 1), np.float32)).numpy()
    assert np.allclose(x0, -1.0)


def test_same_seed_trains_the_same_network(tmp_path):
    from embmap import models

    ds = data.get({"kind": "digits"})
    m = ds.manifest().iloc[:200]
    x, y = ds.images(list(m.id)), m.label.to_numpy()
    for k in "ab":
        train_demo({"architecture": "cnn", "width": 8, "epochs": 1, "seed": 7}, x, y, 10, tmp_path / k,
                       log=lambda *_: None)
    fa = models.open_model("a", {"source": "train"}, model_dir=str(tmp_path / "a")).features(x[:16])
    fb = models.open_model("b", {"source": "train"}, model_dir=str(tmp_path / "b")).features(x[:16])
    np.testing.assert_array_equal(fa, fb)


@pytest.mark.parametrize("arch", ["mlp", "cnn", "resnet", "separable"])
def test_export_reads_back_as_keras_own_savedmodel_does(arch, tmp_path):
    """The lean export (one traced call) and Keras' SavedModel give the same outputs bit for bit and the same
    variables through hub.KerasLayer."""
    import tensorflow as tf
    import tensorflow_hub as hub

    from embmap.models import demo

    feat, _ = demo.build(arch, (8, 8, 1), 10, 8, seed=3)
    rng = np.random.default_rng(0)
    for v in feat.variables:  # away from the initial values (batch norm's moving statistics included)
        v.assign(v.numpy() + 0.1 * rng.standard_normal(v.shape).astype(np.float32))
    demo.export(feat, tmp_path / "lean")
    tf.saved_model.save(feat, str(tmp_path / "keras"))
    lean, keras = hub.KerasLayer(str(tmp_path / "lean")), hub.KerasLayer(str(tmp_path / "keras"))
    x = rng.random((33, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(lean(x).numpy(), keras(x).numpy())
    assert sorted(v.name for v in lean.weights) == sorted(v.name for v in keras.weights)
    assert sum(int(np.prod(v.shape)) for v in lean.weights) == feat.count_params()
