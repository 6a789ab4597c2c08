"""The sharded pass, its reduce and cross-validated fits, run by snakemake."""

import numpy as np
import pytest
import zarr

from embmap import stores
from embmap.fit import gram, ridge
from helpers import byo_config, snakemake, synthetic_stores

pytestmark = pytest.mark.workflow


def test_sharded_pass_with_an_alpha_list_records_the_choice(tmp_path):
    dirs = synthetic_stores(tmp_path / "byo", names=("a", "b", "c"), dims=(12, 10, 8), n_train=400)
    cfg = byo_config(dirs, mapping={"alpha": [0.01, 1.0, 100.0], "folds": 2, "shards": 4})
    snakemake(tmp_path, cfg)
    res = tmp_path / "results" / "byo"
    # four shard jobs, one reduce; the partials are temporary
    assert sorted(p.name for p in (res / "logs" / "cross_products_shard").iterdir()) == [
        f"{j}.log" for j in range(4)]
    assert not (res / "fit" / "shards").exists() or not any((res / "fit" / "shards").iterdir())
    blocks = stores.open_blocks(res / "fit" / "blocks.zarr")
    assert blocks.attrs["shards"] == 4 and blocks.attrs["folds"] == 2 and sum(blocks.attrs["fold_n"]) == 400
    fit = {k: stores.open_embeddings(f"{d}/train.zarr").embeddings for k, d in dirs.items()}
    whole = gram.cross_products(fit, folds=2)
    for a, b in whole.pairs():
        np.testing.assert_allclose(blocks.gram(a, b), whole.gram(a, b), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(blocks.folds[1].gram(a, b), whole.folds[1].gram(a, b), rtol=1e-9, atol=1e-9)
    expected = ridge.fit_maps(whole, "a", ["b", "c"], [0.01, 1.0, 100.0])
    for b in ("b", "c"):
        g = zarr.open_group(str(res / "maps" / "ridge" / "a" / f"{b}.zarr"), mode="r")
        assert g.attrs["alphas"] == [0.01, 1.0, 100.0] and g.attrs["cv_folds"] == 2
        assert g.attrs["alpha"] == expected[b].attrs["alpha"]
        np.testing.assert_allclose(g.attrs["cv_score"], expected[b].attrs["cv_score"], rtol=1e-9)
    assert "CV 0.01:" in (res / "logs" / "fit_maps" / "ridge" / "a.log").read_text()
