"""The store contract: every bad store is refused naming the store and what is wrong, before any number.

Stores are written with Zarr directly (not ``write_embeddings``, which refuses
most of these defects itself), as a user's own code would. The property test
draws sets of bring-your-own stores with any combination of defects and checks
that the run's checks (the plan's metadata checks, then the ``check_stores``
job's) refuse exactly the sets with a defect that would make a number wrong,
naming the network at fault, and that every accepted set evaluates to finite
numbers over exactly its labelled samples.
"""

import json

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embmap import contract, plan, stores
from embmap.config import ConfigError
from embmap.evaluate import closed_set
from embmap.fit.linear import LinearMap
from helpers import raw_store


def _good(tmp_path, name="a", split="test", n=12, d=4, classes=3, seed=0, **kw):
    rng = np.random.default_rng(seed)
    labels = kw.pop("labels", np.arange(n) % classes)
    ids = kw.pop("ids", np.array([f"{split}/{i}" for i in range(n)]))
    cls = kw.pop("classifier", (rng.standard_normal((classes, d)), rng.standard_normal(classes)))
    return raw_store(tmp_path / name / f"{split}.zarr", kw.pop("emb", rng.standard_normal((n, d)).astype(np.float32)),
                     ids, labels, cls, **kw)


# -- one store: metadata, attributes, layout ----------------------------------------------
@pytest.mark.parametrize("attrs,message", [
    ({}, r"not marked complete \(no 'complete' attribute\).*write_embeddings"),
    ({"complete": "false"}, r"'complete' is \"false\" \(a str\); it must be the boolean true"),
    ({"complete": "true"}, r"'complete' is \"true\" \(a str\)"),
    ({"complete": 1}, r"'complete' is 1 \(a int\)"),
    ({"complete": False}, r"'complete' is false"),
    ({"complete": True, "preprocessing": "bicubic resize to 224"},
     r"attribute 'preprocessing' is \"bicubic resize to 224\" \(a str\); it must be a mapping or null, e\.g\."),
    ({"complete": True, "preprocessing": {"crop_fraction": 1.5}}, r"'preprocessing\.crop_fraction' is 1\.5"),
    ({"complete": True, "preprocessing": {"input_range": [1, 0]}}, r"'preprocessing\.input_range' is \[1, 0\]"),
    ({"complete": True, "input_size": [224]}, r"attribute 'input_size' is \[224\]; it must be \[height, width\]"),
    ({"complete": True, "input_size": ["224", "224"]}, r"attribute 'input_size'"),
    ({"complete": True, "parameters": True}, r"attribute 'parameters' is true \(a bool\)"),
    ({"complete": True, "parameters": -5}, r"attribute 'parameters' is -5"),
    ({"complete": True, "randomized": "yes"}, r"attribute 'randomized'"),
    ({"complete": True, "handle": 3}, r"attribute 'handle' is 3"),
    ({"complete": True, "format_version": 3}, r"written by a newer embmap"),
    ({"complete": True, "split": "train"}, r"its attribute split is 'train', but it is read as split 'test'"),
])
def test_attributes_are_refused_naming_the_store_and_the_attribute(tmp_path, attrs, message):
    path = _good(tmp_path, attrs=attrs)
    with pytest.raises(stores.StoreError, match=message) as e:
        contract.check_store(path, "test")
    assert str(path) in str(e.value)


def test_attributes_the_workflow_does_not_read_are_kept_whatever_they_hold(tmp_path):
    path = _good(tmp_path, attrs={"complete": True, "spec": "anything", "dataset": [1, 2], "mine": {"x": None},
                                  "preprocessing": {"description": "torchvision transforms", "crop_fraction": None},
                                  "randomized": None, "network": "resnet", "split": "test"},
                 classifier_attrs={"method": "trained with SGD", "extra": [1]})
    meta = contract.check_store(path, "test", need_classifier=True)
    assert meta.n == 12 and meta.dim == 4 and meta.classes == 3


