"""Layers in embedding stores (format version 2): written, read like the embedding, held to the contract; stores of
format version 1 still open."""

import json
import shutil

import numpy as np
import pytest
import zarr

from embmap import contract, stores
from helpers import raw_store

N = 10


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((N, 4)).astype(np.float32)
    layers = {"block1/conv": rng.standard_normal((N, 6)).astype(np.float32),
              "pool": rng.standard_normal((N, 3)).astype(np.float32)}
    ids = np.array([f"img{i}.png" for i in range(N)])
    labels = np.arange(N) % 3
    clf = (rng.standard_normal((3, 4)).astype(np.float32), np.zeros(3, np.float32))
    return emb, layers, ids, labels, clf


def _store(path, **kw):
    emb, layers, ids, labels, clf = _arrays()
    stores.write_embeddings(path, emb, ids, labels, classifier=clf, chunk_rows=3, layers=layers,
                            layer_attrs={"pool": {"reduction": "mean"}}, network="n", split="test", **kw)
    return emb, layers


def test_layers_are_written_beside_the_embeddings_and_read_like_them(tmp_path):
    path = tmp_path / "test.zarr"
    emb, layers = _store(path)
    s = stores.open_embeddings(path, "test")
    assert s.attrs["format_version"] == contract.FORMAT_VERSION == 2
    assert s.layers == ["block1/conv", "pool"] and s.attrs["layers"] == s.layers
    np.testing.assert_array_equal(s.embeddings[:], emb)
    for name, values in layers.items():
        view = stores.open_embeddings(path, "test", layer=name)
        np.testing.assert_array_equal(view.embeddings[:], values)
        np.testing.assert_array_equal(stores.open_layer(path, name), values)
        assert view.dim == values.shape[1] and view.n == N and list(view.ids) == list(s.ids)
        assert view.embeddings.chunks == (3, values.shape[1])  # rows chunked as the embeddings
        assert not view.has_classifier and view.layer_attrs["name"] == name
        assert view.layer_attrs["dim"] == values.shape[1]
    assert stores.open_layer(path, "pool").attrs["reduction"] == "mean"
    # a name with '/' is one array, percent-encoded; the reserved name reads the embedding itself
    assert (path / "layers" / "block1%2Fconv" / "zarr.json").exists()
    np.testing.assert_array_equal(stores.open_layer(path, contract.EMBEDDING), emb)
    with pytest.raises(stores.StoreError, match="layer 'pool' has no classifier"):
        s.as_layer("pool").classifier()
    with pytest.raises(stores.StoreError, match=r"holds no layer 'pol' \(nearest: pool\); its layers: block1/conv, "
                                                r"pool"):
        stores.open_layer(path, "pol")


def test_layer_keys_are_single_zarr_nodes_that_name_the_layer_back():
    from urllib.parse import unquote

    for name in ("a/b:0", "Mixed_5a/concat", "50%", "__x", "..", "head/Squeeze1", "x y"):
        key = contract.layer_key(name)
        assert "/" not in key and not key.startswith("__") and set(key) != {"."} and unquote(key) == name
    # TFLite's fused names: bounded keys, distinct for names that share their beginning
    long = ["efficientnet-lite3/model/blocks_22/Relu6;" + "x/" * 200 + tail for tail in ("a", "b", "%%%")]
    keys = [contract.layer_key(n) for n in long]
    assert len(set(keys)) == 3 and all(len(k) <= contract.MAX_KEY and "/" not in k for k in keys)
    assert all(unquote(k.rsplit("~", 1)[0]) in n for k, n in zip(keys, long))


