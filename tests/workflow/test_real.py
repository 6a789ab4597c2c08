"""The tier marked ``real``: networks someone else trained, on photos someone else took, through embmap's code.

Weights and photos come from packages of the package index (tests/real_assets.py): EfficientNet-Lite3
(int8 TFLite) read by source ``tflite``; the Keras FaceNet (InceptionResNetV1, 128-d) read by ``keras``;
SFace (MobileFaceNet, 128-d ONNX) read by ``onnx``; ai-benchmark's classification photos and the
5-celebrity photos (five people, 14-22 photos each, and 5 held out each). What it proves and what it
cannot is in docs/testing.md ("Real weights").
"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from real_assets import path as asset

pytestmark = [pytest.mark.real, pytest.mark.tensorflow]

# ai-benchmark's photos 0-11, each of one obvious ImageNet class (looked at, not taken from a model)
PHOTOS = {0: "flamingo", 1: "birdhouse", 2: "African elephant", 3: "lesser panda", 4: "giant panda",
          5: "anemone fish", 6: "goldfinch", 7: "library", 8: "indigo bunting", 9: "bow tie", 10: "bullet train",
          11: "jay"}


def test_efficientnet_lite3_read_by_tflite_reproduces_its_outputs_and_names_what_the_photos_show(tmp_path):
    from embmap import config, steps, stores
    from embmap.evaluate import network_table

    labels = asset("efficientnet_labels").read_text().splitlines()
    assert len(labels) == 1000

    def index(name):
        (i,) = [k for k, line in enumerate(labels) if line.split(",")[0] == name]
        return i

    photos = asset("classification_photos")
    pd.DataFrame({"path": [str(photos / f"{i}.jpg") for i in PHOTOS], "label": [index(n) for n in PHOTOS.values()],
                  "split": "test"}).to_csv(tmp_path / "photos.csv", index=False)
    dataset = config.defaults("dataset", {"kind": "image_list", "path": str(tmp_path / "photos.csv")})
    steps.prepare_split(dataset, str(tmp_path / "manifest.csv"))
    spec = config.defaults("network", {"source": "tflite", "model": str(asset("efficientnet_lite3"))})
    steps.extract("real", "lite3", "test", spec, dataset, str(tmp_path / "manifest.csv"), str(tmp_path / "s.zarr"),
                  chunk_rows=None, batch_size=6, with_classifier=True, normalise=False,
                  preprocessing={"input_size": [280, 280], "crop_fraction": 0.875})
    s = stores.open_embeddings(tmp_path / "s.zarr")
    c = dict(s.group["classifier"].attrs)
    # C, b dequantised from the FULLY_CONNECTED op reproduce its int8 logits within one quantisation step
    assert c["method"] == "variables" and c["quantised"] and "int8 output quantisation" in c["tolerance"]
    assert c["kernel"].endswith("head/dense/MatMul") and s.dim == 1280 and s.label_offset == 0
    assert s.attrs["input_size"] == [280, 280] and s.attrs["preprocessing"]["input_quantisation"]["zero_point"] == 130
    top1, n = network_table.top1(s)  # C f + b from the store names the class of every photo
    w, b = s.classifier()
    named = [labels[k] for k in np.argmax(s.embeddings[:] @ w.T + b, axis=1)]
    print(f"\nEfficientNet-Lite3: top-1 {top1:.3f} on {n} photos, max logit error {c['max_logit_error']:.4f}; {named}")
    assert top1 == 1.0, named


class Augmented:
    """Aligned face crops, and for ids ``ID#flip`` and ``ID#zoom`` the crop mirrored or its centre enlarged."""

    def __init__(self, aligned):
        self.aligned = aligned

    def images(self, ids):
        import tensorflow as tf

        x = self.aligned.images([i.split("#")[0] for i in ids])
        for k, i in enumerate(ids):
            if i.endswith("#flip"):
                x[k] = x[k, :, ::-1]
            elif i.endswith("#zoom"):
                side = x.shape[1]
                x[k] = tf.image.resize(tf.image.central_crop(x[k], 0.9), (side, side)).numpy()
        return x


