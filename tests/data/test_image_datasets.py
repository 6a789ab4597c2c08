"""ILSVRC2012 layouts, the 1001-class label convention, image lists and the decoding pipeline."""

import shutil

import numpy as np
import pandas as pd
import pytest

from embmap import data
from embmap.data import manifest as mf
from fake_imagenet import DEVKIT_ORDER, VAL_WNIDS, WNIDS, fake_imagenet, write_loc_solution


def expected_val_labels():
    """Labels by the models' convention, re-derived: 1 + position of the WNID in sorted order."""
    return [1 + sorted(WNIDS).index(w) for w in VAL_WNIDS]


def val_rows(m):
    v = m[m.split == "val"].copy()
    v["num"] = v.id.str.extract(r"val_(\d{8})").astype(int)
    return v.sort_values("num")


def test_flat_val_with_devkit_ground_truth_maps_devkit_ids_to_wnid_order(tmp_path):
    root = fake_imagenet(tmp_path / "in", val_layout="flat", synsets_file=False)
    ds = data.get({"kind": "imagenet", "root": str(root), "devkit": "ILSVRC2012_devkit_t12"})
    m = ds.manifest()
    assert ds.n_classes == len(WNIDS) + 1
    v = val_rows(m)
    assert list(v.label) == expected_val_labels()
    # the devkit's own ids are a different numbering: using them as labels would be wrong
    devkit_ids = [DEVKIT_ORDER.index(w) + 1 for w in VAL_WNIDS]
    assert list(v.label) != devkit_ids
    t = m[m.split == "train"]
    assert len(t) == 3 * len(WNIDS)
    assert (t.label == t.id.str.split("/").str[1].map(lambda w: 1 + sorted(WNIDS).index(w))).all()
    assert set(m.columns) >= {"id", "label", "split", "wnid"}


def test_devkit_folder_in_the_root_is_found_without_config(tmp_path):
    root = fake_imagenet(tmp_path / "in", val_layout="flat", synsets_file=False)
    m = data.get({"kind": "imagenet", "root": str(root)}).manifest()
    assert list(val_rows(m).label) == expected_val_labels()


def test_flat_val_with_loc_solution_csv(tmp_path):
    root = fake_imagenet(tmp_path / "in", val_layout="flat", devkit=False)
    write_loc_solution(root / "LOC_val_solution.csv")
    m = data.get({"kind": "imagenet", "root": str(root)}).manifest()
    assert list(val_rows(m).label) == expected_val_labels()


def test_val_as_wnid_folders(tmp_path):
    root = fake_imagenet(tmp_path / "in", val_layout="folders", devkit=False)
    m = data.get({"kind": "imagenet", "root": str(root)}).manifest()
    assert list(val_rows(m).label) == expected_val_labels()
    assert val_rows(m).id.iloc[0] == f"val/{VAL_WNIDS[0]}/ILSVRC2012_val_00000001.JPEG"


def test_per_class_subset_is_deterministic_by_seed(tmp_path):
    root = fake_imagenet(tmp_path / "in", per_class=6, val_layout="folders", devkit=False)
    spec = {"kind": "imagenet", "root": str(root), "per_class": 2, "seed": 3}
    a = data.get(spec).manifest()
    b = data.get(spec).manifest()
    pd.testing.assert_frame_equal(a, b)
    assert (a.groupby(["split", "label"]).size() <= 2).all()
    assert (a[a.split == "train"].groupby("label").size() == 2).all()
    others = [set(data.get({**spec, "seed": s}).manifest().id) for s in range(4, 9)]
    assert any(o != set(a.id) for o in others)
    full = data.get({"kind": "imagenet", "root": str(root)}).manifest()
    assert set(a.id) <= set(full.id)


def test_folder_not_in_the_synset_list_is_named(tmp_path):
    root = fake_imagenet(tmp_path / "in", val_layout="folders", devkit=False)
    (root / "train" / "n09999999").mkdir()
    with pytest.raises(data.DatasetError, match=r"train/n09999999: WNID 'n09999999' is not in the synset list"):
        data.get({"kind": "imagenet", "root": str(root)}).manifest()


def test_val_ground_truth_count_disagreeing_with_images_is_named(tmp_path):
    root = fake_imagenet(tmp_path / "in", val_layout="flat")
    (root / "val" / "ILSVRC2012_val_00000010.JPEG").unlink()
    with pytest.raises(data.DatasetError, match=r"ground_truth.txt: 10 val labels but 9 images"):
        data.get({"kind": "imagenet", "root": str(root), "devkit": "ILSVRC2012_devkit_t12"}).manifest()


