"""Face alignment with MTCNN and the face networks' loaders (frozen graphs, arcface-tf2 checkpoints)."""

import numpy as np
import pandas as pd
import pytest

from embmap import models
from embmap.data import faces
from embmap.data.lfw import LFW
from embmap.models import arcface
from helpers import fabricated_lfw, snakemake

pytestmark = pytest.mark.tensorflow


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    ang, s, t = 0.3, 1.7, np.array([4.0, -9.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = s * src @ rot.T + t
    m = faces.similarity_transform(src, dst)
    np.testing.assert_allclose(m, np.hstack([s * rot, t[:, None]]), atol=1e-10)


def test_facenet_crop_is_align_dataset_mtcnns_clipped_box_resized_without_keeping_the_aspect():
    from PIL import Image

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)
    # box x=5, y=10, w=40, h=20, margin 32: left max(5-16, 0)=0, top max(10-16, 0)=0, right min(45+16, 120)=61,
    # bottom min(30+16, 100)=46 (worked by hand from facenet's script)
    assert faces.facenet_box((5, 10, 40, 20), img.shape, 32) == (0, 0, 61, 46)
    # fractional bounds are truncated as facenet's int32 array does: 50.5-16=34.5 -> 34, 80.7+16=96.7 -> 96
    assert faces.facenet_box((50.5, 20.2, 30.2, 10.1), img.shape, 32) == (34, 4, 96, 46)
    c = faces.facenet_crop(img, (5, 10, 40, 20), size=50, margin=32)
    want = np.asarray(Image.fromarray(img[0:46, 0:61]).resize((50, 50), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(c, want)
    # the aspect is not kept: a 61 x 46 region fills the whole 50 x 50 crop
    band = np.zeros((100, 120, 3), np.uint8)
    band[30:50, 40:80] = 255  # exactly the box, margin 0
    assert faces.facenet_crop(band, (40, 30, 40, 20), size=32, margin=0).min() == 255


def test_several_faces_are_chosen_as_facenet_chooses_them():
    def face(x, y, w, h):
        return {"box": [x, y, w, h], "confidence": 0.99, "keypoints": {}}

    # 200 x 300 image, centre (150, 100). A large face off-centre: area 3600, centre (40, 40), offset^2 = 15700;
    # a small centred face: area 900, offset 0. facenet scores area - 2 offset^2: the small centred one wins.
    big, small = face(10, 10, 60, 60), face(135, 85, 30, 30)
    assert faces.choose_face([big, small], (200, 300, 3)) is small
    # near the centre, the larger face wins: centre offsets (5, 0) and (0, 0), areas 3600 and 900
    near = face(125, 70, 60, 60)
    assert faces.choose_face([small, near], (200, 300, 3)) is near
    assert faces.choose_face([], (200, 300, 3)) is None


@pytest.mark.parametrize("scale,angle", [(0.5, 0.0), (0.8, 0.3), (1.0, 0.0), (1.7, -0.2), (3.0, 0.1)])
def test_warp_samples_the_image_where_the_transform_says(scale, angle):
    """Crop pixel c shows image position A^-1 (c - t), pixel centres at integer indices (OpenCV's convention)."""
    yy, xx = np.mgrid[0:40, 0:40]
    img = np.repeat((2 * xx + 3 * yy)[..., None], 3, axis=2).astype(np.uint8)  # a ramp: bilinear is exact on it
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    a = scale * rot
    t = np.array([20.0, 20.0]) - a @ np.array([19.5, 19.5])  # the image centre onto crop position (20, 20)
    crop = faces._warp(img, np.hstack([a, t[:, None]]), 40)
    ci, cj = np.mgrid[0:40, 0:40]
    c = np.stack([cj.ravel(), ci.ravel()], 1).astype(float)  # (x, y) of every crop pixel
    p = (c - t) @ np.linalg.inv(a).T  # where it comes from in the image
    inside = ((p >= 1) & (p <= 38)).all(1)
    assert inside.sum() > 100
    want = 2 * p[inside, 0] + 3 * p[inside, 1]
    got = crop[..., 0].ravel()[inside].astype(float)
    assert np.abs(got - want).max() <= 1.01  # uint8 rounding of the interpolated value


@pytest.fixture(scope="module")
def astronaut_detection():
    from skimage import data

    img = data.astronaut()
    return img, faces.detect([img, np.zeros((120, 120, 3), np.uint8)])


def test_mtcnn_finds_the_astronauts_face_and_crops_have_the_right_size(astronaut_detection):
    img, (face, none) = astronaut_detection
    assert none is None
    assert face["confidence"] > 0.9
    x, y, w, h = face["box"]
    assert 150 < x + w / 2 < 300 and 50 < y + h / 2 < 200  # the face in the top middle of the 512 x 512 photo
    det = faces.detection_of(pd.Series(faces.detection_row("astronaut", img.shape, face)))
    fn = faces.crop(img, det, {"style": "facenet"})
    assert fn.shape == (160, 160, 3) and fn.dtype == np.uint8
    af = faces.crop(img, det, {"style": "arcface"})
    assert af.shape == (112, 112, 3)
    # the landmarks land near the template (a similarity cannot fit a real face exactly)
    m = faces.similarity_transform(det.landmarks, faces.ARCFACE_TEMPLATE)
    moved = det.landmarks @ m[:, :2].T + m[:, 2]
    assert np.linalg.norm(moved - faces.ARCFACE_TEMPLATE, axis=1).max() < 7.0
    # and the crop shows what the image shows there: the left eye's pixel
    ex, ey = det.landmarks[0].round().astype(int)
    tx, ty = faces.ARCFACE_TEMPLATE[0].round().astype(int)
    near = img[ey - 2:ey + 3, ex - 2:ex + 3].reshape(-1, 3).astype(int)
    assert np.abs(near - af[ty, tx].astype(int)).sum(1).min() < 60


def test_images_without_a_face_fall_back_to_a_centre_crop(tmp_path):

    root = tmp_path / "lfw" / "Blank"
    root.mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (250, 250), (90, 90, 90)).save(root / "Blank_0001.jpg")
    rows = pd.DataFrame([faces.detection_row("Blank/Blank_0001.jpg", (250, 250, 3), None)])
    ds = LFW(tmp_path / "lfw", tmp_path / "pairs.txt")
    n = faces.write_crops(ds, rows, {"style": "arcface"}, tmp_path / "a.zarr")
    assert n == 1
    a = faces.AlignedImages(tmp_path / "a.zarr")
    assert a.attrs["fallbacks"] == 1 and a.attrs["style"] == "arcface"
    x = a.images(["Blank/Blank_0001.jpg"])
    assert x.shape == (1, 112, 112, 3) and abs(float(x.mean()) - 90 / 255) < 0.02
    det = faces.centre_detection(250, 250)
    assert det.box.tolist() == [62.5, 62.5, 125.0, 125.0] and not det.detected


def test_a_frozen_graph_is_loaded_back_with_identical_outputs(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w = rng.standard_normal((16 * 16 * 3, 8)).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 16, 16, 3], name="input")
        phase = tf.compat.v1.placeholder_with_default(True, [], name="phase_train")
        h = tf.matmul(tf.reshape(x, [-1, 16 * 16 * 3]), tf.constant(w))
        h = tf.cond(phase, lambda: h * 0.0, lambda: h)  # training mode would zero everything
        emb = tf.math.l2_normalize(h, 1, name="embeddings")
    (tmp_path / "g.pb").write_bytes(g.as_graph_def().SerializeToString())
    net = models.open_model("facenet", {"source": "frozen_graph", "graph": str(tmp_path / "g.pb"),
                                              "input_size": [16, 16]})
    images = rng.random((3, 16, 16, 3)).astype(np.float32)
    got = net.features(images)
    feed = net.preprocess(images).numpy()  # facenet's fixed standardisation (255 x - 127.5) / 128
    np.testing.assert_allclose(feed, (255 * images - 127.5) / 128, atol=1e-5)
    assert net.preprocess(np.zeros((1, 40, 40, 3), np.float32)).shape == (1, 16, 16, 3)
    with tf.compat.v1.Session(graph=g) as s:
        want = s.run(emb, {x: feed, phase: False})
    np.testing.assert_array_equal(got, want)
    with pytest.raises(models.NetworkError, match=r"'facenet': the graph .* has no tensor 'emb:0'"):
        models.open_model("facenet", {"source": "frozen_graph", "graph": str(tmp_path / "g.pb"), "output": "emb:0"})


def test_an_arcface_checkpoint_is_restored_with_identical_outputs(tmp_path):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(3)
    model = arcface.arcface_model("MobileNetV2", 112, 512)
    # perturb batch-norm statistics so restoring them matters
    for v in model.variables:
        if "moving" in v.name:
            v.assign(tf.random.uniform(v.shape, 0.5, 1.5))
    (tmp_path / "ckpt").mkdir()
    model.save_weights(str(tmp_path / "ckpt" / "e_8_b_40000.ckpt"))
    images = np.random.default_rng(1).random((2, 112, 112, 3)).astype(np.float32)
    want = model(images, training=False).numpy()
    net = models.open_model("mm", {"source": "arcface", "backbone": "MobileNetV2",
                                         "checkpoint": str(tmp_path / "ckpt")})
    got = net.features(images)
    assert got.shape == (2, 512)
    np.testing.assert_array_equal(got, want)
    with pytest.raises(models.NetworkError, match="'bad': no checkpoint"):
        models.open_model("bad", {"source": "arcface", "checkpoint": str(tmp_path / "nowhere")})


def test_an_arcface_checkpoint_without_some_variables_is_refused(tmp_path):
    """A checkpoint of the backbone alone restores 'successfully' in TF; the missing head must be an error."""
    import tf_keras as k

    model = arcface.arcface_model("MobileNetV2", 32, 8)
    backbone_only = k.Model(model.inputs, model.layers[1](model.inputs[0]))
    backbone_only.save_weights(str(tmp_path / "ckpt" / "b.ckpt"))
    with pytest.raises(models.NetworkError, match=r"'partial': checkpoint .* leaves 10 variables of arcface "
                                                  r"MobileNetV2 \(embedding 8\) unrestored, "
                                                  r"e\.g\. .*(dense|batch_norm)"):
        models.open_model("partial", {"source": "arcface", "backbone": "MobileNetV2", "embedding": 8,
                                      "input_size": [32, 32], "checkpoint": str(tmp_path / "ckpt" / "b.ckpt")})


def random_frozen_graph(path, size, dim, seed):
    """A facenet-like frozen graph: input:0, phase_train:0, embeddings:0; a fixed random projection."""
    import tensorflow as tf

    w = np.random.default_rng(seed).standard_normal((size * size * 3, dim)).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, size, size, 3], name="input")
        tf.compat.v1.placeholder_with_default(False, [], name="phase_train")
        tf.math.l2_normalize(tf.matmul(tf.reshape(x, [-1, size * size * 3]), tf.constant(w)), 1, name="embeddings")
    path.write_bytes(g.as_graph_def().SerializeToString())
    return str(path)