@pytest.fixture(scope="module")
def faces_world(tmp_path_factory):
    """The celebrity photos in LFW's layout, MTCNN detections, facenet and arcface crops, both networks' stores:
    split ``fit`` (the train photos, their flips and zooms) and ``held_out`` (the val photos)."""
    from embmap import models
    from embmap.data import faces
    from embmap.data.lfw import LFW
    from embmap.extract import extract

    src = asset("celebrity_faces")
    root = tmp_path_factory.mktemp("real_faces")
    people = sorted(p.name for p in (src / "train").iterdir())
    ids, labels, split = [], [], []
    for who, person in enumerate(people):
        name = person.title()
        (root / "lfw" / name).mkdir(parents=True)
        files = [("fit", f) for f in sorted((src / "train" / person).iterdir())]
        files += [("held_out", f) for f in sorted((src / "val" / person).iterdir())]
        for k, (part, f) in enumerate(files, start=1):
            shutil.copy(f, root / "lfw" / name / f"{name}_{k:04d}.jpg")
            ids.append(f"{name}/{name}_{k:04d}.jpg")
            labels.append(who)
            split.append(part)
    ids, labels, split = np.array(ids), np.array(labels), np.array(split)
    ds = LFW(root / "lfw", root / "pairs.txt")
    from mtcnn import MTCNN

    detector = MTCNN()
    rows = [faces.detection_row(i, ds.image(i).shape, faces.detect([ds.image(i)], detector)[0]) for i in ids]
    table = pd.DataFrame(rows, columns=faces.DETECTION_COLUMNS)
    specs = {
        "facenet": ({"source": "keras", "model": str(asset("facenet_keras")), "classifier": "none",
                     "standardize": "per_image", "safe_mode": False}, {"style": "facenet"}),
        "sface": ({"source": "onnx", "model": str(asset("sface")), "classifier": "none", "input_range": [0, 255]},
                  {"style": "arcface"}),
    }
    fit = np.flatnonzero(split == "fit")
    fit_ids = np.concatenate([ids[fit], [f"{i}#flip" for i in ids[fit]], [f"{i}#zoom" for i in ids[fit]]])
    fit_labels = np.concatenate([labels[fit]] * 3)
    held = np.flatnonzero(split == "held_out")
    out = {"ids": ids, "labels": labels, "split": split, "detected": table.detected.to_numpy(bool), "stores": {}}
    for key, (spec, align) in specs.items():
        crops = root / f"{align['style']}.zarr"
        faces.write_crops(ds, table, align, crops)
        net = models.open_model(key, spec)
        data = Augmented(faces.AlignedImages(crops))
        for part, part_ids, part_labels in (("fit", fit_ids, fit_labels), ("held_out", ids[held], labels[held])):
            store = root / key / f"{part}.zarr"
            extract(net, data, part_ids, part_labels, store, chunk_rows=None, batch_size=32, with_classifier=False,
                    normalise=True, progress=False)
            out["stores"][(key, part)] = store
    return out


def _pairs(labels):
    i, j = np.triu_indices(len(labels), 1)
    return i, j, labels[i] == labels[j]


def test_mtcnn_finds_the_faces_and_each_network_puts_a_persons_photos_closer_than_other_peoples(faces_world):
    from embmap import stores
    from embmap.evaluate.common import cosine
    from sklearn.metrics import roc_auc_score

    w = faces_world
    print(f"\nMTCNN found a face in {w['detected'].sum()} of {len(w['detected'])} photos")
    assert w["detected"].mean() > 0.95, f"MTCNN found faces in {w['detected'].mean():.0%} of the photos"
    for key in ("facenet", "sface"):
        s = stores.open_embeddings(w["stores"][(key, "held_out")])
        assert s.dim == 128 and s.attrs["l2_normalised"]
        f = s.embeddings[:].astype(np.float64)
        i, j, same = _pairs(s.labels)
        cos = cosine(f[i], f[j])
        auc = roc_auc_score(same, cos)
        print(f"\n{key}: cosine same person {cos[same].mean():.3f}, different people {cos[~same].mean():.3f}, "
              f"AUC {auc:.3f} over {len(cos)} held-out pairs")
        assert cos[same].mean() > cos[~same].mean() + 0.3 and auc > 0.9


def test_a_real_cross_network_map_facenet_sface_verifies_held_out_photos(faces_world, tmp_path):
    """Ridge maps FaceNet (Keras) <-> SFace (ONNX) fitted on the fit photos and their flips and zooms, without
    labels, then LFW-style verification of the held-out photos through each map: f_A(x1) mapped, f_B(x2) as is."""
    from embmap import stores
    from embmap.evaluate.common import cosine
    from embmap.evaluate.verification import best_threshold
    from embmap.fit import gram, ridge
    from sklearn.metrics import roc_auc_score

    w = faces_world
    names = ("facenet", "sface")
    fit = stores.open_matched({k: w["stores"][(k, "fit")] for k in names})
    stores.write_blocks(tmp_path / "blocks.zarr", gram.cross_products({k: s.embeddings for k, s in fit.items()}))
    blocks = stores.open_blocks(tmp_path / "blocks.zarr")
    held = stores.open_matched({k: w["stores"][(k, "held_out")] for k in names})
    feats = {k: s.embeddings[:].astype(np.float64) for k, s in held.items()}
    fit_feats = {k: s.embeddings[:].astype(np.float64) for k, s in fit.items()}
    n_orig = len(fit_feats["facenet"]) // 3  # the fit photos themselves, without flips and zooms
    i, j, same = _pairs(held["facenet"].labels)
    fi, fj, fsame = _pairs(fit["facenet"].labels[:n_orig])
    figures = {}
    for a, b in (("facenet", "sface"), ("sface", "facenet")):
        m = ridge.fit_maps(blocks, a, [b], 1.0)[b]
        for method, mapped, mapped_fit in (("ridge", m(feats[a]), m(fit_feats[a][:n_orig])),
                                           ("identity", feats[a], fit_feats[a][:n_orig])):
            d_fit = 1 - cosine(mapped_fit[fi], fit_feats[b][:n_orig][fj])
            threshold, _ = best_threshold(d_fit, fsame)  # chosen on the fit photos, applied to the held-out ones
            d = 1 - cosine(mapped[i], feats[b][j])
            acc = float(np.mean((d <= threshold) == same))
            figures[f"{a}->{b} {method}"] = {"auc": float(roc_auc_score(same, -d)), "accuracy": acc,
                                             "fit_r2": float(m.attrs["fit_r2"])}
    print("\n" + json.dumps(figures, indent=1))
    for a, b in (("facenet", "sface"), ("sface", "facenet")):
        assert figures[f"{a}->{b} ridge"]["auc"] > 0.9, figures
        assert figures[f"{a}->{b} ridge"]["accuracy"] > 0.8, figures
        assert figures[f"{a}->{b} identity"]["auc"] < 0.75, figures  # the two 128-d spaces are not alike unmapped