def test_devkit_ids_without_meta_mat_are_refused(tmp_path):
    root = fake_imagenet(tmp_path / "in", val_layout="flat")
    gt = root / "ILSVRC2012_devkit_t12" / "data" / "ILSVRC2012_validation_ground_truth.txt"
    (root / "gt.txt").write_text(gt.read_text())
    shutil.rmtree(root / "ILSVRC2012_devkit_t12")
    with pytest.raises(data.DatasetError, match="gt.txt: holds devkit ILSVRC2012_IDs.*meta.mat"):
        data.get({"kind": "imagenet", "root": str(root), "val_labels": "gt.txt"}).manifest()


def test_flat_val_without_ground_truth_is_refused(tmp_path):
    root = fake_imagenet(tmp_path / "in", val_layout="flat", devkit=False)
    with pytest.raises(data.DatasetError, match="images lie flat but no ground-truth file"):
        data.get({"kind": "imagenet", "root": str(root)}).manifest()


@pytest.mark.tensorflow
def test_crop_and_resize_match_an_independent_computation(tmp_path):
    from PIL import Image

    from embmap.data import images

    x = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    Image.fromarray(x).save(tmp_path / "a.png")
    # central half: rows 2..5, columns 3..8; resized to its own size it stays the same pixels
    got = images.load(tmp_path / "a.png", (4, 6), crop_fraction=0.5)
    np.testing.assert_allclose(got, x[2:6, 3:9] / 255.0, atol=1e-6)
    # a 2x downscale with bilinear (half-pixel centres) averages 2x2 blocks
    got = images.load(tmp_path / "a.png", (4, 6), crop_fraction=1.0)
    blocks = x.reshape(4, 2, 6, 2, 3).astype(float).mean(axis=(1, 3)) / 255.0
    np.testing.assert_allclose(got, blocks, atol=1e-6)


@pytest.mark.tensorflow
def test_pipeline_matches_one_file_at_a_time_and_names_a_corrupt_file(tmp_path):
    from embmap.data import images

    root = fake_imagenet(tmp_path / "in", val_layout="folders", devkit=False)
    ds = data.get({"kind": "imagenet", "root": str(root)})
    ids = list(ds.manifest().id)
    got = np.concatenate([b for _, b in mf.batches(ds, np.asarray(ids), 4,
                                                         {"input_size": [16, 20], "crop_fraction": 0.875})])
    assert got.shape == (len(ids), 16, 20, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, ds.images(ids, (16, 20), 0.875), atol=1e-6)
    bad = root / ids[9]
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(images.ImageError, match=str(bad)):
        list(mf.batches(ds, np.asarray(ids), 4, {"input_size": [16, 20], "crop_fraction": 0.875}))
    with pytest.raises(images.ImageError, match=f"{bad}: cannot decode"):
        images.decode_file(bad)
    with pytest.raises(images.ImageError, match="nowhere.JPEG: cannot read"):
        images.decode_file(root / "nowhere.JPEG")


