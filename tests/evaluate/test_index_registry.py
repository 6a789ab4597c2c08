"""The similarity-index registry is the one place that names indices: the schema agrees with it, and an index
added to it alone (here a toy that compares samples, registered for the test) is planned, computed from the
fit split's stores, tabled and drawn."""

import numpy as np
import pandas as pd
import pytest

from embmap import config, plan, steps, stores
from embmap.evaluate import indices as ix
from embmap.evaluate import plots, similarity as sim
from embmap.fit import gram
from helpers import latent_embeddings, synthetic_stores


def test_the_schema_lists_exactly_the_registered_indices_and_their_options():
    props = config.schema()["$defs"]["similarity"]["properties"]
    assert props["indices"]["items"]["enum"] == list(ix.INDICES)
    for i in ix.INDICES.values():
        assert f"{i.name} = " in " ".join(props["indices"]["description"].split()), i.name
        assert i.needs in (ix.BLOCKS, ix.MAPS, ix.SAMPLES), i.name
        assert i.split in (ix.FIT, ix.EVAL) and (i.split == ix.FIT or i.needs == ix.SAMPLES), i.name
        assert set(i.options) <= set(props), (i.name, set(i.options) - set(props))
        assert i.limits[0] < i.limits[1]


def test_sample_rows_are_all_or_evenly_spaced_and_read_chunk_by_chunk(tmp_path):
    np.testing.assert_array_equal(sim.sample_rows(5, 10), np.arange(5))
    rows = sim.sample_rows(1000, 7)
    assert len(rows) == 7 and np.all(np.diff(rows) > 0) and rows[0] == 0 and rows[-1] < 1000
    assert np.all(np.diff(rows) >= 1000 // 7)  # spread over the whole split, not a prefix
    x = np.arange(300 * 3, dtype=np.float32).reshape(300, 3)
    stores.write_embeddings(tmp_path / "s.zarr", x, np.array([f"i{k}" for k in range(300)]), np.zeros(300, int),
                            chunk_rows=64, network="n", split="train")
    s = stores.open_embeddings(tmp_path / "s.zarr")
    r = sim.sample_rows(300, 50)
    got = stores.read_rows(s, r)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, x[r])
    with pytest.raises(stores.StoreError, match="rows must increase"):
        stores.read_rows(s, [3, 2])


# -- an index added to the registry alone ---------------------------------------------------------
def mutual_nn(xa, xb):
    """Fraction of samples whose nearest neighbour (Euclidean, itself excluded) is the same in both spaces."""
    def nn(x):
        d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        return d.argmin(1)

    return float(np.mean(nn(xa) == nn(xb)))


@pytest.fixture
def toy(monkeypatch):
    """Register ``nn1`` in the registry and in (a copy of) the schema's index list."""
    toy = ix.Index(name="nn1", summary="mutual nearest neighbours", needs=ix.SAMPLES, symmetric=True,
                   value=lambda pair, options: mutual_nn(pair.xa, pair.xb), options=("max_samples",),
                   title="mutual 1-NN", parameters=lambda o: f"first neighbour, {o['max_samples']} samples at most")
    monkeypatch.setitem(ix.INDICES, "nn1", toy)
    patched = config.schema()
    patched["$defs"]["similarity"]["properties"]["indices"]["items"]["enum"].append("nn1")
    monkeypatch.setattr(config, "_schema", lambda path: patched)
    return toy


def test_an_index_that_compares_samples_is_planned_computed_from_the_fit_split_and_drawn(tmp_path, monkeypatch,
                                                                                         toy):
    monkeypatch.chdir(tmp_path)
    dirs = synthetic_stores(tmp_path, names=("a", "b", "c"), dims=(5, 4, 6), random_control="c")
    c = {"experiments": {"byo": {"task": "closed_set", "dataset": {"kind": "embeddings"},
                                 "similarity": {"indices": ["nn1", "cka"], "max_samples": 150},
                                 "networks": {k: {"source": "zarr", "path": d} for k, d in dirs.items()}}}}
    p = plan.Plan(c, tmp_path)

    class W:
        exp = "byo"

    inputs = p.inputs("similarity")(W)
    assert sorted(inputs["network_stores"]) == sorted(f"{d}/train.zarr" for d in dirs.values())
    assert "map_dirs" not in inputs  # no index asks for maps
    job = p.job("similarity")(W)
    assert job["stores"] == {k: f"{d}/train.zarr" for k, d in dirs.items()} and job["ridge_maps"] == {}

    feats = {k: stores.open_embeddings(f"{d}/train.zarr").embeddings[:].astype(np.float64) for k, d in dirs.items()}
    blocks = str(tmp_path / "blocks.zarr")
    stores.write_blocks(blocks, gram.blocks_in_memory(feats))
    table = tmp_path / "similarity.csv"
    steps.similarity(blocks, job["indices"], job["options"], job["ridge_maps"], job["stores"], str(table))
    t = pd.read_csv(table)
    assert list(t["index"].unique()) == ["cka", "nn1"]  # the registry's order
    rows = sim.sample_rows(400, 150)
    got = t[t["index"] == "nn1"].set_index(["source", "target"])
    assert (got.n == 150).all() and (t[t["index"] == "cka"].n == 400).all()
    for a, b in (("a", "b"), ("a", "c"), ("b", "c")):
        assert got.loc[(a, b), "value"] == pytest.approx(mutual_nn(feats[a][rows], feats[b][rows]), abs=1e-8)
    assert got.loc[("a", "b"), "value"] > got.loc[("a", "c"), "value"]  # c is the random control
    assert got.parameters.iloc[0] == "first neighbour, 150 samples at most"

    png = tmp_path / "heatmap.png"
    plots.similarity_heatmap(t, ["a", "b", "c"], paths=[str(png)])
    assert png.stat().st_size > 0


def test_an_index_that_compares_samples_says_so_without_them(toy):
    _, xs = latent_embeddings(n=50, dims=(4, 3), seed=1)
    bl = gram.blocks_in_memory({f"n{i}": x.astype(np.float64) for i, x in enumerate(xs)})
    with pytest.raises(ValueError, match="needs the fit split's embeddings"):
        sim.similarity(bl, ["nn1"])
