"""The store contract users script against: names, shapes, attributes, atomicity."""

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from embmap import stores


def _write(path, n=70, d=5, chunk_rows=16, classifier=True):
    rng = np.random.default_rng(0)
    f = rng.standard_normal((n, d)).astype(np.float32)
    ids = np.array([f"a/{i}.jpg" for i in range(n)])
    labels = np.arange(n) % 3
    cls = (rng.standard_normal((3, d)), rng.standard_normal(3)) if classifier else None
    stores.write_embeddings(path, f, ids, labels, classifier=cls, chunk_rows=chunk_rows, network="n", split="s")
    return f, ids, labels, cls


def test_round_trip_names_dtypes_chunks(tmp_path):
    path = tmp_path / "s.zarr"
    f, ids, labels, cls = _write(path)
    g = zarr.open_group(str(path), mode="r")
    assert g["embeddings"].dtype == np.float32 and g["embeddings"].chunks == (16, 5)
    assert g["labels"].dtype == np.int64
    assert g["classifier/weight"].shape == (3, 5) and g["classifier/bias"].shape == (3,)
    assert g["embeddings"].metadata.dimension_names == ("sample", "feature")
    assert g["embeddings"].compressors, "embeddings must be compressed"
    assert g.attrs["complete"] is True and g.attrs["network"] == "n" and "versions" in g.attrs
    s = stores.open_embeddings(path)
    np.testing.assert_array_equal(s.embeddings[:], f)
    np.testing.assert_array_equal(s.ids, ids)
    np.testing.assert_array_equal(s.labels, labels)
    w, b = s.classifier()
    np.testing.assert_allclose(w, cls[0], rtol=1e-6)


def test_opens_with_xarray_and_dask_without_arguments(tmp_path):
    path = tmp_path / "s.zarr"
    f, ids, *_ = _write(path)
    ds = xr.open_zarr(path)
    assert ds["embeddings"].dims == ("sample", "feature")
    np.testing.assert_array_equal(ds["embeddings"].values, f)
    assert list(ds["ids"].values[:2]) == list(ids[:2])
    arr = da.from_zarr(str(path), component="embeddings")
    assert arr.chunks[0][0] == 16
    np.testing.assert_array_equal(arr.compute(), f)


def test_writer_rejects_nonfinite_rows_naming_the_ids(tmp_path):
    f = np.ones((4, 3), np.float32)
    f[2, 1] = np.inf
    with pytest.raises(stores.StoreError, match="x2"):
        stores.write_embeddings(tmp_path / "s.zarr", f, ["x0", "x1", "x2", "x3"], [0, 0, 0, 0])
    assert not (tmp_path / "s.zarr").exists(), "a failed write must not leave a store at the final path"


def test_unfinished_store_is_never_opened(tmp_path):
    path = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError):
        with stores.atomic_group(path) as g:
            g.create_array("embeddings", data=np.zeros((2, 2), np.float32))
            raise RuntimeError("killed")
    assert not path.exists()
    partial = tmp_path / "s.zarr.partial"
    assert partial.exists()
    with pytest.raises(stores.StoreError, match="incomplete"):
        stores.open_embeddings(partial)


def test_open_aligned_names_the_network_whose_ids_disagree(tmp_path):
    _write(tmp_path / "a.zarr")
    rng = np.random.default_rng(1)
    ids = np.array([f"a/{i}.jpg" for i in range(70)])
    ids[5] = "other.jpg"
    stores.write_embeddings(tmp_path / "b.zarr", rng.standard_normal((70, 4)), ids, np.arange(70) % 3)
    with pytest.raises(stores.StoreError, match=r"network 'b'.*row 5"):
        stores.open_matched({"a": tmp_path / "a.zarr", "b": tmp_path / "b.zarr"})


def test_open_aligned_requires_classifier_when_asked(tmp_path):
    _write(tmp_path / "a.zarr")
    _write(tmp_path / "b.zarr", classifier=False)
    stores.open_matched({"a": tmp_path / "a.zarr", "b": tmp_path / "b.zarr"})
    with pytest.raises(stores.StoreError, match="network 'b'.*no classifier"):
        stores.open_matched({"a": tmp_path / "a.zarr", "b": tmp_path / "b.zarr"}, need_classifier=True)


def test_writer_writes_whole_chunks_from_uneven_batches(tmp_path):
    with stores.atomic_group(tmp_path / "s.zarr") as g:
        w = stores.EmbeddingWriter(g, [str(i) for i in range(50)], np.zeros(50), 3, chunk_rows=16)
        rows = np.arange(150, dtype=np.float32).reshape(50, 3)
        for a, b in [(0, 7), (7, 30), (30, 31), (31, 50)]:
            w.append(rows[a:b])
        w.close()
    np.testing.assert_array_equal(stores.open_embeddings(tmp_path / "s.zarr").embeddings[:], rows)