def test_image_list_reads_paths_labels_and_splits(tmp_path):
    from fake_imagenet import jpeg

    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        jpeg(tmp_path / "imgs" / f"{i}.jpg", rng)
        rows.append((f"imgs/{i}.jpg", i % 3))
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(tmp_path / "list.csv", index=False)
    m = data.get({"kind": "image_list", "path": str(tmp_path / "list.csv"), "test_size": 0.5}).manifest()
    assert sorted(m.split.unique()) == ["test", "train"] and len(m) == 12
    assert (m.groupby("split").label.nunique() == 3).all()
    with_split = pd.DataFrame(rows, columns=["path", "label"]).assign(split=["a", "b"] * 6)
    with_split.to_csv(tmp_path / "split.csv", index=False)
    m = data.get({"kind": "image_list", "path": str(tmp_path / "split.csv"), "per_class": 1}).manifest()
    assert (m.groupby(["split", "label"]).size() == 1).all()
    pd.DataFrame([("imgs/missing.jpg", 0)], columns=["path", "label"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(data.DatasetError, match="missing.jpg"):
        data.get({"kind": "image_list", "path": str(tmp_path / "bad.csv")}).manifest()


def test_digits_are_read_as_scikit_learn_reads_them():
    """The digits file is parsed without importing scikit-learn, to the same values and order."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from sklearn.datasets import load_digits as sklearn_digits

    from embmap.data.digits import load_digits

    images, target = load_digits()
    d = sklearn_digits()
    np.testing.assert_array_equal(images, d.images)
    np.testing.assert_array_equal(target, d.target)
    assert images.dtype == d.images.dtype and images.shape == (1797, 8, 8)
    code = ("import sys; from embmap import data; ds = data.get({'kind': 'digits'}); ds.images(['digits/0001']); "
            "print('sklearn' in sys.modules)")
    workflow = str(Path(data.__file__).resolve().parents[2])  # the folder holding embmap/
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": workflow})
    assert out.stdout.strip() == "False"


def test_digits_fall_back_to_scikit_learns_loader_when_its_file_moves(monkeypatch):
    import importlib.util

    from embmap.data import digits

    want_images, want_target = digits.load_digits()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    images, target = digits.load_digits()
    np.testing.assert_array_equal(images, want_images)
    np.testing.assert_array_equal(target, want_target)


@pytest.mark.parametrize("mistake, says", [
    ("missing", r"dataset\.path: .*list\.csv: 1 listed file\(s\) do not exist, first: .*imgs/gone\.jpg"),
    ("twice", r"dataset\.path: .*list\.csv: 'imgs/0\.jpg' is listed twice"),
    ("split", r"dataset\.path: .*list\.csv: no image of split 'test' \(its split column holds a, b\); check "
              r"fit_split and eval_split"),
    ("columns", r"dataset\.path: .*list\.csv: missing column\(s\) \['label'\]"),
    ("none", None),
])
def test_an_image_list_mistake_is_found_by_the_plan_before_any_job(tmp_path, mistake, says):
    """A missing photo or a wrong split name used to surface only when a job ran; a dry run now names it."""
    from fake_imagenet import jpeg

    from embmap import plan
    from embmap.config import ConfigError

    rng = np.random.default_rng(1)
    rows = []
    for i in range(4):
        jpeg(tmp_path / "imgs" / f"{i}.jpg", rng)
        rows.append({"path": f"imgs/{i}.jpg", "label": i % 2, "split": "ab"[i % 2]})
    t = pd.DataFrame(rows)
    if mistake == "missing":
        t.loc[2, "path"] = "imgs/gone.jpg"
    if mistake == "twice":
        t.loc[3, "path"] = "imgs/0.jpg"
    if mistake == "columns":
        t = t.drop(columns=["label"])
    t.to_csv(tmp_path / "list.csv", index=False)
    splits = {"fit_split": "a", "eval_split": "test" if mistake == "split" else "b"}
    c = {"experiments": {"e": {"task": "closed_set", "dataset": {"kind": "image_list", "path": str(tmp_path / "list.csv")},
                               **splits, "networks": {k: {"source": "tfhub", "input_size": [64, 64],
                                                          "handle": f"google/imagenet/{k}/feature_vector/5",
                                                          "classifier": f"google/imagenet/{k}/classification/5"}
                                                      for k in ("inception_v3", "mobilenet_v2")}}}}
    if says is None:
        assert plan.Plan(c, tmp_path).experiments["e"].splits == ["a", "b"]  # a good list passes
        return
    with pytest.raises(ConfigError, match=says):
        plan.Plan(c, tmp_path)


def test_an_image_list_declares_its_label_space_so_heads_with_and_without_background_compare(tmp_path):
    """Issue 26: with no way to say what the labels of one's own photos are, a 1,001-class TF Hub head could not
    be compared with 1,000-class heads on an image_list. n_classes and background say it, as ImageNet's kind does."""
    from fake_imagenet import jpeg

    from embmap import plan, stores
    from embmap.config import ConfigError

    rng = np.random.default_rng(2)
    rows = []
    for i in range(6):
        jpeg(tmp_path / "imgs" / f"{i}.jpg", rng)
        rows.append({"path": f"imgs/{i}.jpg", "label": 1 + i % 1000, "split": "ab"[i % 2]})
    pd.DataFrame(rows).to_csv(tmp_path / "list.csv", index=False)
    spec = {"kind": "image_list", "path": str(tmp_path / "list.csv"), "n_classes": 1001, "background": 0}
    ds = data.get(spec)
    assert (ds.n_classes, ds.background) == (1001, 0)
    assert stores.label_offset(1001, ds.n_classes, ds.background) == 0  # TF Hub: class k is label k
    assert stores.label_offset(1000, ds.n_classes, ds.background) == 1  # no background class: label k + 1
    assert len(ds.manifest()) == 6
    with pytest.raises(data.DatasetError, match=r"label\(s\) outside -1 \.\. 2 \(dataset.n_classes 3\), first 3"):
        data.get({**spec, "n_classes": 3}).manifest()
    c = {"experiments": {"e": {"task": "closed_set", "fit_split": "a", "eval_split": "b",
                               "dataset": {k: v for k, v in spec.items() if k != "n_classes"},
                               "networks": {k: {"source": "tfhub", "input_size": [64, 64],
                                                "handle": f"google/imagenet/{k}/feature_vector/5",
                                                "classifier": f"google/imagenet/{k}/classification/5"}
                                            for k in ("inception_v3", "mobilenet_v2")}}}}
    with pytest.raises(ConfigError, match=r"dataset\.background: a background label needs n_classes"):
        plan.Plan(c, tmp_path)
