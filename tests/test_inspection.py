"""`python -m embmap inspect`: what a user sees when looking inside a store."""

import subprocess
import sys

import numpy as np
import zarr

from embmap import stores
from embmap.fit import linear
from embmap.__main__ import main
from helpers import ROOT


def _store(path, with_nan=False):
    rng = np.random.default_rng(1)
    f = rng.standard_normal((50, 4)).astype(np.float32) + 3.0
    stores.write_embeddings(path, f, [f"x/{i}.png" for i in range(50)], np.arange(50) % 2,
                            classifier=(np.ones((2, 4)), np.zeros(2)), chunk_rows=16, network="netA", split="test")
    if with_nan:  # a damaged store: poke a NaN in after the fact
        zarr.open_group(str(path), mode="r+")["embeddings"][7, 2] = np.nan
    return f


def test_inspect_lists_arrays_chunks_codecs_attrs_and_stats(tmp_path, capsys):
    f = _store(tmp_path / "s.zarr")
    assert main(["inspect", str(tmp_path / "s.zarr")]) == 0
    out = capsys.readouterr().out
    assert "embeddings: shape=(50, 4) dtype=float32 chunks=(16, 4)" in out
    assert "blosc(cname=lz4" in out and "dims=['sample', 'feature']" in out
    assert "classifier/weight: shape=(2, 4)" in out and "ids:" in out and "first: x/0.png" in out
    assert f"mean={float(f.astype(np.float64).mean()):.6g}" in out and "nan=0" in out
    assert "network = \"netA\"" in out and "complete = true" in out


def test_inspect_counts_nans_and_flags_incomplete_stores(tmp_path, capsys):
    _store(tmp_path / "s.zarr", with_nan=True)
    main(["inspect", str(tmp_path / "s.zarr")])
    assert "nan=1" in capsys.readouterr().out
    g = zarr.open_group(str(tmp_path / "p.zarr.partial"), mode="w")
    g.create_array("embeddings", data=np.zeros((3, 2), np.float32))
    main(["inspect", str(tmp_path / "p.zarr.partial")])
    assert "WARNING: incomplete" in capsys.readouterr().out


def test_inspect_pair_shows_provenance_and_fit_quality(tmp_path, capsys):
    m = linear.LinearMap(np.diag([2.0, 1.0, 0.5]), np.zeros(3),
                        {"source": "a", "target": "b", "method": "ridge", "alpha": 0.5, "n": 400, "fit_r2": 0.87})
    stores.write_map(tmp_path / "b.zarr", m, experiment="exp", fit_split="train", blocks="fit/blocks.zarr")
    assert main(["inspect", "--pair", str(tmp_path / "b.zarr")]) == 0
    out = capsys.readouterr().out
    assert "a -> b (ridge)" in out and "alpha = 0.5" in out and "n = 400" in out
    assert "fit R2" in out and "0.8700" in out and "singular values 2 .. 0.5" in out and "numerical rank 3" in out
    assert "warning" not in out
    m.attrs["n"] = 5  # 5 fit samples for 3 source features
    stores.write_map(tmp_path / "few.zarr", m, experiment="exp", fit_split="train", blocks="fit/blocks.zarr")
    assert main(["inspect", "--pair", str(tmp_path / "few.zarr")]) == 0
    assert "warning: 5 fit samples for 3 source features" in capsys.readouterr().out


def test_inspect_missing_path_is_a_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "embmap", "inspect", str(tmp_path / "nope.zarr")],
                       capture_output=True, text=True, cwd=ROOT / "workflow")
    assert r.returncode == 2 and "nope.zarr: does not exist" in r.stderr and "Traceback" not in r.stderr


def test_stores_open_with_xarray_and_dask_without_arguments(tmp_path):
    """The snippet of docs/reproducibility.md ("Looking inside"): embedding and map stores read by xarray and Dask as they are."""
    import warnings

    import dask.array as da
    import xarray as xr

    f = _store(tmp_path / "s.zarr")
    m = linear.LinearMap(np.arange(12.0).reshape(4, 3), np.ones(3), {"source": "a", "target": "b", "method": "ridge",
                                                                     "alpha": 1.0, "n": 50, "fit_r2": 0.5})
    stores.write_map(tmp_path / "b.zarr", m, experiment="exp", fit_split="train", blocks="fit/blocks.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(tmp_path / "s.zarr")
        assert ds["embeddings"].dims == ("sample", "feature") and ds["ids"].dims == ("sample",)
        np.testing.assert_array_equal(ds["embeddings"].values, f)
        assert ds["ids"].values[3] == "x/3.png" and ds.attrs["network"] == "netA"
        x = da.from_zarr(str(tmp_path / "s.zarr"), component="embeddings")
        np.testing.assert_allclose(x.mean(axis=0).compute(), f.mean(axis=0), rtol=1e-6)
        mp = xr.open_zarr(tmp_path / "b.zarr")
        np.testing.assert_array_equal(mp["weight"].values, m.weight)
        assert mp.attrs["source"] == "a" and mp.attrs["fit_r2"] == 0.5


def test_inspect_pair_on_a_store_that_is_no_map_says_what_it_is(tmp_path):
    _store(tmp_path / "s.zarr")
    r = subprocess.run([sys.executable, "-m", "embmap", "inspect", "--pair", str(tmp_path / "s.zarr")],
                       capture_output=True, text=True, cwd=ROOT / "workflow")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "s.zarr: is an embedding store, not a map store" in r.stderr and "inspect it without --pair" in r.stderr


def test_inspect_says_what_the_workflow_would_refuse(tmp_path, capsys):
    _store(tmp_path / "s.zarr")
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r+", use_consolidated=False)
    g.attrs["complete"] = "false"
    stores.consolidate(tmp_path / "s.zarr")
    assert main(["inspect", str(tmp_path / "s.zarr")]) == 0
    assert "WARNING: incomplete ('complete' is 'false', not the boolean true)" in capsys.readouterr().out
    g.attrs.update({"complete": True, "preprocessing": "bicubic"})
    stores.consolidate(tmp_path / "s.zarr")
    main(["inspect", str(tmp_path / "s.zarr")])
    assert "WARNING: the workflow refuses it: store " in capsys.readouterr().out