@pytest.mark.workflow
def test_lfw_tree_through_mtcnn_alignment_and_frozen_graphs_end_to_end(tmp_path):
    import json

    from PIL import Image
    from skimage import data

    from embmap.data import pairs as pf

    root = fabricated_lfw(tmp_path / "lfw", people=(("Ann", 3), ("Bob", 3), ("Cy", 2)))
    (root / "Eileen_Collins").mkdir()
    photo = Image.fromarray(data.astronaut()).resize((250, 250))
    photo.save(root / "Eileen_Collins" / "Eileen_Collins_0001.jpg")
    photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "Eileen_Collins" / "Eileen_Collins_0002.jpg")
    pairs = pf.make_pairs({"Ann": 3, "Bob": 3, "Cy": 2, "Eileen_Collins": 2}, 2, 3, seed=0)
    pf.write_pairs(tmp_path / "pairs.txt", pairs)
    n_images = len(pairs.images())
    cfg = {"experiments": {"faces": {
        "task": "open_set", "dataset": {"kind": "lfw", "root": str(root), "pairs": str(tmp_path / "pairs.txt")},
        "identification": {"folds": 2},
        "networks": {
            "fn": {"source": "frozen_graph", "graph": random_frozen_graph(tmp_path / "fn.pb", 32, 6, 0),
                   "input_size": [32, 32], "align": {"style": "facenet", "size": 32, "margin": 8}, "flip": True},
            "af": {"source": "frozen_graph", "graph": random_frozen_graph(tmp_path / "af.pb", 24, 6, 1),
                   "input_size": [24, 24], "input_range": [0, 1], "align": {"style": "arcface", "size": 24}},
        }}}}
    snakemake(tmp_path, cfg)
    res = tmp_path / "results" / "faces"
    det = pd.read_csv(res / "data" / "faces.csv")
    assert len(det) == n_images
    found = set(det[det.detected].id)
    assert {i for i in pairs.images() if i.startswith("Eileen")} <= found
    meta = json.loads((res / "tables" / "open_set.json").read_text())
    fallbacks = n_images - len(found)
    assert meta["networks"]["fn"]["alignment"]["fallbacks"] == fallbacks
    assert meta["networks"]["af"]["alignment"]["style"] == "arcface"
    assert meta["networks"]["fn"]["l2_normalised"] is True
    assert meta["networks"]["fn"]["flip"] is True and meta["networks"]["af"]["flip"] is False
    crops = faces.AlignedImages(res / "aligned" / "facenet32m8.zarr")
    assert crops.images(pairs.images()[:2]).shape == (2, 32, 32, 3)
    assert (res / "aligned" / "arcface24.zarr").exists()
    log = (res / "logs" / "align_faces" / "facenet32m8.log").read_text()
    assert f"{fallbacks} centre-crop fallbacks" in log
    t = pd.read_csv(res / "tables" / "open_set.csv")
    assert len(t[t.method == "ridge"]) == 2 and len(t[t.method == "identity"]) == 2
    assert (res / "figures" / "identification_heatmap.png").exists()


