"""The shared space: fitted from the blocks, checked against PCA and ridge on the raw features in memory, and on
stores with an exact linear relation (b = a R, c = a P) where a space of full dimension loses nothing."""

import numpy as np
import pytest

from embmap import stores
from embmap.evaluate import shared_space as ss
from embmap.evaluate.intervals import Bootstrap
from embmap.fit import FitError, gram
from embmap.fit import methods as fit_methods
from helpers import classified_right, linear_stores

INTERVALS = {"resamples": 200, "seed": 3, "level": 0.95}


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    dirs, feats, labels = linear_stores(tmp_path_factory.mktemp("linear"))
    fit = stores.open_matched({k: f"{d}/train.zarr" for k, d in dirs.items()})
    ev = stores.open_matched({k: f"{d}/test.zarr" for k, d in dirs.items()}, need_classifier=True)
    bl = gram.cross_products({k: s.embeddings for k, s in fit.items()}, block_rows=64)
    return bl, ev, feats, labels


def _direct(bl, alpha):
    return {(a, b): f for a in bl.names
            for b, f in fit_methods.fit_maps(bl, a, [t for t in bl.names if t != a], "ridge", alpha=alpha).items()}


def test_the_space_and_its_maps_equal_pca_and_ridge_on_the_raw_concatenated_features(linear):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge

    bl, _, feats, _ = linear
    k, alpha = 5, 0.7
    space = ss.fit(bl, dim=k, alpha=alpha)
    train = {a: feats[a][0] for a in bl.names}
    scale = {a: np.sqrt(np.mean([np.sum((x - x.mean(0)) ** 2) for x in train.values()])
                        / np.sum((train[a] - train[a].mean(0)) ** 2)) for a in bl.names}
    joint = np.hstack([scale[a] * train[a] for a in bl.names])
    pca = PCA(n_components=k, svd_solver="full").fit(joint)
    z = pca.transform(joint)  # the shared coordinates, up to each axis's sign
    np.testing.assert_allclose(space.eigenvalues, pca.explained_variance_ * (len(joint) - 1), rtol=1e-8)
    for a in bl.names:
        enc = Ridge(alpha=alpha).fit(train[a], z)
        ours = space.encoders[a](train[a])
        np.testing.assert_allclose(np.abs(ours), np.abs(enc.predict(train[a])), atol=1e-7)
        for b in bl.names:
            if b == a:
                continue
            dec = Ridge(alpha=alpha).fit(z, train[b])
            by_hand = dec.predict(enc.predict(train[a]))  # A -> shared -> B, signs cancel
            np.testing.assert_allclose(space.route(a, b)(train[a]), by_hand, atol=1e-7)
            np.testing.assert_allclose(space.decoders[b](space.encoders[a](train[a])), by_hand, atol=1e-7)
    assert space.parameters == sum(d * k + k + k * d + d for d in bl.dims)
    assert space.k == k and 0 < space.explained <= 1


def test_a_space_of_full_dimension_keeps_every_direct_maps_accuracy(linear):
    bl, ev, feats, labels = linear
    alpha = 1e-9
    direct = _direct(bl, alpha)
    for dim in (8, 20):  # the joint features' rank (b and c are functions of a), and all of them
        space = ss.fit(bl, dim=dim, alpha=alpha)
        t, summary = ss.evaluate(ev, direct, space, blocks=bl, block_rows=70, intervals=INTERVALS)
        assert list(t.columns) == ss.COLUMNS and len(t) == 6
        np.testing.assert_array_equal(t.accuracy_shared, t.accuracy_direct)
        assert (t["diff"] == 0).all() and (t.diff_low == 0).all() and (t.diff_high == 0).all()
        np.testing.assert_allclose(t.r2_shared, t.r2_direct, atol=1e-6)
        np.testing.assert_allclose(t.fit_r2_shared, t.fit_r2_direct, atol=1e-6)
        assert summary.mean_diff.tolist() == [0.0]


def test_a_narrow_space_loses_what_it_drops_and_every_column_is_rederived(linear):
    bl, ev, feats, labels = linear
    direct = _direct(bl, 1.0)
    space = ss.fit(bl, dim=2, alpha=1.0)
    t, summary = ss.evaluate(ev, direct, space, blocks=bl, block_rows=70, intervals=INTERVALS, controls=["c"])
    boot = Bootstrap(n=len(labels), resamples=200, seed=3)
    counts = np.concatenate(list(boot.weights()))
    for r in t.itertuples():
        x = feats[r.source][1]
        shared = space.decoders[r.target](space.encoders[r.source](x))
        right_s = classified_right(shared, ev[r.target], labels)
        right_d = classified_right(direct[(r.source, r.target)](x), ev[r.target], labels)
        assert r.accuracy_shared == pytest.approx(right_s.mean()) and r.accuracy_direct == pytest.approx(right_d.mean())
        d = (counts @ right_s - counts @ right_d) / len(labels)
        assert (r.diff_low, r.diff_high) == pytest.approx(tuple(np.quantile(d, [0.025, 0.975])))
        y = feats[r.target][1]
        assert r.r2_shared == pytest.approx(1 - np.sum((shared - y) ** 2) / np.sum((y - y.mean(0)) ** 2))
        assert r.parameters_shared == (bl.dims[bl.names.index(r.source)] + 1) * 2 + (2 + 1) * bl.dims[
            bl.names.index(r.target)]
    # two shared axes cannot carry a's eight dimensions to b
    assert t.set_index(["source", "target"]).loc[("a", "b"), "diff"] < -0.1
    assert list(summary.networks) == ["all", "without controls"] and summary.pairs.tolist() == [6, 2]


def test_the_default_dimension_is_the_smallest_networks_and_a_wider_one_is_refused(linear):
    bl, *_ = linear
    assert ss.fit(bl).k == 4
    with pytest.raises(FitError, match="shared_space.dim: 21"):
        ss.fit(bl, dim=21)
    assert ss.penalty({"alpha": 0.5}, {"alpha": 2.0}, {}) == 0.5
    assert ss.penalty({}, {"alpha": 2.0}, {}) == 2.0
    assert ss.direct_parameters([8, 8, 4]) == sum(da * db + db for da, db in ((8, 8), (8, 4), (8, 8), (8, 4),
                                                                               (4, 8), (4, 8)))
