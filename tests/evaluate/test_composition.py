"""Composition A -> B -> C against A -> C, checked on stores with an exact linear relation (b = a R, c = a P)."""

import numpy as np
import pytest

from embmap.evaluate import composition
from embmap.evaluate.intervals import Bootstrap
from helpers import classified_right, linear_experiment, synthetic_stores

INTERVALS = {"resamples": 200, "seed": 5, "level": 0.95}


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    ev, maps, feats, labels = linear_experiment(tmp_path_factory.mktemp("linear"))
    table, summary = composition.composition(ev, maps, block_rows=70, intervals=INTERVALS, controls=["c"])
    return ev, maps, feats, labels, table, summary


def test_exact_hops_compose_exactly_and_a_lossy_hop_costs_accuracy(linear):
    *_, t, _ = linear
    lstsq = t[t.method == "lstsq"].set_index(["source", "via", "target"])
    assert len(t) == 2 * 6 and list(t.columns) == composition.COLUMNS
    # a -> b -> c = R R^-1 P = P = a -> c; and every hop out of c is the same least squares either way
    for triple in (("a", "b", "c"), ("b", "a", "c"), ("c", "a", "b"), ("c", "b", "a")):
        row = lstsq.loc[triple]
        assert row["diff"] == 0 and row.distance < 1e-9 and row.diff_low == row.diff_high == 0
        assert row.r2_composed == pytest.approx(row.r2_direct, abs=1e-9)
    # through c (4 dims) loses what P drops: a -> c -> b against the exact a -> b
    row = lstsq.loc[("a", "c", "b")]
    assert row["diff"] < -0.1 and row.diff_high < 0 and row.distance > 0.3 and row.r2_composed < 0.6


def test_every_column_against_the_composed_weights_on_the_raw_features(linear):
    ev, maps, feats, labels, t, _ = linear
    boot = Bootstrap(n=len(labels), resamples=200, seed=5)
    counts = np.concatenate(list(boot.weights()))
    for r in t.itertuples():
        ab, bc, ac = (maps[r.method][p] for p in ((r.source, r.via), (r.via, r.target), (r.source, r.target)))
        w, c = ab.weight @ bc.weight, ab.intercept @ bc.weight + bc.intercept  # the composed map, by hand
        fa, fc = feats[r.source], feats[r.target]
        comp, direct = fa @ w + c, fa @ ac.weight + ac.intercept
        k_comp, k_dir = classified_right(comp, ev[r.target], labels), classified_right(direct, ev[r.target], labels)
        assert r.accuracy_composed == pytest.approx(k_comp.mean()) and r.accuracy_direct == pytest.approx(k_dir.mean())
        assert r.diff == pytest.approx(k_comp.mean() - k_dir.mean())
        sst = np.sum((fc - fc.mean(0)) ** 2)
        assert r.r2_composed == pytest.approx(1 - np.sum((comp - fc) ** 2) / sst)
        assert r.r2_direct == pytest.approx(1 - np.sum((direct - fc) ** 2) / sst)
        spread = np.sum((direct - direct.mean(0)) ** 2)
        assert r.distance == pytest.approx(np.sum((comp - direct) ** 2) / spread, rel=1e-6, abs=1e-12)
        assert r.target_accuracy == pytest.approx(classified_right(fc, ev[r.target], labels).mean())
        d = counts @ (k_comp.astype(float) - k_dir) / len(labels)
        np.testing.assert_allclose([r.diff_low, r.diff_high], np.quantile(d, [0.025, 0.975]), atol=1e-12)
        a = counts @ k_comp / len(labels)
        np.testing.assert_allclose([r.accuracy_composed_low, r.accuracy_composed_high],
                                   np.quantile(a, [0.025, 0.975]))


def test_the_summary_is_the_mean_loss_per_hop_with_its_interval(linear):
    ev, maps, feats, labels, t, s = linear
    assert list(s.columns) == composition.SUMMARY_COLUMNS
    # every triple of three networks has the control c in it: one row per method, over all of them
    assert list(s.networks) == ["all", "all"] and list(s.triples) == [6, 6]
    for r in s.itertuples():
        sub = t[t.method == r.method]
        assert r.loss_per_hop == pytest.approx(-sub["diff"].mean())
        assert r.loss_per_hop_low <= r.loss_per_hop <= r.loss_per_hop_high
        assert r.distance == pytest.approx(sub.distance.mean())
        assert r.r2_drop == pytest.approx((sub.r2_direct - sub.r2_composed).mean())
    assert (s.loss_per_hop_low > 0).all()  # two of the six triples go through c's four dimensions and lose


def test_controls_get_a_summary_of_their_own_and_two_networks_are_refused(tmp_path):
    from embmap import stores
    from embmap.fit import gram, methods

    dirs = synthetic_stores(tmp_path, names=("a", "b", "c", "d"), dims=(6, 5, 6, 4), n_train=200, n_test=60)
    fit = stores.open_matched({k: f"{d}/train.zarr" for k, d in dirs.items()})
    ev = stores.open_matched({k: f"{d}/test.zarr" for k, d in dirs.items()}, need_classifier=True)
    bl = gram.cross_products({k: s.embeddings for k, s in fit.items()}, block_rows=64)
    maps = {"ridge": {(a, b): m for a in bl.names for b, m in
                      methods.fit_maps(bl, a, [x for x in bl.names if x != a], "ridge", alpha=1.0).items()}}
    t, s = composition.composition(ev, maps, intervals={"resamples": 100}, controls=["d"])
    assert len(t) == 4 * 3 * 2
    assert list(s.networks) == ["all", "without controls"] and list(s.triples) == [24, 6]
    with pytest.raises(ValueError, match="three networks"):
        composition.composition({k: ev[k] for k in ("a", "b")}, maps)