def test_test_time_flip_adds_the_mirrored_crops_embedding_before_normalising(tmp_path):
    from embmap import stores
    from embmap.extract import extract

    class Crops:
        def __init__(self, x):
            self.x = x

        def images(self, ids):
            return self.x[[int(i) for i in ids]]

    x = np.random.default_rng(4).random((5, 24, 24, 3)).astype(np.float32)
    net = models.open_model("f", {"source": "frozen_graph", "graph": random_frozen_graph(tmp_path / "g.pb", 24, 6, 2),
                                  "input_size": [24, 24]})
    ids = np.array([str(i) for i in range(5)])
    extract(net, Crops(x), ids, np.zeros(5, int), tmp_path / "s.zarr", chunk_rows=None, batch_size=2,
            with_classifier=False, normalise=True, progress=False, flip=True)
    s = stores.open_embeddings(tmp_path / "s.zarr")
    want = net.features(x) + net.features(x[:, :, ::-1].copy())  # arcface-tf2's is_flip: the two embeddings added
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(s.embeddings[:], want, rtol=1e-5, atol=1e-6)
    assert s.attrs["flip"] is True


def test_per_image_standardization_is_facenets_prewhiten(tmp_path):
    """standardize: per_image (the Keras FaceNet ports expect it): (x - mean) / max(std, 1 / sqrt(pixels))."""
    net = models.open_model("pw", {"source": "frozen_graph", "graph": random_frozen_graph(tmp_path / "g.pb", 8, 4, 0),
                                   "input_size": [8, 8], "standardize": "per_image"})
    x = np.random.default_rng(0).random((2, 8, 8, 3)).astype(np.float32)
    got = net.preprocess(x).numpy()
    y = (255 * x - 127.5) / 128  # the frozen graph's input_range first; prewhitening does not depend on it
    want = (y - y.mean(axis=(1, 2, 3), keepdims=True)) / np.maximum(y.std(axis=(1, 2, 3), keepdims=True),
                                                                     1 / np.sqrt(8 * 8 * 3))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert net.input_attrs()["standardize"] == "per_image"
    flat = np.full((1, 8, 8, 3), 0.5, np.float32)  # a constant image: the 1 / sqrt(pixels) floor keeps it finite
    assert np.isfinite(net.preprocess(flat).numpy()).all()