@pytest.mark.parametrize("change,message", [
    (dict(labels=np.linspace(0, 2, 12)), r"'labels' has data type float64; labels must be integers"),
    (dict(ids=np.array([f"x{i}" for i in range(11)])), r"'ids' has shape \[11\]; 'embeddings' has 12 samples"),
    (dict(emb=np.ones(12, np.float32)), r"'embeddings' has shape \[12\]; it must be 2-D"),
    (dict(emb=np.ones((12, 4), bool)), r"'embeddings' has data type bool"),
    (dict(classifier=(np.ones((3, 5)), np.zeros(3))), r"classifier weight \[3, 5\] and bias \[3\] do not fit 4"),
    (dict(classifier=(np.ones((1, 4)), np.zeros(1))), r"classifier has 1 class\(es\)"),
    (dict(classifier=(np.ones((3, 4), np.int64), np.zeros(3, np.int64))), r"must be floating point numbers"),
])
def test_arrays_are_refused_naming_the_store_and_the_array(tmp_path, change, message):
    path = _good(tmp_path, **change)
    with pytest.raises(stores.StoreError, match=message):
        contract.check_store(path, "test")


def test_a_zarr_v2_store_says_so_and_converts(tmp_path, capsys):
    from embmap.__main__ import main

    rng = np.random.default_rng(0)
    f = rng.standard_normal((9, 3)).astype(np.float32)
    ids = np.array([f"img/{i}" for i in range(9)])
    old = raw_store(tmp_path / "old" / "test.zarr", f, ids, np.arange(9) % 2, (np.ones((2, 3)), np.zeros(2)),
                    {"complete": True, "network": "mine", "preprocessing": "bicubic"}, zarr_format=2)
    with pytest.raises(stores.StoreError, match=r"is a Zarr v2 store \(it has \.z\w+\); embmap reads Zarr v3 stores: "
                                                r"convert it with `python -m embmap convert .*old/test.zarr "
                                                r"NEWDIR/test.zarr`"):
        contract.check_store(old, "test")
    assert main(["inspect", str(old)]) == 2 and "Zarr v2" in capsys.readouterr().err
    # the old store's string `preprocessing` breaks the contract: convert names it, --drop leaves it out
    assert main(["convert", str(old), str(tmp_path / "new" / "test.zarr")]) == 2
    assert "attribute 'preprocessing'" in capsys.readouterr().err
    assert not (tmp_path / "new" / "test.zarr").exists()
    assert main(["convert", str(old), str(tmp_path / "new" / "test.zarr"), "--drop", "preprocessing"]) == 0
    s = stores.open_embeddings(tmp_path / "new" / "test.zarr", "test", need_classifier=True)
    np.testing.assert_array_equal(s.embeddings[:], f)
    np.testing.assert_array_equal(s.ids, ids)
    assert s.attrs["network"] == "mine" and "preprocessing" not in s.attrs and s.attrs["converted_from"]
    assert main(["convert", str(old), str(tmp_path / "new" / "test.zarr")]) == 2  # nothing is overwritten
    assert "exists already" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["grown", "array_added", "array_removed"])
def test_a_store_changed_after_consolidation_is_refused(tmp_path, how):
    path = _good(tmp_path, classifier=None if how == "array_added" else (np.ones((3, 4)), np.zeros(3)))
    g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    if how == "grown":
        g["embeddings"].resize((20, 4))
    elif how == "array_added":
        c = g.create_group("classifier")
        c.create_array("weight", data=np.ones((3, 4)))
        c.create_array("bias", data=np.zeros(3))
    else:
        del g["classifier/bias"]
    with pytest.raises(stores.StoreError, match=r"consolidated metadata is out of date for '[a-z/]+'.*"
                                                r"zarr\.consolidate_metadata"):
        contract.check_store(path, "test")


