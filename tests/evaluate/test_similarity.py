"""Similarity indices from blocks agree with textbook formulas on the raw feature matrices (1e-8 relative)."""

import numpy as np
import pytest
from scipy.linalg import fractional_matrix_power, orthogonal_procrustes

from embmap.evaluate import similarity as sim
from embmap.fit import gram, ridge
from helpers import latent_embeddings

RTOL = 1e-8


@pytest.fixture(scope="module")
def feats():
    _, xs = latent_embeddings(n=300, dims=(12, 9, 7), noise=0.5, offset=3.0, seed=4)
    feats = {f"n{i}": x.astype(np.float64) for i, x in enumerate(xs)}
    return feats, gram.blocks_in_memory(feats)


def centred(x):
    return x - x.mean(axis=0)


def value(table, a, b, index):
    t = table[(table.source == a) & (table.target == b) & (table["index"] == index)]
    assert len(t) == 1
    return float(t.value.iloc[0])


def canonical_correlations(x, y):
    """Björck and Golub: the singular values of Q_x' Q_y, with Q from QR of the centred matrices."""
    qx, _ = np.linalg.qr(centred(x))
    qy, _ = np.linalg.qr(centred(y))
    return np.linalg.svd(qx.T @ qy, compute_uv=False)


def test_linear_cka_from_centred_gram_matrices_of_samples(feats):
    f, bl = feats
    t = sim.similarity(bl, ["cka"])
    for a, b in [("n0", "n1"), ("n0", "n2"), ("n1", "n2")]:
        k, l_ = centred(f[a]) @ centred(f[a]).T, centred(f[b]) @ centred(f[b]).T
        want = np.trace(k @ l_) / np.sqrt(np.trace(k @ k) * np.trace(l_ @ l_))
        assert value(t, a, b, "cka") == pytest.approx(want, rel=RTOL)
    assert len(t) == 3  # unordered pairs only


def test_mean_squared_cca_without_and_with_a_ridge(feats):
    f, bl = feats
    a, b = "n0", "n1"
    rho = canonical_correlations(f[a], f[b])
    assert value(sim.similarity(bl, ["cca"], cca_ridge=0.0), a, b, "cca") == pytest.approx(
        np.mean(rho ** 2), rel=RTOL)
    # with the ridge: the textbook whitened cross-covariance with the ridged covariances
    eps = 0.05
    ca, cb = centred(f[a]), centred(f[b])
    ra = ca.T @ ca + eps * np.trace(ca.T @ ca) / ca.shape[1] * np.eye(ca.shape[1])
    rb = cb.T @ cb + eps * np.trace(cb.T @ cb) / cb.shape[1] * np.eye(cb.shape[1])
    k = fractional_matrix_power(ra, -0.5) @ ca.T @ cb @ fractional_matrix_power(rb, -0.5)
    want = np.sum(np.linalg.svd(np.real(k), compute_uv=False) ** 2) / min(ca.shape[1], cb.shape[1])
    assert value(sim.similarity(bl, ["cca"], cca_ridge=eps), a, b, "cca") == pytest.approx(want, rel=RTOL)


def test_svcca_keeps_the_top_k_principal_directions_then_cca(feats):
    f, bl = feats
    a, b, k = "n0", "n2", 4
    reduced = []
    for x in (f[a], f[b]):
        _, _, vt = np.linalg.svd(centred(x), full_matrices=False)
        reduced.append(centred(x) @ vt[:k].T)
    want = np.mean(canonical_correlations(*reduced))
    got = value(sim.similarity(bl, ["svcca"], svcca_k=k, cca_ridge=0.0), a, b, "svcca")
    assert got == pytest.approx(want, rel=RTOL)


def netrep_whiten(x, alpha):
    """netrep.utils.whiten, written out: partial whitening that keeps the total variance."""
    if alpha > 1 - 1e-7:
        return x
    lam, v = np.linalg.eigh(x.T @ x)
    lam = np.maximum(lam, 1e-7)
    d = alpha + (1 - alpha) * lam ** -0.5
    new_var = np.sum(alpha ** 2 * lam + 2 * alpha * (1 - alpha) * lam ** 0.5 + (1 - alpha) ** 2)
    d *= np.sqrt(np.sum(lam) / new_var)
    return x @ ((v * d) @ v.T)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
def test_angular_shape_metric_as_netrep_defines_it(feats, alpha):
    """Centre, (partially) whiten, zero-pad the smaller space, best rotation, angle between the two."""
    f, bl = feats
    a, b = "n0", "n1"  # 12 and 9 dimensions: B is zero-padded
    xa, xb = netrep_whiten(centred(f[a]), alpha), netrep_whiten(centred(f[b]), alpha)
    xb = np.c_[xb, np.zeros((len(xb), xa.shape[1] - xb.shape[1]))]
    r, _ = orthogonal_procrustes(xa, xb)
    want = np.arccos(np.sum((xa @ r) * xb) / np.linalg.norm(xa) / np.linalg.norm(xb))
    got = value(sim.similarity(bl, ["procrustes"], shape_alpha=alpha), a, b, "procrustes")
    assert got == pytest.approx(want, rel=RTOL)


