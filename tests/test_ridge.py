"""Ridge maps from one-pass blocks agree with independent references."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from conftest import latent_embeddings
from embmap import ridge


def _fit_all(feats, alpha, chunk_rows=128):
    arrays = {f"n{i}": x for i, x in enumerate(feats)}
    cp = ridge.cross_products(arrays, chunk_rows=chunk_rows)
    means, blocks = ridge.centred_blocks(cp)

    class _Blocks(ridge.Blocks):
        def gram(self, a, b):
            return blocks[(a, b)] if (a, b) in blocks else blocks[(b, a)].T

    bl = _Blocks(list(arrays), cp["n"], means, None)
    return arrays, bl


@pytest.mark.parametrize("alpha", [0.0, 1.0, 250.0])
def test_ridge_maps_match_sklearn_ridge_with_intercept(alpha):
    _, feats = latent_embeddings(n=500, dims=(12, 9, 7))
    arrays, bl = _fit_all(feats, alpha)
    for a, xa in arrays.items():
        targets = [b for b in arrays if b != a]
        maps = ridge.fit_maps(bl, a, targets, alpha)
        for b in targets:
            ref = Ridge(alpha=alpha, fit_intercept=True, solver="cholesky").fit(
                xa.astype(np.float64), arrays[b].astype(np.float64))
            np.testing.assert_allclose(maps[b].weight, ref.coef_.T, rtol=1e-5, atol=1e-7 * np.abs(ref.coef_).max())
            np.testing.assert_allclose(maps[b].intercept, ref.intercept_, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_large_feature_means_do_not_cost_precision(precision):
    # features with means 300 times their spread: unshifted float32 sums lose every digit
    _, feats = latent_embeddings(n=3000, dims=(10, 8), noise=1.0, offset=300.0, seed=3)
    arrays = {"a": feats[0], "b": feats[1]}
    cp = ridge.cross_products(arrays, chunk_rows=256, precision=precision)
    means, blocks = ridge.centred_blocks(cp)
    bl = ridge.Blocks(["a", "b"], cp["n"], means, None)
    bl.gram = lambda a, b: blocks[(a, b)] if (a, b) in blocks else blocks[(b, a)].T
    m = ridge.fit_maps(bl, "a", ["b"], 1.0)["b"]
    ref = Ridge(alpha=1.0).fit(feats[0].astype(np.float64), feats[1].astype(np.float64))
    np.testing.assert_allclose(m.weight, ref.coef_.T, rtol=1e-4, atol=1e-4 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(m.intercept, ref.intercept_, rtol=1e-4)


def test_blocks_equal_centred_products_and_count():
    _, feats = latent_embeddings(n=301, dims=(5, 4))
    cp = ridge.cross_products({"a": feats[0], "b": feats[1]}, chunk_rows=64)
    means, blocks = ridge.centred_blocks(cp)
    assert cp["n"] == 301
    xa = feats[0].astype(np.float64) - feats[0].astype(np.float64).mean(0)
    xb = feats[1].astype(np.float64) - feats[1].astype(np.float64).mean(0)
    np.testing.assert_allclose(blocks[("a", "b")], xa.T @ xb, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(blocks[("a", "a")], xa.T @ xa, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(means["b"], feats[1].astype(np.float64).mean(0), rtol=1e-6, atol=1e-6)


def test_shards_sum_to_the_whole_pass():
    _, feats = latent_embeddings(n=400, dims=(6, 5))
    arrays = {"a": feats[0], "b": feats[1]}
    shifts = {k: ridge.shift_of(v) for k, v in arrays.items()}
    whole = ridge.cross_products(arrays, shifts=shifts, chunk_rows=50)
    parts = [ridge.cross_products(arrays, s, e, shifts=shifts, chunk_rows=50) for s, e in [(0, 150), (150, 400)]]
    np.testing.assert_allclose(parts[0]["gram"] + parts[1]["gram"], whole["gram"], rtol=1e-10)


def test_gram_chunk_is_the_symmetric_product():
    x = np.random.default_rng(0).standard_normal((33, 7)).astype(np.float32)
    g = np.triu(ridge.gram_chunk(x, np.zeros(7, np.float32)))
    full = np.c_[x, np.ones(33)].astype(np.float64)
    np.testing.assert_allclose(g, np.triu(full.T @ full), rtol=1e-5, atol=1e-4)


def test_singular_gram_with_zero_alpha_is_a_clear_error():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((50, 3)).astype(np.float32)
    x = np.c_[base, base[:, :1]]  # a duplicated column
    _, bl = _fit_all([x, rng.standard_normal((50, 2)).astype(np.float32)], 0.0)
    with pytest.raises(ridge.FitError, match="singular"):
        ridge.fit_maps(bl, "n0", ["n1"], 0.0)


def test_nonfinite_features_name_the_network():
    _, feats = latent_embeddings(n=100, dims=(4, 4))
    feats[1][17, 2] = np.nan
    cp = ridge.cross_products({"good": feats[0], "bad": feats[1]}, chunk_rows=32)
    with pytest.raises(ridge.FitError, match="'bad'"):
        ridge.centred_blocks(cp)


def test_fit_r2_from_blocks_equals_r2_of_predictions():
    _, feats = latent_embeddings(n=400, dims=(8, 6))
    arrays, bl = _fit_all(feats, 2.0)
    m = ridge.fit_maps(bl, "n0", ["n1"], 2.0)["n1"]
    pred = feats[0].astype(np.float64) @ m.weight + m.intercept
    y = feats[1].astype(np.float64)
    r2 = 1 - ((y - pred) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()
    assert m.attrs["fit_r2"] == pytest.approx(r2, rel=1e-6)


def test_analytic_map_reproduces_source_logits():
    """Theorem 3.2, re-derived: C_B (f_A M* + c) + b_B = C_A f_A + b_A when C_B has full row rank."""
    rng = np.random.default_rng(2)
    ca, ba = rng.standard_normal((10, 16)), rng.standard_normal(10)
    cb, bb = rng.standard_normal((10, 24)), rng.standard_normal(10)
    fa = rng.standard_normal((50, 16))
    m = ridge.analytic_map((ca, ba), (cb, bb))
    assert m.attrs["exact"]
    logits_b = m(fa) @ cb.T + bb
    np.testing.assert_allclose(logits_b, fa @ ca.T + ba, rtol=1e-9, atol=1e-9)