def test_a_store_without_layers_holds_none_and_format_version_1_stores_still_open(tmp_path):
    emb, _, ids, labels, clf = _arrays()
    stores.write_embeddings(tmp_path / "plain.zarr", emb, ids, labels)
    assert stores.open_embeddings(tmp_path / "plain.zarr").layers == []
    assert not (tmp_path / "plain.zarr" / "layers").exists()
    with pytest.raises(stores.StoreError, match=r"holds no layer 'x' \(it holds no layers, only the embedding\)"):
        stores.open_layer(tmp_path / "plain.zarr", "x")
    for attrs in ({"complete": True, "format_version": 1}, {"complete": True},
                  {"complete": True, "format_version": 1, "layers": "my own note"}):  # v1: any attribute is kept
        p = raw_store(tmp_path / "v1.zarr", emb, ids, labels, clf, attrs=attrs)
        s = stores.open_embeddings(p, need_classifier=True)
        assert s.layers == [] and s.dim == 4
        np.testing.assert_array_equal(s.embeddings[:], emb)
        shutil.rmtree(p)


def _edit(path, fn):
    g = zarr.open_group(str(path), mode="r+")
    fn(g)
    zarr.consolidate_metadata(str(path))


@pytest.mark.parametrize("edit,message", [
    (lambda g: g.attrs.update({"format_version": 1}), r"holds a layers/ group but its format_version is 1"),
    (lambda g: g.attrs.update({"layers": ["pool"]}), r"holds layers/block1%2Fconv .* that its attribute 'layers' "
                                                     r"does not list"),
    (lambda g: g.attrs.update({"layers": ["pool", "embedding"]}), r"attribute 'layers' is .*not 'embedding'"),
    (lambda g: g.attrs.update({"layers": ["pool", "pool"]}), r"attribute 'layers' is .*distinct"),
    (lambda g: g.create_array("layers/extra", data=np.zeros((N - 1, 2), np.float32))
     and g.attrs.update({"layers": [*g.attrs["layers"], "extra"]}), r"layer 'extra' \(layers/extra\) has shape "
                                                                    r"\[9, 2\]; it must be \[10, feature\]"),
    (lambda g: g.create_array("layers/s", data=np.full((N, 2), "a")) and g.attrs.update(
        {"layers": [*g.attrs["layers"], "s"]}), r"layer 's' .* data type .*must be numbers"),
])
def test_layers_that_break_the_contract_are_refused_naming_the_store_and_the_layer(tmp_path, edit, message):
    path = tmp_path / "test.zarr"
    _store(path)
    _edit(path, edit)
    with pytest.raises(stores.StoreError, match=message) as e:
        stores.open_embeddings(path)
    assert str(path) in str(e.value)


def test_a_listed_layer_without_its_array_is_refused(tmp_path):
    path = tmp_path / "test.zarr"
    _store(path)
    shutil.rmtree(path / "layers" / "pool")
    meta = json.loads((path / "zarr.json").read_text())
    meta["consolidated_metadata"]["metadata"].pop("layers/pool")
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(stores.StoreError, match=r"lists layer 'pool' in its attribute 'layers' but has no array "
                                                r"'layers/pool'"):
        stores.open_embeddings(path)


def test_write_embeddings_refuses_bad_layers_before_writing_anything(tmp_path):
    emb, layers, ids, labels, _ = _arrays()
    for bad, message in (({"embedding": emb}, r"layer name 'embedding'.*names the embedding itself"),
                         ({"pool": layers["pool"][:5]}, r"layer 'pool' of shape \(5, 3\); expected \[10, feature\]"),
                         ({"map": np.zeros((N, 2, 2))}, r"reduce a feature map first")):
        with pytest.raises(stores.StoreError, match=message):
            stores.write_embeddings(tmp_path / "s.zarr", emb, ids, labels, layers=bad)
        assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "s.zarr.partial").exists()
    with pytest.raises(stores.StoreError, match=r"layer_attrs name \['nope'\]"):
        stores.write_embeddings(tmp_path / "s.zarr", emb, ids, labels, layers=layers, layer_attrs={"nope": {}})
    bad = dict(layers, pool=np.where(np.arange(N)[:, None] == 7, np.nan, layers["pool"]))
    with pytest.raises(stores.StoreError, match=r"non-finite layer 'pool' values for 1 sample\(s\), first: img7.png"):
        stores.write_embeddings(tmp_path / "s.zarr", emb, ids, labels, layers=bad)
    assert not (tmp_path / "s.zarr").exists()  # the partial store never looks complete