def test_missing_paths_files_and_partial_stores_say_what_they_are(tmp_path):
    with pytest.raises(stores.StoreError, match="does not exist"):
        contract.metadata(tmp_path / "nope.zarr")
    (tmp_path / "f.zarr").write_text("zip")
    with pytest.raises(stores.StoreError, match="is a file"):
        contract.metadata(tmp_path / "f.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(stores.StoreError, match=r"not a Zarr store \(no zarr\.json\)"):
        contract.metadata(tmp_path / "empty.zarr")
    (tmp_path / "bad.zarr").mkdir()
    (tmp_path / "bad.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(stores.StoreError, match=r"zarr\.json cannot be read"):
        contract.metadata(tmp_path / "bad.zarr")
    with pytest.raises(stores.StoreError, match="partial store"):
        contract.metadata(tmp_path / "x.zarr.partial")


# -- the cases, through the check_stores step ----------------------------------------
def _pair(tmp_path, n_fit=20, n_eval=10, classes=3, eval_labels=None, fit_ids=None, eval_ids=None, cls_b=None):
    """Stores of networks a and b over one fit and one eval split; returns {split: {network: path}}."""
    rng = np.random.default_rng(1)
    out = {"train": {}, "test": {}}
    for k, (name, d) in enumerate((("a", 4), ("b", 3))):
        cls = (rng.standard_normal((classes, d)), rng.standard_normal(classes))
        if name == "b" and cls_b is not None:
            cls = cls_b
        for split, n, ids, labels in (("train", n_fit, fit_ids, None), ("test", n_eval, eval_ids, eval_labels)):
            ids = np.array([f"{split}/{i}" for i in range(n)]) if ids is None else ids
            labels = np.arange(n) % classes if labels is None else labels
            raw_store(tmp_path / name / f"{split}.zarr", rng.standard_normal((n, d)).astype(np.float32), ids, labels,
                      cls)
            out[split][name] = str(tmp_path / name / f"{split}.zarr")
    return out


def _check(paths):
    return stores.check_experiment(paths, "closed_set", "train", "test")


def test_labels_beyond_the_classifier_name_the_store_the_count_and_the_values(tmp_path):
    """The issue's case: a 3-class classifier over labels 0-4 reported 0.58-0.60 accuracy."""
    paths = _pair(tmp_path, eval_labels=np.arange(10) % 5)
    with pytest.raises(stores.StoreError, match=r"network 'a': store .*a/test\.zarr: 4 of 10 labels lie outside "
                                                r"the classifier's 3 classes \(0\.\.2; -1 = unknown\): 3 \(2x\), "
                                                r"4 \(2x\)"):
        _check(paths)


def test_a_label_beyond_the_classes_and_negative_labels_are_refused(tmp_path):
    labels = np.arange(10) % 3
    labels[4] = 7
    with pytest.raises(stores.StoreError, match=r"1 of 10 labels lie outside .*: 7 \(1x\)"):
        _check(_pair(tmp_path / "seven", eval_labels=labels))
    labels[4] = -3  # rows with label -3 were dropped silently (n 600 -> 595)
    with pytest.raises(stores.StoreError, match=r"1 of 10 labels lie outside .*-1 = unknown\): -3 \(1x\)"):
        _check(_pair(tmp_path / "minus3", eval_labels=labels))


def test_networks_with_different_class_counts_are_refused(tmp_path):
    rng = np.random.default_rng(3)
    paths = _pair(tmp_path, classes=3, cls_b=(rng.standard_normal((4, 3)), np.zeros(4)))
    with pytest.raises(stores.StoreError, match=r"classifiers cover different labels \(a: 3 classes, b: 4 classes"):
        _check(paths)


def test_a_1000_class_head_beside_1001_labels_is_checked_in_its_own_label_space(tmp_path):
    """Label spaces (issue 12): class k of a head with label_offset 1 is label k + 1; both cover labels 1..3."""
    rng = np.random.default_rng(4)
    labels = np.arange(10) % 3 + 1  # labels 1..3; label 0 would be a background class
    for name, classes, offset in (("a", 4, 0), ("b", 3, 1)):
        head = (rng.standard_normal((classes, 5)), np.zeros(classes))
        for split in ("train", "test"):
            ids = [f"{split}/{i}" for i in range(10)]
            stores.write_embeddings(tmp_path / name / f"{split}.zarr", rng.standard_normal((10, 5)), ids, labels,
                                    classifier=head, label_offset=offset, split=split)
    paths = {split: {n: str(tmp_path / n / f"{split}.zarr") for n in ("a", "b")} for split in ("train", "test")}
    assert stores.check_experiment(paths, "closed_set", "train", "test")["classes"] == 4
    bad = labels.copy()
    bad[0] = 0  # background: outside the offset head's classes
    with pytest.raises(stores.StoreError, match=r"1 of 10 labels lie outside the classifier's 3 classes \(1\.\.3"):
        stores.write_embeddings(tmp_path / "c.zarr", rng.standard_normal((10, 5)), [f"c/{i}" for i in range(10)],
                                bad, classifier=(rng.standard_normal((3, 5)), np.zeros(3)), label_offset=1)


def test_duplicate_ids_are_refused(tmp_path):
    ids = np.array([f"test/{i}" for i in range(10)])
    ids[7] = ids[2]
    with pytest.raises(stores.StoreError, match=r"network 'a': store .*: 1 id\(s\) occur more than once \(2 rows\), "
                                                r"first 'test/2' at rows 2, 7"):
        _check(_pair(tmp_path, eval_ids=ids))


@pytest.mark.parametrize("same", [True, False])
def test_an_eval_split_sharing_ids_with_the_fit_split_is_refused(tmp_path, same):
    if same:  # the same images in both splits
        paths = _pair(tmp_path)
        for name in ("a", "b"):
            fit = stores.open_embeddings(paths["train"][name])
            test = stores.open_embeddings(paths["test"][name])
            raw_store(paths["test"][name], fit.embeddings[:10], fit.ids[:10], test.labels, test.classifier())
        match = r"share 10 of 10 ids \(first 'train/0'.*the same images: the maps would be measured on images"
    else:  # row numbers as ids
        paths = _pair(tmp_path, fit_ids=np.arange(20).astype(str), eval_ids=np.arange(10).astype(str))
        match = r"share 10 of 10 ids.*embeds '0' differently in the two, so the ids do not name images"
    with pytest.raises(stores.StoreError, match=r"splits 'train' and 'test' " + match):
        _check(paths)


def test_labels_must_agree_across_networks_even_where_one_is_unknown(tmp_path):
    paths = _pair(tmp_path)
    b = stores.open_embeddings(paths["test"]["b"])
    labels = b.labels
    labels[3] = -1  # evaluation read the first network's labels only: this row was dropped for one network
    raw_store(paths["test"]["b"], b.embeddings[:], b.ids, labels, b.classifier())
    with pytest.raises(stores.StoreError, match=r"network 'b': labels of .* disagree with network 'a' at 1 "
                                                r"position\(s\); first at row 3 \('test/3'\): -1 vs 0"):
        _check(paths)


def test_classifiers_must_be_finite_and_one_per_network(tmp_path):
    paths = _pair(tmp_path)
    a = stores.open_embeddings(paths["test"]["a"])
    w, bias = a.classifier()
    w[1, 2] = np.nan
    raw_store(paths["test"]["a"], a.embeddings[:], a.ids, a.labels, (w, bias))
    with pytest.raises(stores.StoreError, match=r"network 'a': store .*test\.zarr: its classifier holds NaN"):
        _check(paths)
    w[1, 2] = 5.0
    raw_store(paths["test"]["a"], a.embeddings[:], a.ids, a.labels, (w, bias))
    with pytest.raises(stores.StoreError, match=r"network 'a': the classifier of .*differs from that of"):
        _check(paths)


def test_all_unknown_eval_labels_and_tiny_splits_are_refused(tmp_path):
    with pytest.raises(stores.StoreError, match=r"split 'test': no labels \(all -1\)"):
        _check(_pair(tmp_path / "x", eval_labels=-np.ones(10, int)))
    with pytest.raises(stores.StoreError, match=r"holds 1 sample\(s\); a map is fitted on at least 2"):
        _check(_pair(tmp_path / "y", n_fit=1))


def test_write_embeddings_refuses_what_the_contract_refuses(tmp_path):
    f = np.ones((4, 2), np.float32)
    cls = (np.ones((3, 2)), np.zeros(3))
    with pytest.raises(stores.StoreError, match=r"1 of 4 labels lie outside the classifier's 3 classes.*: 5 \(1x\)"):
        stores.write_embeddings(tmp_path / "a.zarr", f, ["a", "b", "c", "d"], [0, 1, 2, 5], classifier=cls)
    with pytest.raises(stores.StoreError, match=r"1 id\(s\) occur more than once"):
        stores.write_embeddings(tmp_path / "a.zarr", f, ["a", "b", "a", "d"], [0, 1, 2, 0])
    with pytest.raises(stores.StoreError, match=r"labels of dtype float64"):
        stores.write_embeddings(tmp_path / "a.zarr", f, ["a", "b", "c", "d"], [0, 1.5, 2, 0])
    with pytest.raises(stores.StoreError, match=r"attribute 'preprocessing'"):
        stores.write_embeddings(tmp_path / "a.zarr", f, ["a", "b", "c", "d"], [0, 1, 2, 0], preprocessing="224")
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "a.zarr.partial").exists()


def test_write_embeddings_streams_an_array_that_is_not_in_memory(tmp_path):
    src = zarr.create_array(str(tmp_path / "big.zarr"), shape=(1000, 3), chunks=(100, 3), dtype="float32")
    src[:] = np.arange(3000, dtype=np.float32).reshape(1000, 3)
    stores.write_embeddings(tmp_path / "s.zarr", src, [f"i{k}" for k in range(1000)], np.zeros(1000, int),
                            chunk_rows=128)
    s = stores.open_embeddings(tmp_path / "s.zarr")
    np.testing.assert_array_equal(s.embeddings[:], src[:])
    assert s.embeddings.chunks == (128, 3)


# -- the property: any set of stores, any defects ---------------------------------------------
# defect -> (refused?, network named in the message or None for the split pair)
DEFECTS = {
    "label_high": True, "label_below_minus_one": True, "labels_disagree": True, "duplicate_id": True,
    "ids_disagree": True, "overlap": True, "row_number_ids": True, "classes_differ": True, "classifier_nan": True,
    "classifier_split_differs": True, "dims_split_differ": True, "n_differs": True, "no_eval_labels": True,
    "complete_string": True, "complete_missing": True, "preprocessing_string": True, "input_size_bad": True,
    "split_attr_wrong": True, "labels_float": True, "no_eval_classifier": True, "zarr_v2": True,
    "stale_consolidated": True, "embeddings_chunk_missing": True,
    # harmless variations: accepted, and the numbers follow
    "int_ids": False, "unknown_labels": False, "extra_attributes": False, "labels_int32": False,
    "embeddings_float64": False, "not_consolidated": False, "no_fit_classifier": False, "odd_chunks": False,
}
HARMFUL = sorted(k for k, v in DEFECTS.items() if v)
HARMLESS = sorted(k for k, v in DEFECTS.items() if not v)


@st.composite
def store_sets(draw):
    names = draw(st.sampled_from([("a", "b"), ("a", "b", "c")]))
    spec = {
        "names": names,
        "dims": {k: draw(st.integers(1, 5)) for k in names},
        "n_fit": draw(st.integers(3, 25)), "n_eval": draw(st.integers(2, 15)), "classes": draw(st.integers(2, 5)),
        "seed": draw(st.integers(0, 2**16)),
        "defects": draw(st.sets(st.sampled_from(HARMFUL), max_size=2)) | draw(st.sets(st.sampled_from(HARMLESS))),
        "victim": draw(st.sampled_from(names)),
    }
    if "int_ids" in spec["defects"]:
        spec["defects"].discard("row_number_ids")  # int ids are ids unique across splits
    return spec


def build(root, spec):
    """Write the stores of ``spec``; returns ({split: {network: path}}, labelled eval samples)."""
    rng = np.random.default_rng(spec["seed"])
    defects, victim, names = spec["defects"], spec["victim"], spec["names"]
    C, nf, ne = spec["classes"], spec["n_fit"], spec["n_eval"]
    ids = {"train": np.array([f"img/{i:04d}.png" for i in range(nf)]),
           "test": np.array([f"img/{nf + i:04d}.png" for i in range(ne)])}
    if "int_ids" in defects:
        ids = {"train": np.arange(nf), "test": np.arange(nf, nf + ne)}
    if "row_number_ids" in defects:
        ids = {"train": np.arange(nf).astype(str), "test": np.arange(ne).astype(str)}
    labels = {s: rng.integers(0, C, len(ids[s])) for s in ids}
    if "unknown_labels" in defects:
        labels["test"][rng.random(ne) < 0.4] = -1
        labels["test"][0] = 0
    if "label_high" in defects:
        labels["test"][rng.integers(ne)] = C + int(rng.integers(0, 4))
    if "label_below_minus_one" in defects:
        split = "train" if rng.random() < 0.5 else "test"
        labels[split][rng.integers(len(labels[split]))] = -int(rng.integers(2, 9))
    if "no_eval_labels" in defects:
        labels["test"][:] = -1
    if "duplicate_id" in defects:
        ids["test"][-1] = ids["test"][0]
    latent = {s: rng.standard_normal((len(ids[s]), 3)) for s in ids}
    if "overlap" in defects:
        ids["test"][0] = ids["train"][1]
        latent["test"][0] = latent["train"][1]
    out, labelled = {"train": {}, "test": {}}, int((labels["test"] >= 0).sum())
    for name in names:
        d = spec["dims"][name]
        proj = rng.standard_normal((3, d))
        cls = (rng.standard_normal((C, d)), rng.standard_normal(C))
        if name == victim and "classes_differ" in defects:
            cls = (rng.standard_normal((C + 1, d)), rng.standard_normal(C + 1))
        for split in ("train", "test"):
            f = (latent[split] @ proj).astype(np.float64 if "embeddings_float64" in defects else np.float32)
            i, lab, c, attrs = ids[split].copy(), labels[split].copy(), cls, {"complete": True, "split": split}
            mine = name == victim
            if mine and split == "test":
                if "labels_disagree" in defects:
                    lab[0] = (lab[0] + 1) % C if lab[0] >= 0 else 0
                if "ids_disagree" in defects:
                    i[-1] = 10**6 if i.dtype.kind == "i" else "other.png"
                if "n_differs" in defects:
                    f, i, lab = f[:-1], i[:-1], lab[:-1]
                if "classifier_nan" in defects:
                    c = (cls[0].copy(), cls[1])
                    c[0][0, 0] = np.nan
                if "no_eval_classifier" in defects:
                    c = None
                if "complete_string" in defects:
                    attrs["complete"] = "true"
                if "complete_missing" in defects:
                    del attrs["complete"]
                if "preprocessing_string" in defects:
                    attrs["preprocessing"] = "resize 256, crop 224"
                if "input_size_bad" in defects:
                    attrs["input_size"] = [224]
                if "split_attr_wrong" in defects:
                    attrs["split"] = "train"
                if "labels_float" in defects:
                    lab = lab.astype(np.float64)
            if mine and split == "train":
                if "classifier_split_differs" in defects:
                    c = (cls[0] + 1.0, cls[1])
                if "dims_split_differ" in defects:
                    f = np.hstack([f, f[:, :1]])
                    c = (np.hstack([cls[0], cls[0][:, :1]]), cls[1])
                if "no_fit_classifier" in defects:
                    c = None
            if "labels_int32" in defects:
                lab = lab.astype(np.int32) if lab.dtype.kind == "i" else lab
            if "extra_attributes" in defects:
                attrs.update({"network": name, "mine": {"a": [1, None]}, "preprocessing": {"crop_fraction": 0.875},
                              "parameters": 1234, "input_size": [8, 8], "randomized": None})
            path = root / name / f"{split}.zarr"
            raw_store(path, f, i, lab, c, attrs, zarr_format=2 if mine and split == "test" and "zarr_v2" in defects
                      else 3, consolidate="not_consolidated" not in defects)
            if "odd_chunks" in defects:  # rechunk: several chunks of an odd size
                g = zarr.open_group(str(path), mode="r+")
                x = g["embeddings"][:]
                del g["embeddings"]
                g.create_array("embeddings", data=x, chunks=(max(1, len(x) // 3), x.shape[1]))
                if "not_consolidated" not in defects:
                    stores.consolidate(path)
            if mine and split == "train" and "embeddings_chunk_missing" in defects:  # a writer that died early
                chunk = sorted(p for p in (path / "embeddings").rglob("*") if p.is_file() and not p.name.startswith(
                    (".z", "zarr.json")))[-1]
                chunk.unlink()
            if mine and split == "test" and "stale_consolidated" in defects:
                zarr.open_group(str(path), mode="r+", use_consolidated=False)["labels"].resize((len(i) + 1,))
            out[split][name] = str(path)
    return out, labelled


def run_checks(root, paths, names):
    """What a run does before the pass: the plan's metadata checks, then the check_stores job's."""
    config = {"experiments": {"x": {"task": "closed_set", "dataset": {"kind": "embeddings"},
                                    "networks": {k: {"source": "zarr", "path": str(root / k)} for k in names}}}}
    plan.Plan(config, root)
    return stores.check_experiment(paths, "closed_set", "train", "test")


@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=store_sets())
def test_any_set_of_stores_is_refused_naming_the_network_or_gives_sound_numbers(spec, tmp_path_factory):
    verify(tmp_path_factory.mktemp("stores"), spec)


@pytest.mark.parametrize("defect", sorted(DEFECTS))
@pytest.mark.parametrize("victim", ["a", "b"])
def test_every_defect_alone_is_refused_or_accepted_as_it_should(defect, victim, tmp_path):
    verify(tmp_path, {"names": ("a", "b"), "dims": {"a": 3, "b": 2}, "n_fit": 12, "n_eval": 8, "classes": 3,
                      "seed": 7, "defects": {defect}, "victim": victim})


def verify(root, spec):
    """Run the checks on the stores of ``spec``: refused iff harmful, naming the victim; else sound numbers."""
    paths, labelled = build(root, spec)
    harmful = spec["defects"] & set(HARMFUL)
    try:
        run_checks(root, paths, spec["names"])
    except (ConfigError, stores.StoreError) as e:
        msg = str(e)
        assert harmful, f"harmless stores {sorted(spec['defects'])} refused: {msg}"
        pair = {"overlap", "row_number_ids", "no_eval_labels", "classes_differ", "label_below_minus_one",
                "duplicate_id", "label_high"}
        named = f"networks.{spec['victim']}." in msg or f"network {spec['victim']!r}" in msg
        assert named or harmful & pair, f"{sorted(harmful)} reported without naming {spec['victim']!r}: {msg}"
        assert "\n" not in msg and len(msg) < 800, msg
        return
    assert not harmful, f"stores with {sorted(harmful)} were accepted"
    opened = stores.open_matched(paths["test"], need_classifier=True)
    names = list(opened)
    maps = {(a, b): LinearMap(np.zeros((opened[a].dim, opened[b].dim)), np.zeros(opened[b].dim), {})
            for a in names for b in names if a != b}
    t = closed_set.evaluate(opened, {"ridge": maps})
    assert (t.n == labelled).all(), "every labelled sample, and only those, is counted"
    assert np.isfinite(t.accuracy).all() and t.accuracy.between(0, 1).all()
    native = t[t.method == "native"].set_index("source").accuracy
    for k, s in opened.items():  # the table's native accuracy is the store's own classifier on its labels
        w, b = s.classifier()
        known = s.labels >= 0
        pred = np.argmax(np.asarray(s.embeddings[:], np.float64) @ w.T + b, axis=1)
        assert native[k] == pytest.approx(np.mean(pred[known] == s.labels[known]))


def test_the_record_of_a_check_lists_every_store(tmp_path):
    paths = _pair(tmp_path)
    summary = _check(paths)
    assert summary["classes"] == 3
    assert summary["splits"]["test"]["b"] == {"path": paths["test"]["b"], "n": 10, "dim": 3, "labelled": 10}
    json.dumps(summary)


def test_embeddings_with_chunks_never_written_are_refused_not_read_as_zeros(tmp_path):
    paths = _pair(tmp_path)
    g = zarr.open_group(paths["train"]["a"], mode="r")
    f = g["embeddings"][:]
    raw = zarr.open_group(str(tmp_path / "a" / "train.zarr"), mode="r+")
    del raw["embeddings"]
    e = raw.create_array("embeddings", shape=f.shape, chunks=(5, f.shape[1]), dtype="float32")  # fill value 0.0
    e[:10] = f[:10]  # the writer died after two of four chunks
    stores.consolidate(tmp_path / "a" / "train.zarr")
    with pytest.raises(stores.StoreError, match=r"network 'a': store .*a/train\.zarr: 2 of 4 chunks of 'embeddings' "
                                                r"were never written, so Zarr would read their rows as the fill value "
                                                r"\(0\.0\)"):
        _check(paths)


def test_classifiers_recovered_by_least_squares_may_differ_between_splits(tmp_path):
    paths = _pair(tmp_path)
    for split, shift in (("train", 0.0), ("test", 1e-3)):  # each split's own estimate
        a = stores.open_embeddings(paths[split]["a"])
        w, b = a.classifier()
        raw_store(paths[split]["a"], a.embeddings[:], a.ids, a.labels, (w + shift, b),
                  classifier_attrs={"method": "least_squares", "residual": 1e-4})
    _check(paths)