def test_r2_both_ways_and_the_matrices(feats):
    f, bl = feats
    r2 = {}
    for a in bl.names:
        for b, m in ridge.fit_maps(bl, a, [t for t in bl.names if t != a], 1.0).items():
            r2[(a, b)] = m.attrs["fit_r2"]
    t = sim.similarity(bl, list(sim.INDICES), fit_r2=r2, samples=f, eval_samples=f)
    assert list(t.columns) == sim.COLUMNS
    symmetric = sum(i.symmetric for i in sim.INDICES.values())
    assert len(t[t["index"] == "r2"]) == 6 and len(t) == symmetric * 3 + 6
    # fit-split R^2 of the ridge map from the raw features
    from sklearn.linear_model import Ridge

    pred = Ridge(alpha=1.0).fit(f["n0"], f["n1"]).predict(f["n0"])
    want = 1 - np.sum((f["n1"] - pred) ** 2) / np.sum(centred(f["n1"]) ** 2)
    assert value(t, "n0", "n1", "r2") == pytest.approx(want, rel=1e-8)
    assert value(t, "n1", "n0", "r2") != pytest.approx(want, rel=1e-3)  # both ways, not one number
    m = sim.matrices(t, bl.names)
    assert set(m) == set(sim.INDICES)
    assert m["cka"].loc["n1", "n0"] == m["cka"].loc["n0", "n1"] and np.isnan(m["cka"].loc["n0", "n0"])
    assert m["r2"].loc["n1", "n0"] == value(t, "n1", "n0", "r2")
    assert (t[t["index"] == "cca"].parameters.str.contains("ridge 1e-06")).all()


def test_identical_spaces_up_to_rotation_are_similar_and_random_ones_are_not():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6))
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    bl = gram.blocks_in_memory({"x": x, "rot": 3 * x @ q + 1, "rnd": rng.standard_normal((500, 6))})
    t = sim.similarity(bl, ["cka", "cca", "svcca", "procrustes"], cca_ridge=0.0, svcca_k=3)
    for index, same in [("cka", 1.0), ("cca", 1.0), ("svcca", 1.0), ("procrustes", 0.0)]:
        assert value(t, "x", "rot", index) == pytest.approx(same, abs=1e-6)
    assert value(t, "x", "rnd", "cka") < 0.1 and value(t, "x", "rnd", "procrustes") > 1.0


def test_unknown_index_is_refused():
    bl = gram.blocks_in_memory({"a": np.eye(4), "b": np.eye(4)[::-1]})
    with pytest.raises(ValueError, match="similarity.indices: unknown index 'cka2'"):
        sim.similarity(bl, ["cka2"])


def _hsic_unbiased_by_gram_matrices(x, y):
    """Song et al. (2012), eq. 5, written out with the n x n Gram matrices (as platonic-rep's hsic_unbiased)."""
    n = len(x)
    k, l = x @ x.T, y @ y.T
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    one = np.ones(n)
    return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3))


def _debiased(x, y):
    x, y = centred(x), centred(y)
    return _hsic_unbiased_by_gram_matrices(x, y) / np.sqrt(
        _hsic_unbiased_by_gram_matrices(x, x) * _hsic_unbiased_by_gram_matrices(y, y))


def test_debiased_cka_is_the_unbiased_hsic_estimator_and_near_zero_for_unrelated_spaces(feats):
    f, bl = feats
    t = sim.similarity(bl, ["cka_debiased", "cka"])  # from the blocks and squared norms: no samples
    for a, b in (("n0", "n1"), ("n0", "n2"), ("n1", "n2")):
        assert value(t, a, b, "cka_debiased") == pytest.approx(_debiased(f[a], f[b]), rel=1e-9)
    # issue 23: independent Gaussian spaces of 200 and 240 dimensions: biased CKA 0.88 at n = 32, debiased ~0
    rng = np.random.default_rng(0)
    for n, biased_above in ((32, 0.8), (256, 0.4)):
        x, y = rng.standard_normal((n, 200)), rng.standard_normal((n, 240))
        t = sim.similarity(gram.blocks_in_memory({"x": x, "y": y}), ["cka", "cka_debiased"])
        assert value(t, "x", "y", "cka") > biased_above
        assert abs(value(t, "x", "y", "cka_debiased")) < 0.05
        assert value(t, "x", "y", "cka_debiased") == pytest.approx(_debiased(x, y), rel=1e-8, abs=1e-12)
    # equal up to a rotation and a scale: 1 exactly
    q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    rot = {"x": f["n0"], "y": 3.0 * f["n0"] @ q}
    t = sim.similarity(gram.blocks_in_memory(rot), ["cka_debiased"])
    assert value(t, "x", "y", "cka_debiased") == pytest.approx(1.0, abs=1e-12)
    assert t.n.iloc[0] == len(f["n0"]) and "pass's statistics on all n fit samples" in t.parameters.iloc[0]


