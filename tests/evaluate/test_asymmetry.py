"""Asymmetry: both directions of every pair, checked on stores with an exact linear relation (b = a R, c = a P)."""

import numpy as np
import pandas as pd
import pytest

from embmap.evaluate import asymmetry, closed_set
from embmap.evaluate.intervals import Bootstrap
from helpers import classified_right, linear_experiment

INTERVALS = {"resamples": 200, "seed": 3, "level": 0.9}


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    ev, maps, feats, labels = linear_experiment(tmp_path_factory.mktemp("linear"))
    return ev, maps, feats, labels, asymmetry.asymmetry(ev, maps, block_rows=70, intervals=INTERVALS)


def test_an_invertible_relation_is_undecided_and_a_projection_is_contained(linear):
    *_, t = linear
    lstsq = t[t.method == "lstsq"].set_index(["a", "b"])
    # b = a R: both lstsq maps exact, both directions keep all of the target's accuracy
    ab = lstsq.loc[("a", "b")]
    assert ab.relative_ab == pytest.approx(1.0) and ab.relative_ba == pytest.approx(1.0)
    assert ab.order == asymmetry.UNDECIDED and ab.r2_ab == pytest.approx(1.0, abs=1e-9)
    assert ab.fit_r2_ab == pytest.approx(1.0, abs=1e-9) and ab.fit_r2_ba == pytest.approx(1.0, abs=1e-9)
    # c = a P (8 -> 4): a -> c exact, c -> a loses what P drops; so a's (and b's) features contain c's
    for big in ("a", "b"):
        row = lstsq.loc[(big, "c")]
        assert row.relative_ab == pytest.approx(1.0) and row.relative_ba < 0.8
        assert row.relative_diff_low > 0 and row.order == asymmetry.A_CONTAINS_B
        assert row.r2_ab == pytest.approx(1.0, abs=1e-9) and row.r2_ba < 0.6
    assert list(t.columns) == asymmetry.COLUMNS and len(t) == 2 * 3  # two methods, three unordered pairs
    assert any("a's features contain c's" in s for s in asymmetry.readings(t))


def test_every_column_against_the_raw_features_and_the_bootstrap_counts(linear):
    ev, maps, feats, labels, t = linear
    boot = Bootstrap(n=len(labels), resamples=200, seed=3, level=0.9)
    counts = np.concatenate(list(boot.weights()))  # [resamples, n]
    for r in t.itertuples():
        m_ab, m_ba = maps[r.method][(r.a, r.b)], maps[r.method][(r.b, r.a)]
        fa, fb = feats[r.a], feats[r.b]
        out_ab, out_ba = fa @ m_ab.weight + m_ab.intercept, fb @ m_ba.weight + m_ba.intercept
        c_ab, c_ba = classified_right(out_ab, ev[r.b], labels), classified_right(out_ba, ev[r.a], labels)
        c_a, c_b = classified_right(fa, ev[r.a], labels), classified_right(fb, ev[r.b], labels)
        assert r.accuracy_ab == pytest.approx(c_ab.mean()) and r.accuracy_ba == pytest.approx(c_ba.mean())
        assert r.accuracy_a == pytest.approx(c_a.mean()) and r.accuracy_b == pytest.approx(c_b.mean())
        assert r.relative_ab == pytest.approx(c_ab.mean() / c_b.mean())
        assert r.relative_ba == pytest.approx(c_ba.mean() / c_a.mean())
        assert r.r2_ab == pytest.approx(1 - np.sum((out_ab - fb) ** 2) / np.sum((fb - fb.mean(0)) ** 2))
        assert r.r2_ba == pytest.approx(1 - np.sum((out_ba - fa) ** 2) / np.sum((fa - fa.mean(0)) ** 2))
        assert r.fit_r2_ab == m_ab.attrs["fit_r2"] and r.fit_r2_ba == m_ba.attrs["fit_r2"]
        rate = {k: counts @ v / len(labels) for k, v in (("ab", c_ab), ("ba", c_ba), ("a", c_a), ("b", c_b))}
        diff = rate["ab"] / rate["b"] - rate["ba"] / rate["a"]
        np.testing.assert_allclose([r.relative_diff_low, r.relative_diff_high], np.quantile(diff, [0.05, 0.95]))
        np.testing.assert_allclose([r.accuracy_ab_low, r.accuracy_ab_high], np.quantile(rate["ab"], [0.05, 0.95]))
        assert r.n == len(labels)


def test_the_directions_are_the_rows_of_the_closed_set_table(linear):
    ev, maps, _, _, t = linear
    cs = closed_set.evaluate(ev, maps, intervals=INTERVALS).set_index(["source", "target", "method"])
    for r in t.itertuples():
        for src, tgt, end in ((r.a, r.b, "ab"), (r.b, r.a, "ba")):
            row = cs.loc[(src, tgt, r.method)]
            for col in ("accuracy", "accuracy_low", "accuracy_high"):
                assert getattr(r, f"{col.replace('accuracy', 'accuracy_' + end)}") == pytest.approx(row[col])
            assert getattr(r, f"r2_{end}") == pytest.approx(row.r2)
            assert getattr(r, f"fit_r2_{end}") == pytest.approx(row.fit_r2)


def test_the_order_is_read_from_the_interval_alone():
    assert asymmetry.decide(0.01, 0.2) == asymmetry.A_CONTAINS_B
    assert asymmetry.decide(-0.2, -0.01) == asymmetry.B_CONTAINS_A
    assert asymmetry.decide(-0.01, 0.2) == asymmetry.UNDECIDED
    assert asymmetry.decide(0.0, 0.0) == asymmetry.UNDECIDED
    assert asymmetry.decide(np.nan, np.nan) == asymmetry.UNDECIDED
    t = pd.DataFrame([{"a": "x", "b": "y", "method": "ridge", "order": asymmetry.B_CONTAINS_A, "relative_ab": 0.5,
                       "relative_ba": 0.9, "relative_diff": -0.4, "relative_diff_low": -0.5,
                       "relative_diff_high": -0.3}])
    assert asymmetry.readings(t, {"y": "Why"})[0].startswith("ridge: Why's features contain x's")
