"""The pass's squared-norm statistics (Q, U) equal direct sums over the rows, through folds, prefixes, shards and
stores, and move exactly between origins."""

import numpy as np
import pytest

from embmap import stores
from embmap.fit import blocks as bk
from embmap.fit import gram
from helpers import latent_embeddings


def _direct(feats: dict, origin: np.ndarray):
    """``Q[A, B] = sum_i a_i^A a_i^B`` and ``U[A] = sum_i a_i^A (z_i - origin)`` written out, float64."""
    z = np.concatenate([np.asarray(x, np.float64) for x in feats.values()], axis=1) - origin
    off = np.concatenate([[0], np.cumsum([x.shape[1] for x in feats.values()])])
    a = np.stack([(z[:, off[k]:off[k + 1]] ** 2).sum(axis=1) for k in range(len(feats))], axis=1)
    return a.T @ a, a.T @ z


def _close(nm, feats, rtol=1e-12):
    q, u = _direct(feats, nm.origin)
    np.testing.assert_allclose(nm.q, q, rtol=rtol)
    np.testing.assert_allclose(nm.u, u, rtol=rtol, atol=rtol * np.abs(u).max())


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_pass_norms_are_the_sums_over_rows_of_the_whole_folds_and_prefixes(precision):
    _, xs = latent_embeddings(n=900, dims=(9, 6, 4), offset=40.0, seed=3)
    feats = {f"n{i}": x for i, x in enumerate(xs)}
    bl = gram.cross_products(feats, folds=3, block_rows=50, precision=precision, sample_sizes=(120, 333))
    nm = bl.sqnorms()
    assert nm.q.shape == (3, 3) and nm.u.shape == (3, 19) and nm.origin.dtype == np.float64
    _close(nm, feats)  # from the rows as read: float32 products change nothing here
    fold = gram.layout(900, folds=3, block_rows=50).fold_of(np.arange(900))
    for k, f in enumerate(bl.folds):
        _close(f.sqnorms(), {a: x[fold == k] for a, x in feats.items()})
    for m, sub in bl.subsets.items():
        _close(sub.sqnorms(), {a: x[:m] for a, x in feats.items()})


def test_centred_norm_products_equal_the_centred_squared_norms_whatever_the_offset():
    _, xs = latent_embeddings(n=400, dims=(8, 5), offset=1000.0, seed=1)
    feats = {f"n{i}": x for i, x in enumerate(xs)}
    bl = gram.cross_products(feats, block_rows=64)
    k = {a: ((np.asarray(x, np.float64) - np.asarray(x, np.float64).mean(0)) ** 2).sum(1) for a, x in feats.items()}
    for a, b in bl.pairs():
        assert bl.centred_norm_products(a, b) == pytest.approx(float(k[a] @ k[b]), rel=1e-10)


def test_reframe_moves_the_origin_exactly_and_pools_sets_of_other_origins():
    _, xs = latent_embeddings(n=300, dims=(7, 5, 3), offset=4.0, seed=5)
    feats = {f"n{i}": x.astype(np.float64) for i, x in enumerate(xs)}
    whole = gram.blocks_in_memory(feats)
    _close(bk.reframe(whole, np.zeros(15)), feats, rtol=1e-11)  # origin 0: the plain uncentred sums
    elsewhere = np.random.default_rng(0).standard_normal(15) * 3
    _close(bk.reframe(whole, elsewhere), feats, rtol=1e-11)
    parts = [gram.blocks_in_memory({a: x[r] for a, x in feats.items()}) for r in (slice(0, 90), slice(90, 300))]
    assert not np.array_equal(parts[0].sqnorms().origin, parts[1].sqnorms().origin)
    pooled = bk.pool(parts)
    np.testing.assert_array_equal(pooled.sqnorms().origin, parts[0].sqnorms().origin)
    _close(pooled.sqnorms(), feats, rtol=1e-11)


def test_shard_partials_on_disk_reduce_to_the_norms_of_the_whole(tmp_path):
    _, xs = latent_embeddings(n=700, dims=(7, 5, 4), offset=30.0, seed=2)
    feats = {f"n{i}": x for i, x in enumerate(xs)}
    for folds in (1, 2):
        partials = []
        for j in range(3):
            partials.append(tmp_path / f"f{folds}shard{j}.zarr")
            stores.write_blocks(partials[-1], gram.cross_products(feats, j, 3, folds=folds, block_rows=50,
                                                                  sample_sizes=(130,)), full=False)
        opened = [stores.open_blocks(p) for p in partials]
        merged = gram.reduce(opened)
        stores.write_blocks(tmp_path / f"f{folds}blocks.zarr", merged)
        back = stores.open_blocks(tmp_path / f"f{folds}blocks.zarr")
        assert back.attrs["blocks_version"] == stores.BLOCKS_VERSION == 2
        first = opened[0].folds[0] if folds > 1 else opened[0]
        np.testing.assert_array_equal(back.sqnorms().origin, first.sqnorms().origin)  # one origin for every pool
        _close(back.sqnorms(), feats, rtol=1e-11)
        _close(back.subsets[130].sqnorms(), {a: x[:130] for a, x in feats.items()}, rtol=1e-11)
        fold = gram.layout(700, folds=folds, block_rows=50).fold_of(np.arange(700))
        for k, f in enumerate(back.folds):
            _close(f.sqnorms(), {a: x[fold == k] for a, x in feats.items()}, rtol=1e-11)
