"""Numerical faults give a clear error or a well-defined result, never a silent NaN in a table."""

import numpy as np
import pytest
import zarr
from sklearn.linear_model import Ridge

from embmap import stores
from embmap.evaluate import closed_set
from embmap.fit import FitError, gram, linear, ridge


def _stores(tmp_path, feats: dict, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    n = len(next(iter(feats.values())))
    ids = [f"s/{i}" for i in range(n)]
    labels = rng.integers(0, n_classes, n)
    paths = {}
    for k, f in feats.items():
        paths[k] = tmp_path / f"{k}.zarr"
        w = rng.standard_normal((n_classes, f.shape[1]))
        stores.write_embeddings(paths[k], f, ids, labels, classifier=(w, np.zeros(n_classes)), chunk_rows=16)
    return paths


def _blocks(tmp_path, paths):
    opened = stores.open_matched(paths)
    cp = gram.cross_products({k: s.embeddings for k, s in opened.items()}, block_rows=16)
    stores.write_blocks(tmp_path / "blocks.zarr", cp)
    return stores.open_blocks(tmp_path / "blocks.zarr")


def test_nan_or_inf_smuggled_into_a_store_is_named_at_the_pass(tmp_path):
    rng = np.random.default_rng(0)
    paths = _stores(tmp_path, {"a": rng.standard_normal((40, 4)), "b": rng.standard_normal((40, 3))})
    for bad in (np.nan, np.inf):
        zarr.open_group(str(paths["b"]), mode="r+")["embeddings"][5, 1] = bad  # written by some other tool
        with pytest.raises(FitError, match="network 'b': non-finite"):
            _blocks(tmp_path, paths)


def test_nan_in_the_evaluation_split_is_named_not_tabled(tmp_path):
    rng = np.random.default_rng(0)
    paths = _stores(tmp_path, {"a": rng.standard_normal((40, 4)), "b": rng.standard_normal((40, 4))})
    zarr.open_group(str(paths["a"]), mode="r+")["embeddings"][33, 0] = np.nan
    ev = stores.open_matched(paths, need_classifier=True)
    eye = linear.LinearMap(np.eye(4), np.zeros(4), {})
    with pytest.raises(stores.StoreError, match="network 'a': non-finite embedding at row 33"):
        closed_set.evaluate(ev, {"ridge": {("a", "b"): eye, ("b", "a"): eye}})


def test_a_constant_feature_column_gives_the_same_map_as_sklearn(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((80, 5))
    a[:, 2] = 7.5  # a dead unit
    b = a @ rng.standard_normal((5, 4)) + 0.1 * rng.standard_normal((80, 4))
    b[:, 1] = -3.0  # a dead unit on the target side: predicted exactly by the intercept
    bl = _blocks(tmp_path, _stores(tmp_path, {"a": a, "b": b}))
    m = ridge.fit_maps(bl, "a", ["b"], 1.0)["b"]
    ref = Ridge(alpha=1.0).fit(a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(m.weight, ref.coef_.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.intercept, ref.intercept_, rtol=1e-5, atol=1e-5)
    assert np.all(m.weight[2] == 0) or np.allclose(m.weight[2], 0, atol=1e-9)
    assert np.isfinite(m.attrs["fit_r2"])


def test_a_network_whose_features_are_all_constant_is_named(tmp_path):
    rng = np.random.default_rng(2)
    paths = _stores(tmp_path, {"a": rng.standard_normal((50, 4)), "dead": np.full((50, 3), 0.25)})
    with pytest.raises(FitError, match="network 'dead': every feature is constant"):
        _blocks(tmp_path, paths)


def test_singular_gram_with_alpha_zero_is_a_clear_error_and_alpha_positive_is_fine(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((60, 3))
    a = np.hstack([a, a[:, :1] + a[:, 1:2]])  # rank 3 of 4
    bl = _blocks(tmp_path, _stores(tmp_path, {"a": a, "b": rng.standard_normal((60, 2))}))
    with pytest.raises(FitError, match=r"singular \(rank 3 of 4\) and alpha=0"):
        ridge.fit_maps(bl, "a", ["b"], 0.0)
    assert np.isfinite(ridge.fit_maps(bl, "a", ["b"], 1e-3)["b"].weight).all()


def test_more_dimensions_than_samples_is_well_defined_with_alpha(tmp_path):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((20, 50)), rng.standard_normal((20, 30))
    bl = _blocks(tmp_path, _stores(tmp_path, {"a": a, "b": b}))
    m = ridge.fit_maps(bl, "a", ["b"], 2.0)["b"]
    ref = Ridge(alpha=2.0).fit(a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(m.weight, ref.coef_.T, rtol=1e-5, atol=1e-7)
    with pytest.raises(FitError, match="singular"):
        ridge.fit_maps(bl, "a", ["b"], 0.0)


def test_zero_vectors_and_constant_targets_keep_every_table_cell_finite(tmp_path):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((48, 4))
    a[:8] = 0.0  # all-zero embeddings for some images (cosine of a zero vector)
    b = rng.standard_normal((48, 4))
    paths = _stores(tmp_path, {"a": a, "b": b})
    ev = stores.open_matched(paths, need_classifier=True)
    zero = linear.LinearMap(np.zeros((4, 4)), np.zeros(4), {})  # maps everything to the origin
    t = closed_set.evaluate(ev, {"ridge": {("a", "b"): zero, ("b", "a"): zero}}, block_rows=10)
    # fit_r2: empty where no map was fitted; the comparisons with the natives: empty on the native rows
    numeric = t.drop(columns=["source", "target", "method", "fit_r2"])
    mapped = (t.method != "native").to_numpy()
    compared = ["diff_target", "diff_target_low", "diff_target_high", "p_target", "p_source"]
    assert np.isfinite(numeric[mapped].to_numpy(dtype=float)).all(), t
    assert np.isfinite(numeric[~mapped].drop(columns=compared).to_numpy(dtype=float)).all(), t
