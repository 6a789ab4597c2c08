"""Which index predicts mapped accuracy (rank correlations, intervals over networks) and n95, on hand-made tables."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata, spearmanr

from embmap.evaluate import index_predicts as ip

NETS = ["a", "b", "c", "d", "e", "ctrl"]


def _closed(acc):
    """closed_set.csv rows for the ordered pairs of NETS: ridge accuracy ``acc(a, b)``, lstsq 0.01 below."""
    rows = []
    for a, b in itertools.permutations(NETS, 2):
        for m, shift in (("ridge", 0.0), ("lstsq", -0.01)):
            x = acc(a, b) + shift
            rows.append({"source": a, "target": b, "method": m, "accuracy": x, "pct_change": 100 * (x - 0.9) / 0.9,
                         "fit_r2": x ** 3})
        rows.append({"source": a, "target": b, "method": "analytic", "accuracy": 0.0, "pct_change": 0.0,
                     "fit_r2": np.nan})
    return pd.DataFrame(rows)


def _score(a, b):  # symmetric in a, b and distinct for every unordered pair
    return 0.5 + 0.02 * (NETS.index(a) + NETS.index(b)) + 0.003 * NETS.index(a) * NETS.index(b)


def test_an_index_monotone_in_accuracy_gets_spearman_one_and_a_decreasing_one_minus_one():
    closed = _closed(_score)
    sim = []
    for a, b in itertools.combinations(NETS, 2):  # symmetric: one row per unordered pair, both orders read it
        s = _score(a, b)
        sim += [{"source": a, "target": b, "index": "cka", "value": np.log(s)},
                {"source": a, "target": b, "index": "procrustes", "value": 2.0 - s ** 2}]
    for a, b in itertools.permutations(NETS, 2):  # per ordered pair
        sim.append({"source": a, "target": b, "index": "r2", "value": np.sqrt(_score(a, b))})
    sim.append({"source": "a", "target": "ctrl", "index": "cka", "value": 99.0})  # a control: left out
    pairs = ip.pair_values(closed, pd.DataFrame(sim), controls=["ctrl"])
    assert set(pairs.method) == {"ridge", "lstsq"} and not pairs.source.isin(["ctrl"]).any()
    assert len(pairs[(pairs.predictor == "cka") & (pairs.method == "ridge")]) == 20  # 5 networks, both orders
    sym, hi = ip.index_traits(["cka", "procrustes", "r2"])
    t = ip.predicts(pairs, NETS[:5], {"resamples": 200, "seed": 1}, sym, hi)
    assert list(t.columns) == ip.COLUMNS
    assert len(t) == 4 * 2 * 2  # cka, procrustes, r2, fit_r2 x two methods x two outcomes
    for predictor, sign in (("cka", 1), ("r2", 1), ("fit_r2", 1), ("procrustes", -1)):
        rows = t[t.predictor == predictor]
        assert (rows.spearman == sign).all(), predictor
        # every resample with at least two networks is monotone too: the interval is the point
        assert np.allclose(rows.spearman_low, sign) and np.allclose(rows.spearman_high, sign), predictor
        assert (rows.pairs == 20).all() and (rows.networks == 5).all()
    assert t.set_index("predictor").loc["procrustes", "higher_is_similar"].eq(False).all()
    assert t.set_index("predictor").loc["cka", "symmetric"].all()


def test_without_similarity_indices_the_fit_r2_alone_is_correlated():
    pairs = ip.pair_values(_closed(_score), None, controls=["ctrl"])
    t = ip.predicts(pairs, NETS[:5], {"resamples": 50})
    assert set(t.predictor) == {"fit_r2"} and (t.spearman == 1).all()


def test_weighted_spearman_equals_spearman_of_the_repeated_pairs_and_draws_resample_networks():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, 30).astype(float), rng.standard_normal(30)  # ties in x
    w = rng.integers(0, 4, 30)
    assert ip.weighted_spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    rep = np.repeat(np.arange(30), w)
    assert ip.weighted_spearman(x, y, w) == pytest.approx(spearmanr(x[rep], y[rep]).statistic)
    np.testing.assert_allclose(ip.weighted_ranks(x, w)[w > 0], [rankdata(x[rep])[np.flatnonzero(rep == i)[0]]
                                                               for i in np.flatnonzero(w > 0)])
    c = ip.network_draws(5, 40, seed=3)
    assert c.shape == (40, 5) and (c.sum(axis=1) == 5).all()
    np.testing.assert_array_equal(c, ip.network_draws(5, 40, seed=3))
    assert np.isnan(ip.weighted_spearman(x, y, np.eye(30)[0]))  # one counted pair has no correlation


def test_a_noisy_index_gets_an_interval_from_the_networks_and_one_network_resamples_are_left_out():
    rng = np.random.default_rng(4)
    noise = {p: rng.standard_normal() for p in itertools.combinations(NETS, 2)}
    sim = pd.DataFrame([{"source": a, "target": b, "index": "cka", "value": _score(a, b) + 0.02 * noise[(a, b)]}
                        for a, b in itertools.combinations(NETS, 2)])
    pairs = ip.pair_values(_closed(_score), sim, controls=["ctrl"])
    t = ip.predicts(pairs, NETS[:5], {"resamples": 300, "seed": 2}).set_index(["predictor", "method", "outcome"])
    row = t.loc[("cka", "ridge", "accuracy")]
    assert row.spearman_low <= row.spearman <= row.spearman_high and row.spearman_low < row.spearman_high
    counts = ip.network_draws(5, 300, 2)
    # a lone network has no pair, and two networks' two orders share one value of a symmetric index: constant
    assert row.resamples_defined == int(((counts > 0).sum(axis=1) >= 3).sum())


def test_n95_on_a_hand_made_curve():
    rows = []
    curves = {("a", "b", "ridge"): [0.2, 0.86, 0.80, 0.95, 0.90],  # reaches 0.855 at 64, dips, still 64
              ("b", "a", "ridge"): [0.1, 0.2, 0.3, 0.5, 0.9],  # only the full map itself
              ("a", "b", "lstsq"): [0.0, 0.0, 0.0, 0.0, 0.0]}  # a full accuracy of 0: reached at once
    sizes = [32, 64, 128, 256, 1000]  # 1000: the whole split ("all")
    for (a, b, m), acc in curves.items():
        rows += [{"source": a, "target": b, "method": m, "n_fit": n, "accuracy": v} for n, v in zip(sizes, acc)]
    rows.append({"source": "a", "target": "a", "method": "native", "n_fit": np.nan, "accuracy": 0.9})
    eff = pd.DataFrame(rows)
    t = ip.n95(eff, whole=True, controls=["b"]).set_index(["source", "target", "method"])
    assert list(t.reset_index().columns) == ip.N95_COLUMNS
    assert t.loc[("a", "b", "ridge"), "n95"] == 64 and t.loc[("a", "b", "ridge"), "threshold"] == pytest.approx(0.855)
    assert t.loc[("b", "a", "ridge"), "n95"] == 1000 and t.loc[("a", "b", "lstsq"), "n95"] == 32
    assert t.control.all() and (t.full == "all").all()
    # without the `all` size the full map is closed_set.csv's, which no prefix may reach: NA
    prefix = eff[eff.n_fit != 1000]
    closed = pd.DataFrame([{"source": "a", "target": "b", "method": "ridge", "accuracy": 0.96},
                           {"source": "b", "target": "a", "method": "ridge", "accuracy": 0.96}])
    t = ip.n95(prefix, closed, whole=False).set_index(["source", "target", "method"])
    assert t.loc[("a", "b", "ridge"), "n95"] == 256 and t.loc[("a", "b", "ridge"), "full"] == "closed_set"
    assert pd.isna(t.loc[("b", "a", "ridge"), "n95"]) and not t.loc[("b", "a", "ridge"), "reached"]
    assert t.loc[("a", "b", "lstsq"), "full"] == "largest"


def test_one_network_beside_a_control_has_no_pairs_and_still_writes_an_empty_table_and_figure(tmp_path):
    from embmap.evaluate import plots

    closed = _closed(_score)
    closed = closed[closed.source.isin(["a", "ctrl"]) & closed.target.isin(["a", "ctrl"])]
    pairs = ip.pair_values(closed, None, controls=["ctrl"])
    t = ip.predicts(pairs, ["a"], {"resamples": 100})
    assert pairs.empty and t.empty and list(t.columns) == ip.COLUMNS
    plots.index_predicts(t, pairs, "toy", [str(tmp_path / "f.png")])
    assert (tmp_path / "f.png").stat().st_size > 1000