def test_convert_copies_the_layers(tmp_path):
    src = tmp_path / "a" / "test.zarr"
    _, layers = _store(src)
    stores.convert(src, tmp_path / "b" / "test.zarr")
    out = stores.open_embeddings(tmp_path / "b" / "test.zarr")
    assert out.layers == list(layers)
    for name, values in layers.items():
        np.testing.assert_array_equal(out.as_layer(name).embeddings[:], values)
    assert out.as_layer("pool").layer_attrs["reduction"] == "mean"


def test_check_stores_finds_unwritten_chunks_of_a_layer(tmp_path):
    path = tmp_path / "test.zarr"
    _store(path)
    g = zarr.open_group(str(path), mode="r+")
    g["layers/pool"] = g["layers/pool"][:]  # rewrite it whole, then drop one chunk file
    chunk = next(p for p in (path / "layers" / "pool").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.unlink()
    with pytest.raises(stores.StoreError, match=r"chunks of 'layers/pool' were never written"):
        stores.check_experiment({"test": {"n": str(path)}}, "open_set")


def test_a_resumed_store_with_layers_equals_one_written_at_once(tmp_path):
    emb, layers, ids, labels, _ = _arrays()
    attrs = {"pool": {"reduction": "mean"}, "block1/conv": {"reduction": "none"}}

    def rows(a, b):
        return emb[a:b], {k: v[a:b] for k, v in layers.items()}

    path = tmp_path / "s.zarr"
    s = stores.ResumableStore(path, ids, labels, {"spec": 1}, chunk_rows=4)
    s.append(*rows(0, 5), layer_attrs=attrs)  # one chunk durable, one row buffered, then "crash"
    again = stores.ResumableStore(path, ids, labels, {"spec": 1}, chunk_rows=4)
    assert again.start == 4
    again.append(*rows(4, N))
    again.finish({"network": "n"})
    out = stores.open_embeddings(path)
    np.testing.assert_array_equal(out.embeddings[:], emb)
    assert out.layers == list(layers)
    for name, values in layers.items():
        np.testing.assert_array_equal(out.as_layer(name).embeddings[:], values)
        assert out.as_layer(name).layer_attrs["reduction"] == attrs[name]["reduction"]
    with pytest.raises(stores.StoreError, match=r"rows of layers \['pool'\], the store holds layers"):
        fresh = stores.ResumableStore(tmp_path / "t.zarr", ids, labels, {}, chunk_rows=4)
        fresh.append(*rows(0, 2), layer_attrs=attrs)
        fresh.append(emb[2:4], {"pool": layers["pool"][2:4]})


def test_a_bring_your_own_network_holds_the_same_layers_in_every_split(tmp_path):
    from embmap import plan
    from embmap.config import ConfigError
    from helpers import byo_config

    emb, layers, ids, labels, clf = _arrays()
    for net in ("a", "b"):
        for split in ("train", "test"):
            kept = layers if not (net == "b" and split == "test") else {"pool": layers["pool"]}
            stores.write_embeddings(tmp_path / net / f"{split}.zarr", emb, [f"{split}/{i}" for i in ids], labels,
                                    classifier=clf, layers=kept, split=split)
    cfg = byo_config({"a": tmp_path / "a", "b": tmp_path / "b"})
    with pytest.raises(ConfigError, match=r"byo\.networks\.b\.path: the stores of one network hold different layers "
                                          r"\(train: \{'block1/conv': 6, 'pool': 3\}; test: \{'pool': 3\}"):
        plan.Plan(cfg, tmp_path)
    stores.write_embeddings(tmp_path / "b" / "test.zarr", emb, [f"test/{i}" for i in ids], labels, classifier=clf,
                            layers=layers, split="test")
    plan.Plan(cfg, tmp_path)  # the same layers in both splits: accepted