def test_debiased_cka_can_be_negative_for_unrelated_spaces():
    """An unbiased estimate of 0 falls on both sides of it: never clipped to [0, 1]."""
    rng = np.random.default_rng(1)
    values = []
    for _ in range(12):
        x, y = rng.standard_normal((24, 30)), rng.standard_normal((24, 40))
        values.append(value(sim.similarity(gram.blocks_in_memory({"x": x, "y": y}), ["cka_debiased"]), "x", "y",
                            "cka_debiased"))
        assert values[-1] == pytest.approx(_debiased(x, y), rel=1e-8, abs=1e-12)
    assert min(values) < 0 < max(values)


def _pass_on_disk(tmp_path, feats, tag, shards, folds=1, sizes=()):
    """The shard jobs and the reduce job as the workflow runs them: partials and the block store on disk."""
    from embmap import stores

    paths = []
    for j in range(shards):
        paths.append(tmp_path / f"{tag}/shard{j}.zarr")
        stores.write_blocks(paths[-1], gram.cross_products(feats, j, shards, folds=folds, block_rows=40,
                                                           sample_sizes=sizes), full=False)
    stores.write_blocks(tmp_path / f"{tag}/blocks.zarr", gram.reduce([stores.open_blocks(p) for p in paths]))
    return stores.open_blocks(tmp_path / f"{tag}/blocks.zarr")


@pytest.mark.parametrize("shards,folds", [(1, 1), (3, 1), (4, 2)])
def test_debiased_cka_from_the_pass_equals_the_n_by_n_formula_on_raw_features(tmp_path, shards, folds):
    """Raw float32 features far from the origin (offset 50), the pass on disk with shards, folds and prefixes:
    every value equals the brute-force n x n computation on the rows it covers, to 1e-8."""
    _, xs = latent_embeddings(n=330, dims=(14, 9, 30), noise=2.0, offset=50.0, seed=8)
    feats = {f"n{i}": x for i, x in enumerate(xs)}
    raw = {a: np.asarray(x, np.float64) for a, x in feats.items()}
    sizes = (25, 100)
    bl = _pass_on_disk(tmp_path, feats, f"s{shards}f{folds}", shards, folds, sizes)
    sets = [(bl, slice(None))] + [(bl.subsets[m], slice(0, m)) for m in sizes]
    fold = gram.layout(330, folds=folds, block_rows=40).fold_of(np.arange(330))
    sets += [(f, fold == k) for k, f in enumerate(bl.folds)]
    for blocks, rows in sets:
        t = sim.similarity(blocks, ["cka_debiased"])
        for a, b in (("n0", "n1"), ("n0", "n2"), ("n1", "n2")):
            want = _debiased(raw[a][rows], raw[b][rows])
            assert value(t, a, b, "cka_debiased") == pytest.approx(want, rel=1e-8, abs=1e-10), (blocks.n, a, b)
        assert (t.n == blocks.n).all()


def test_debiased_cka_on_a_block_store_without_norms_says_to_rerun_the_pass(tmp_path):
    """A block store of blocks_version 1 (before the squared norms) still serves every other index."""
    import zarr

    from embmap import stores
    from embmap.fit.blocks import NoNorms

    _, xs = latent_embeddings(n=80, dims=(6, 5), seed=2)
    old = gram.blocks_in_memory({f"n{i}": x for i, x in enumerate(xs)})
    old.norms = None  # as the pass wrote them before
    path = tmp_path / "fit" / "blocks.zarr"
    stores.write_blocks(path, old)
    g = zarr.open_group(str(path), mode="r+")
    del g.attrs["blocks_version"]
    stores.consolidate(path)
    bl = stores.open_blocks(path)
    assert "norms" not in zarr.open_group(str(path), mode="r")
    t = sim.similarity(bl, ["cka", "cca"])
    assert len(t) == 2 and np.isfinite(t.value).all()
    with pytest.raises(NoNorms, match=r"block store .*blocks\.zarr: no squared-norm statistics .*cka_debiased.*"
                                      r"re-run the pass: delete .*blocks\.zarr"):
        sim.similarity(bl, ["cka_debiased"])
    g.attrs["blocks_version"] = 3
    stores.consolidate(path)
    with pytest.raises(stores.StoreError, match="blocks_version.*newer embmap"):
        stores.open_blocks(path)


def test_every_row_states_the_samples_and_both_dimensions_beside_the_value():
    rng = np.random.default_rng(8)
    feats = {"a": rng.standard_normal((60, 7)), "b": rng.standard_normal((60, 5))}
    t = sim.similarity(gram.blocks_in_memory(feats), ["cka", "cka_debiased"])
    assert (t.n == 60).all() and (t.source_dim == 7).all() and (t.target_dim == 5).all()
