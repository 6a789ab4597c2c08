"""Ridge maps from one-pass blocks agree with independent references."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from embmap import stores
from embmap.evaluate import closed_set
from embmap.fit import FitError, gram, ridge
from helpers import latent_embeddings


def reduce_partials(paths, output, **attrs):
    """The reduce job: open the partials, pool them, write the block store."""
    merged = gram.reduce([stores.open_blocks(p) for p in paths], [str(p) for p in paths])
    stores.write_blocks(output, merged, **attrs)
    return merged


def _arrays(feats):
    return {f"n{i}": x for i, x in enumerate(feats)}


def _centred(x):
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 250.0])
def test_ridge_maps_match_sklearn_ridge_with_intercept(alpha):
    _, feats = latent_embeddings(n=500, dims=(12, 9, 7))
    arrays = _arrays(feats)
    bl = gram.cross_products(arrays, block_rows=128)
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
    bl = gram.cross_products({"a": feats[0], "b": feats[1]}, block_rows=256, precision=precision)
    m = ridge.fit_maps(bl, "a", ["b"], 1.0)["b"]
    ref = Ridge(alpha=1.0).fit(feats[0].astype(np.float64), feats[1].astype(np.float64))
    np.testing.assert_allclose(m.weight, ref.coef_.T, rtol=1e-4, atol=1e-4 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(m.intercept, ref.intercept_, rtol=1e-4)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_coefficients_at_imagenet_sample_count_match_a_float64_reference(precision):
    """1.3 million samples with means 1000 times their spread, three shards pooled: 1e-4 relative."""
    n = 1_300_000
    rng = np.random.default_rng(7)
    z = rng.standard_normal((n, 4))
    xa = (z @ rng.standard_normal((4, 6)) + rng.standard_normal((n, 6)) + 1000.0).astype(np.float32)
    xb = (z @ rng.standard_normal((4, 5)) + 0.5 * rng.standard_normal((n, 5)) - 700.0).astype(np.float32)
    arrays = {"a": xa, "b": xb}
    parts = [gram.cross_products(arrays, shard=j, shards=3, precision=precision, num_workers=2) for j in range(3)]
    bl = gram.pool(parts)
    m = ridge.fit_maps(bl, "a", ["b"], 10.0)["b"]
    # reference: exact two-pass centring and a direct solve, all in float64
    ca, cb = _centred(xa), _centred(xb)
    w_ref = np.linalg.solve(ca.T @ ca + 10.0 * np.eye(6), ca.T @ cb)
    c_ref = xb.mean(axis=0, dtype=np.float64) - xa.mean(axis=0, dtype=np.float64) @ w_ref
    assert bl.n == n
    np.testing.assert_allclose(m.weight, w_ref, rtol=1e-4, atol=1e-4 * np.abs(w_ref).max())
    np.testing.assert_allclose(m.intercept, c_ref, rtol=1e-4)
    # the test can fail: float32 products of the unshifted features, summed per block in float64, miss it
    joint = np.c_[xa, xb]
    g = sum(np.asarray(joint[i:i + 4096].T @ joint[i:i + 4096], np.float64) for i in range(0, n, 4096))
    mean = joint.mean(axis=0, dtype=np.float64)
    s = g - n * np.outer(mean, mean)
    w_naive = np.linalg.solve(s[:6, :6] + 10.0 * np.eye(6), s[:6, 6:])
    assert float(np.abs(w_naive - w_ref).max()) > 1e-3 * float(np.abs(w_ref).max())


def test_blocks_equal_centred_products_and_count():
    _, feats = latent_embeddings(n=301, dims=(5, 4))
    bl = gram.cross_products({"a": feats[0], "b": feats[1]}, block_rows=64)
    assert bl.n == 301
    xa, xb = _centred(feats[0]), _centred(feats[1])
    np.testing.assert_allclose(bl.gram("a", "b"), xa.T @ xb, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(bl.gram("b", "a"), xb.T @ xa, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(bl.gram("a", "a"), xa.T @ xa, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(bl.sumsq("b"), (xb ** 2).sum(0), rtol=1e-5)
    np.testing.assert_allclose(bl.means["b"], feats[1].astype(np.float64).mean(0), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dims,panel_rows,width", [((5, 4, 7, 3, 9), 6, 4),
                                                   ((256, 256, 448, 512, 1008, 1080), 1024, 2048)])
def test_pass_tiles_cover_the_upper_triangle_once(dims, panel_rows, width):
    """Every entry on or above the diagonal of the joint Gram is computed once; below it only the panels' square
    diagonal parts (symmetric products), never read: the blocks (A, B) read have A at or before B."""
    off = np.concatenate([[0], np.cumsum(dims)])
    bounds = gram.panels_of(list(dims), panel_rows)
    count = np.zeros((off[-1], off[-1]), dtype=int)
    diagonal = np.zeros_like(count, dtype=bool)
    for r0, r1 in bounds:
        diagonal[r0:r1, r0:r1] = True
    for p, r1, c0, c1 in gram._tiles(bounds, off, width):
        assert (c0, c1) == bounds[p] or c1 - c0 <= width
        count[bounds[p][0]:r1, c0:c1] += 1
    upper = np.triu(np.ones_like(count, dtype=bool))
    np.testing.assert_array_equal(count[upper], 1)
    np.testing.assert_array_equal(count[~upper], diagonal[~upper])


def test_a_panels_diagonal_tile_is_a_symmetric_product():
    """The diagonal tile equals the GEMM of the same columns bit for bit where BLAS makes it exact (small integers),
    and is exactly symmetric (syrk fills one triangle, numpy mirrors it)."""
    rng = np.random.default_rng(3)
    x = rng.integers(-8, 8, size=(300, 40)).astype(np.float32)
    out = gram._add_tile(None, x, 5, 25, 5, 25)
    np.testing.assert_array_equal(out, x[:, 5:25].T.astype(np.float64) @ x[:, 5:25])
    np.testing.assert_array_equal(out, out.T)


def test_blocks_of_many_panels_and_tiles_equal_centred_products():
    _, feats = latent_embeddings(n=500, dims=(5, 4, 7, 3, 9), offset=3.0)
    acc = gram._Accumulator([f.shape[1] for f in feats], np.zeros(28), panel_rows=6)
    acc.tiles = gram._tiles(acc.bounds, acc.offsets, width=4)
    x = np.concatenate(feats, axis=1).astype(np.float64)
    for lo in range(0, 500, 128):
        acc.add(np.ascontiguousarray(x[lo:lo + 128]))
    names = [f"n{i}" for i in range(5)]
    bl = acc.centred(names, {})
    xc = x - x.mean(axis=0)
    off = np.concatenate([[0], np.cumsum([f.shape[1] for f in feats])])
    for i in range(5):
        for j in range(5):
            np.testing.assert_allclose(bl.gram(names[i], names[j]), xc[:, off[i]:off[i + 1]].T @ xc[:, off[j]:off[j + 1]],
                                       rtol=1e-9, atol=1e-9)


def test_shards_read_every_block_once_and_pool_to_the_whole_pass():
    _, feats = latent_embeddings(n=1000, dims=(6, 5, 3), offset=20.0)
    arrays = _arrays(feats)
    whole = gram.cross_products(arrays, block_rows=64)
    parts = [gram.cross_products(arrays, shard=j, shards=4, block_rows=64) for j in range(4)]
    lay = gram.layout(1000, shards=4, block_rows=64)
    seen = sorted(i for j in range(4) for b in lay.blocks(j) for i in range(*lay.span(b)))
    assert seen == list(range(1000))
    assert [p.n for p in parts] == [sum(np.diff(lay.span(b))[0] for b in lay.blocks(j)) for j in range(4)]
    pooled = gram.pool(parts)
    assert pooled.n == 1000
    for a, b in whole.pairs():
        np.testing.assert_allclose(pooled.gram(a, b), whole.gram(a, b), rtol=1e-9, atol=1e-8)
    for a in arrays:
        np.testing.assert_allclose(pooled.means[a], whole.means[a], rtol=1e-12)


def test_fold_blocks_are_the_folds_centred_on_their_means_and_pool_to_the_whole():
    _, feats = latent_embeddings(n=900, dims=(5, 4), offset=5.0)
    arrays = _arrays(feats)
    bl = gram.cross_products(arrays, folds=3, block_rows=64)
    lay = gram.layout(900, folds=3, block_rows=64)
    fold = lay.fold_of(np.arange(900))
    assert len(bl.folds) == 3 and [f.n for f in bl.folds] == [int((fold == k).sum()) for k in range(3)]
    for k, f in enumerate(bl.folds):
        xa, xb = _centred(feats[0][fold == k]), _centred(feats[1][fold == k])
        np.testing.assert_allclose(f.gram("n0", "n1"), xa.T @ xb, rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(f.means["n1"], feats[1][fold == k].astype(np.float64).mean(0), rtol=1e-6)
    xa = _centred(feats[0])
    np.testing.assert_allclose(bl.gram("n0", "n0"), xa.T @ xa, rtol=1e-6, atol=1e-5)


def test_a_shard_with_a_multiple_of_the_folds_keeps_one_fold():
    lay = gram.layout(100_000, shards=10, folds=5)
    assert all(len(lay.folds_of_shard(j)) == 1 for j in range(10))
    assert len(gram.layout(100_000, shards=3, folds=5).folds_of_shard(0)) == 5


def _stores(tmp_path, feats, chunk_rows=50):
    out = {}
    ids = np.array([f"img/{i:05d}" for i in range(len(feats[0]))])
    for i, x in enumerate(feats):
        p = tmp_path / f"n{i}.zarr"
        stores.write_embeddings(p, x, ids, np.zeros(len(x), int), chunk_rows=chunk_rows, network=f"n{i}")
        out[f"n{i}"] = str(p)
    return out


def test_partials_on_disk_reduce_to_the_in_memory_pass(tmp_path):
    _, feats = latent_embeddings(n=700, dims=(7, 5, 4), offset=30.0)
    paths = _stores(tmp_path, feats)
    arrays = {k: stores.open_embeddings(p).embeddings for k, p in paths.items()}
    partials = []
    for j in range(3):
        partials.append(tmp_path / f"shard{j}.zarr")
        stores.write_blocks(partials[-1], gram.cross_products(arrays, j, 3, folds=2, block_rows=50), full=False)
    merged = reduce_partials(partials, tmp_path / "blocks.zarr", split="train")
    back = stores.open_blocks(tmp_path / "blocks.zarr")
    whole = gram.cross_products(_arrays(feats), folds=2, block_rows=50)
    assert back.n == merged.n == 700 and back.attrs["split"] == "train" and back.attrs["fold_n"] == [350, 350]
    for a, b in whole.pairs():
        np.testing.assert_allclose(back.gram(a, b), whole.gram(a, b), rtol=1e-9, atol=1e-8)
        for k in range(2):
            np.testing.assert_allclose(back.folds[k].gram(a, b), whole.folds[k].gram(a, b), rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(back.sumsq("n1"), np.diag(whole.gram("n1", "n1")), rtol=1e-12)
    # a missing shard is refused, not silently pooled into a smaller store
    with pytest.raises(FitError, match="do not cover shards"):
        reduce_partials(partials[:2], tmp_path / "bad.zarr")
    assert not (tmp_path / "bad.zarr").exists()


def test_cross_validated_alpha_matches_sklearn_refits_on_the_folds():
    """K-fold CV re-derived independently: sklearn Ridge refitted on each fold's complement."""
    _, feats = latent_embeddings(n=1200, dims=(15, 6, 4), noise=2.0, seed=4)
    arrays = _arrays(feats)
    alphas = [0.1, 30.0, 3000.0, 1e5]
    bl = gram.cross_products(arrays, folds=4, block_rows=4096)
    maps = ridge.fit_maps(bl, "n0", ["n1", "n2"], alphas)
    # as the docs say: 4,096, or n // (4 folds) when smaller; the maps record it
    assert bl.attrs["block_rows"] == 1200 // 16 and maps["n1"].attrs["cv_block_rows"] == 75
    fold = (np.arange(1200) // maps["n1"].attrs["cv_block_rows"]) % maps["n1"].attrs["cv_folds"]
    x = feats[0].astype(np.float64)
    for b in ("n1", "n2"):
        y = arrays[b].astype(np.float64)
        scores = []
        for alpha in alphas:
            rss = tss = 0.0
            for k in range(4):
                tr, te = fold != k, fold == k
                pred = Ridge(alpha=alpha).fit(x[tr], y[tr]).predict(x[te])
                rss += ((y[te] - pred) ** 2).sum()
                tss += ((y[te] - y[te].mean(0)) ** 2).sum()
            scores.append(1 - rss / tss)
        m = maps[b]
        np.testing.assert_allclose(m.attrs["cv_score"], scores, rtol=1e-7)
        assert m.attrs["alpha"] == alphas[int(np.argmax(scores))]
        assert m.attrs["alphas"] == alphas and m.attrs["cv_folds"] == 4
        ref = Ridge(alpha=m.attrs["alpha"]).fit(x, y)
        np.testing.assert_allclose(m.weight, ref.coef_.T, rtol=1e-6, atol=1e-9)
    # the noisy wide source overfits at the smallest alpha: the choice is not the first candidate
    assert maps["n1"].attrs["alpha"] != alphas[0]


def test_cv_needs_fold_blocks():
    _, feats = latent_embeddings(n=200, dims=(4, 3))
    bl = gram.cross_products(_arrays(feats))
    with pytest.raises(FitError, match="no folds"):
        ridge.fit_maps(bl, "n0", ["n1"], [1.0, 10.0])


def test_too_few_samples_for_the_folds_is_a_clear_error():
    with pytest.raises(FitError, match="cannot be cut into 5"):
        gram.layout(7, folds=5)


def test_gram_of_a_block_is_the_symmetric_product():
    x = np.random.default_rng(0).standard_normal((33, 7))
    acc = gram._Accumulator([3, 4], np.zeros(7), panel_rows=2)
    acc.add(np.ascontiguousarray(x))
    assert [p.shape for p in acc.panels] == [(3, 7), (4, 4)]  # the upper triangle, as row panels
    assert gram.panels_of([256, 256, 448, 512, 900, 10], 768) == [(0, 960), (960, 2372), (2372, 2382)]
    bl = acc.centred(["a", "b"], {})
    full = x - x.mean(0)
    np.testing.assert_allclose(bl.gram("a", "a"), full[:, :3].T @ full[:, :3], atol=1e-12)
    np.testing.assert_allclose(bl.gram("a", "b"), full[:, :3].T @ full[:, 3:], atol=1e-12)


def test_singular_gram_with_zero_alpha_is_a_clear_error():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((50, 3)).astype(np.float32)
    x = np.c_[base, base[:, :1]]  # a duplicated column
    bl = gram.cross_products(_arrays([x, rng.standard_normal((50, 2)).astype(np.float32)]))
    with pytest.raises(FitError, match="singular"):
        ridge.fit_maps(bl, "n0", ["n1"], 0.0)


def test_nonfinite_features_name_the_network():
    _, feats = latent_embeddings(n=100, dims=(4, 4))
    feats[1][17, 2] = np.nan
    with pytest.raises(FitError, match="'bad'"):
        gram.cross_products({"good": feats[0], "bad": feats[1]}, block_rows=32)


def test_fit_r2_from_blocks_equals_r2_of_predictions():
    _, feats = latent_embeddings(n=400, dims=(8, 6))
    bl = gram.cross_products(_arrays(feats))
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
    m = closed_set.analytic_map((ca, ba), (cb, bb))
    assert m.attrs["exact"]
    logits_b = m(fa) @ cb.T + bb
    np.testing.assert_allclose(logits_b, fa @ ca.T + ba, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("folds", [1, 2])
def test_more_shards_than_row_blocks_leave_empty_partials_that_pool_away(tmp_path, folds):
    _, feats = latent_embeddings(n=300, dims=(4, 3))
    arrays = _arrays(feats)
    paths = []
    for j in range(12):  # 300 rows in 3 blocks of 100 (9 of 37 with folds): the last shards get none
        paths.append(tmp_path / f"shard{j}.zarr")
        stores.write_blocks(paths[-1], gram.cross_products(arrays, j, 12, folds=folds, block_rows=100), full=False)
    assert stores.open_blocks(paths[-1]).n == 0
    back = reduce_partials(paths, tmp_path / "blocks.zarr")
    whole = gram.cross_products(arrays, folds=folds, block_rows=100)
    assert back.n == 300
    np.testing.assert_allclose(stores.open_blocks(tmp_path / "blocks.zarr").gram("n0", "n1"), whole.gram("n0", "n1"),
                               rtol=1e-9, atol=1e-9)


# -- the pass's reduction order and its prefix blocks ------------------------------------
def _norms(prefix, bl):
    nm = bl.sqnorms()
    return {f"{prefix}norms/origin": nm.origin, f"{prefix}norms/q": nm.q, f"{prefix}norms/u": nm.u}


def _all_blocks(bl):
    out = {"n": bl.n, **{f"mean/{a}": bl.means[a] for a in bl.names}, **_norms("", bl)}
    out.update({f"gram/{a}/{b}": bl.read(a, b) for a, b in bl.pairs()})
    for k, f in enumerate(bl.folds):
        if f.n:
            out.update({f"folds/{k}/gram/{a}/{b}": f.read(a, b) for a, b in f.pairs()})
            out.update(_norms(f"folds/{k}/", f))
    for m, sub in bl.subsets.items():
        out.update({f"subsets/{m}/gram/{a}/{b}": sub.read(a, b) for a, b in sub.pairs()})
        out.update(_norms(f"subsets/{m}/", sub))
    return out


def _pass(paths, tmp_path, tag, shards, folds=1, sizes=(), workers=2, blas_threads=None):
    """The shard jobs and the reduce job, on disk, as the workflow runs them."""
    from threadpoolctl import threadpool_limits

    from embmap import steps

    partials = [str(tmp_path / f"{tag}/shard{j}.zarr") for j in range(shards)]
    with threadpool_limits(blas_threads):
        for j, p in enumerate(partials):
            steps.cross_products_shard(paths, "train", shards, folds, "float32", j, p, threads=workers,
                                       sample_sizes=sizes)
    steps.cross_products(partials, str(tmp_path / f"{tag}/blocks.zarr"), "train", paths)
    return stores.open_blocks(tmp_path / f"{tag}/blocks.zarr")


def test_pass_is_bit_identical_whatever_the_workers_and_blas_threads(tmp_path):
    """Blocks are added in the order of the split, so how many threads read or multiply changes nothing."""
    _, feats = latent_embeddings(n=3000, dims=(20, 16, 9), offset=5.0, seed=7)
    paths = _stores(tmp_path, feats, chunk_rows=100)
    runs = [_all_blocks(_pass(paths, tmp_path, tag, shards=3, folds=2, sizes=(250, 1300), workers=w,
                              blas_threads=t))
            for tag, w, t in (("a", 1, 1), ("b", 4, 2), ("c", 2, None), ("d", 2, None))]
    assert len(runs[0]) > 20
    for other in runs[1:]:
        assert other.keys() == runs[0].keys()
        for k in runs[0]:
            np.testing.assert_array_equal(other[k], runs[0][k], err_msg=k)


def test_shard_counts_agree_to_rounding(tmp_path):
    """Across shard counts the sums are grouped differently: equal to float64 rounding, not bit for bit."""
    _, feats = latent_embeddings(n=3000, dims=(20, 16, 9), offset=5.0, seed=7)
    paths = _stores(tmp_path, feats, chunk_rows=100)
    one, five = (_all_blocks(_pass(paths, tmp_path, f"s{s}", shards=s, sizes=(250, 1300))) for s in (1, 5))
    assert one.keys() == five.keys()
    for k in one:
        np.testing.assert_allclose(five[k], one[k], rtol=1e-10, atol=1e-10 * np.abs(one[k]).max(), err_msg=k)


@pytest.mark.parametrize("shards,folds", [(1, 1), (3, 1), (4, 2)])
def test_prefix_blocks_equal_the_blocks_of_the_first_m_samples(tmp_path, shards, folds):
    """Sample-efficiency blocks from the same pass: each equals a fresh computation on the prefix alone."""
    _, feats = latent_embeddings(n=2100, dims=(11, 8, 5), offset=20.0, seed=3)
    paths = _stores(tmp_path, feats, chunk_rows=100)
    sizes = (150, 400, 1000, 2000)
    bl = _pass(paths, tmp_path, "p", shards=shards, folds=folds, sizes=sizes)
    assert sorted(bl.subsets) == list(sizes) and bl.attrs["sample_sizes"] == list(sizes)
    for m in sizes:
        sub = bl.subsets[m]
        assert sub.n == m
        for a, b in sub.pairs():
            ref = _centred(feats[int(a[1])][:m]).T @ _centred(feats[int(b[1])][:m])
            np.testing.assert_allclose(sub.gram(a, b), ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
        for k, a in enumerate(sub.names):
            np.testing.assert_allclose(sub.means[a], feats[k][:m].mean(0, dtype=np.float64), rtol=1e-6)
    whole = bl  # the whole split is unchanged by the cuts
    for a, b in whole.pairs():
        ref = _centred(feats[int(a[1])]).T @ _centred(feats[int(b[1])])
        np.testing.assert_allclose(whole.gram(a, b), ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


def test_sample_sizes_outside_the_split_are_refused():
    _, feats = latent_embeddings(n=300, dims=(4, 3))
    with pytest.raises(FitError, match=r"sample sizes \[300\] must lie between 1 and the fit split's 300"):
        gram.cross_products(_arrays(feats), sample_sizes=[300])


def test_each_shard_checks_the_ids_of_its_own_blocks_only(tmp_path):
    """Ids are compared block by block, each block by the shard that reads it: every id is read once."""
    from embmap import steps

    n = 10_000  # three row blocks of 4,000 (aligned to the stores' chunks of 1,000)
    _, feats = latent_embeddings(n=n, dims=(4, 3), seed=2)
    ids = [f"img/{i:05d}" for i in range(n)]
    bad = list(ids)
    bad[6500] = "img/intruder"
    for name, x, i in (("a", feats[0], ids), ("b", feats[1], bad)):
        stores.write_embeddings(tmp_path / f"{name}.zarr", x, i, np.zeros(n, int), chunk_rows=1000)
    paths = {k: str(tmp_path / f"{k}.zarr") for k in ("a", "b")}
    for shard in (0, 2):  # shards 0 and 2 of 3 never read row 6,500
        _, lay, _ = steps._open_shard(paths, 3, 1, shard)
    assert lay.n_blocks == 3 and lay.span(1) == (4000, 8000)
    with pytest.raises(stores.StoreError, match=r"network 'b': ids of .* disagree .* row 6500: 'img/intruder' vs "
                                                r"'img/06500'"):
        steps._open_shard(paths, 3, 1, 1)


def test_every_networks_own_block_is_exactly_symmetric_after_centring():
    """The centring subtracts s_i s_j / n, which rounds (i, j) and (j, i) apart; the own blocks are mirrored."""
    _, feats = latent_embeddings(n=700, dims=(37, 5, 60), offset=50.0)
    bl = gram.cross_products({f"n{i}": f.astype(np.float32) for i, f in enumerate(feats)}, block_rows=128,
                             precision="float32")
    for a in bl.names:
        np.testing.assert_array_equal(bl.gram(a, a), bl.gram(a, a).T)
