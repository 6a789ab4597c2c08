"""Intervals: the paired bootstrap and the exact McNemar test, each re-derived independently; and the interval
columns of every evaluation table."""

from math import comb

import numpy as np
import pandas as pd
import pytest

from embmap.evaluate import intervals
from embmap.evaluate.intervals import Bootstrap, mcnemar


def test_counts_depend_only_on_seed_n_and_strata_and_each_resample_keeps_the_sizes():
    strata = np.repeat([0, 1, 2], [7, 5, 9])
    one = np.concatenate(list(Bootstrap(21, 130, seed=4, strata=strata).weights()))
    two = np.concatenate(list(Bootstrap(21, 130, seed=4, strata=strata, level=0.5).weights()))
    assert one.shape == (130, 21) and np.array_equal(one, two)
    for s, size in zip(range(3), (7, 5, 9)):
        assert np.all(one[:, strata == s].sum(axis=1) == size)
    # the first resamples do not depend on how many are drawn
    assert np.array_equal(np.concatenate(list(Bootstrap(21, 60, seed=4, strata=strata).weights())), one[:60])
    assert not np.array_equal(np.concatenate(list(Bootstrap(21, 130, seed=5, strata=strata).weights())), one)


def test_resampled_means_equal_the_means_of_explicitly_drawn_samples():
    rng = np.random.default_rng(0)
    v = rng.random((3, 40))
    boot = Bootstrap(40, 120, seed=1)
    counts = np.concatenate(list(boot.weights())).astype(int)
    explicit = np.array([[np.repeat(row, c).mean() for row in v] for c in counts])
    np.testing.assert_allclose(boot.means(v), explicit, rtol=1e-12)
    where = rng.random(40) < 0.6
    explicit = np.array([[np.repeat(row[where], c[where]).mean() for row in v] for c in counts])
    np.testing.assert_allclose(boot.means(v, where), explicit, rtol=1e-12)


def test_a_stratified_mean_is_the_mean_of_the_strata_means():
    rng = np.random.default_rng(2)
    strata = np.repeat([0, 1], [10, 30])
    v = (rng.random(40) < 0.7).astype(float)
    boot = Bootstrap(40, 100, seed=0, strata=strata)
    assert boot.point(v) == pytest.approx((v[:10].mean() + v[10:].mean()) / 2)
    counts = np.concatenate(list(boot.weights())).astype(int)
    explicit = [(np.repeat(v[:10], c[:10]).mean() + np.repeat(v[10:], c[10:]).mean()) / 2 for c in counts]
    np.testing.assert_allclose(boot.means(v), explicit, rtol=1e-12)


def test_the_interval_of_a_rate_has_the_binomial_width():
    # 400 samples, 320 right: the normal approximation's 95% half-width is 1.96 sqrt(p (1 - p) / n) = 0.0392;
    # the percentile interval of 2,000 resamples agrees within 15% (the seed is fixed: the draw is not luck)
    v = np.zeros(400)
    v[:320] = 1
    boot = Bootstrap(400, 2000, seed=0)
    low, high = boot.interval(boot.means(v))
    half = 1.96 * np.sqrt(0.8 * 0.2 / 400)
    assert low < 0.8 < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    assert (0.8 - low) == pytest.approx(high - 0.8, rel=0.3)
    # a level of 50% gives the interquartile range: 0.674 sigma
    b50 = Bootstrap(400, 2000, seed=0, level=0.5)
    low, high = b50.interval(b50.means(v))
    assert (high - low) / 2 == pytest.approx(0.674 * np.sqrt(0.8 * 0.2 / 400), rel=0.15)


def test_differences_are_paired():
    rng = np.random.default_rng(3)
    a = (rng.random(500) < 0.7).astype(float)
    b = a.copy()
    b[:5] = 1 - b[:5]  # five samples change: the difference is known to about 5 / 500
    boot = Bootstrap(500, 500, seed=0)
    r = boot.means(np.stack([a, b]))
    dlow, dhigh = boot.interval(r[:, 1] - r[:, 0])
    alow, ahigh = boot.interval(r[:, 0])
    assert dhigh - dlow < 0.25 * (ahigh - alow)
    low, high = boot.interval(r[:, 0] - r[:, 0])
    assert low == high == 0


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_samples():
    x = np.array([1] * 3 + [0] * 10 + [1] * 20 + [0] * 7, dtype=bool)
    y = np.array([0] * 3 + [1] * 10 + [1] * 20 + [0] * 7, dtype=bool)
    expected = 2 * sum(comb(13, i) for i in range(4)) / 2 ** 13
    assert mcnemar(x, y) == pytest.approx(expected, rel=1e-12)
    assert mcnemar(y, x) == pytest.approx(expected, rel=1e-12)
    assert mcnemar(x, x) == 1.0
    eight_ten = 2 * sum(comb(18, i) for i in range(9)) / 2 ** 18
    assert mcnemar(np.r_[x, [True] * 5], np.r_[y, [False] * 5]) == pytest.approx(eight_ten, rel=1e-12)
    assert mcnemar(np.ones(30, bool), np.zeros(30, bool)) == pytest.approx(2 / 2 ** 30)


def test_compared_gives_paired_differences_and_tests_against_the_natives():
    rng = np.random.default_rng(4)
    n = 300
    truth_a, truth_b = rng.random(n) < 0.8, rng.random(n) < 0.6
    mapped = truth_a.copy()
    mapped[:40] = False  # the map loses 40 of A's right answers
    keys = [("a", "a", "native"), ("a", "b", "ridge"), ("b", "b", "native")]
    right = {keys[0]: truth_a, keys[1]: mapped, keys[2]: truth_b}
    out = intervals.compared(keys, right, Bootstrap(n, 400, seed=0))
    assert list(out.columns) == intervals.COMPARED
    row = out.iloc[1]
    assert row.diff_target == pytest.approx(mapped.mean() - truth_b.mean())
    assert row.diff_target_low < row.diff_target < row.diff_target_high
    assert row.p_source == pytest.approx(mcnemar(mapped, truth_a)) and row.p_source < 1e-6
    assert row.p_target == pytest.approx(mcnemar(mapped, truth_b))
    pct = 100 * (mapped.mean() - truth_a.mean()) / truth_a.mean()
    assert row.pct_change_low < pct < row.pct_change_high < 0
    assert out.iloc[0][["diff_target", "p_target", "p_source"]].isna().all()


@pytest.mark.parametrize("bad, message", [({"resamples": 0}, "resamples"), ({"level": 1.0}, "level")])
def test_bad_options_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        Bootstrap(10, **{"resamples": 100, "seed": 0, **bad})


def test_the_schema_holds_the_defaults():
    b = intervals.bootstrap_of(None, 10)
    assert (b.level, b.resamples, b.seed) == (0.95, 1000, 0)


# -- the tables ------------------------------------------------------------------------
def _brackets(t, value, low, high):
    ok = t[[value, low, high]].dropna()
    assert len(ok) and ((ok[low] <= ok[value] + 1e-12) & (ok[value] <= ok[high] + 1e-12)).all()


@pytest.fixture(scope="module")
def closed(tmp_path_factory):
    from embmap import stores
    from embmap.evaluate import closed_set
    from embmap.fit import gram, ridge
    from helpers import synthetic_stores

    root = tmp_path_factory.mktemp("byo")
    dirs = synthetic_stores(root, names=("a", "b", "c"), dims=(12, 10, 12))
    fit = stores.open_matched({k: f"{d}/train.zarr" for k, d in dirs.items()})
    bl = gram.cross_products({k: s.embeddings for k, s in fit.items()}, block_rows=50)
    maps = {(a, b): m for a in bl.names for b, m in ridge.fit_maps(bl, a, [t for t in bl.names if t != a], 1.0).items()}
    ev = stores.open_matched({k: f"{d}/test.zarr" for k, d in dirs.items()}, need_classifier=True)
    return ev, maps, closed_set.evaluate(ev, {"ridge": maps}, block_rows=37, intervals={"resamples": 300})


def test_closed_set_intervals_bracket_their_rates_and_name_the_mapped_rows_tests(closed):
    ev, maps, t = closed
    _brackets(t, "accuracy", "accuracy_low", "accuracy_high")
    _brackets(t, "agreement", "agreement_low", "agreement_high")
    _brackets(t, "pct_change", "pct_change_low", "pct_change_high")
    _brackets(t, "diff_target", "diff_target_low", "diff_target_high")
    native = t[t.method == "native"]
    assert native[["diff_target", "p_target", "p_source"]].isna().all().all()
    assert (native.agreement_low == 1).all() and (native.pct_change_low == 0).all()
    mapped = t[t.method != "native"]
    assert mapped.diff_target.to_numpy() == pytest.approx((mapped.accuracy - mapped.target_accuracy).to_numpy())
    assert mapped[["p_target", "p_source"]].notna().all().all()
    assert ((mapped.p_target > 0) & (mapped.p_target <= 1)).all()


def test_closed_set_intervals_are_a_function_of_the_seed_and_the_samples_only(closed):
    from embmap.evaluate import closed_set

    ev, maps, t = closed
    again = closed_set.evaluate(ev, {"ridge": maps}, block_rows=11, intervals={"resamples": 300})
    pd.testing.assert_frame_equal(t, again)
    other = closed_set.evaluate(ev, {"ridge": maps}, block_rows=37, intervals={"resamples": 300, "seed": 1})
    assert not other.accuracy_low.equals(t.accuracy_low)
    pd.testing.assert_frame_equal(other[closed_set.POINT_COLUMNS], t[closed_set.POINT_COLUMNS])
    # a resample of the independent recomputation: the first row's interval from its correctness vector
    from embmap.evaluate.intervals import Bootstrap

    first = ev[list(ev)[0]]
    w, b = first.classifier()
    right = np.argmax(np.asarray(first.embeddings[:], np.float64) @ w.T + b, axis=1) + first.label_offset
    boot = Bootstrap(len(right), 300, seed=0)
    low, high = boot.interval(boot.means((right == first.labels).astype(float)))
    row = t.iloc[0]
    assert (row.source, row.method) == (list(ev)[0], "native")
    assert (row.accuracy_low, row.accuracy_high) == pytest.approx((low, high))


def test_open_set_tables_carry_intervals_paired_within_folds():
    from embmap.evaluate import identification, verification
    from helpers import face_embeddings, pairs_among

    ids, feats = face_embeddings(n_id=30, per_id=4, dims=(10, 8, 10), random=(2,))
    pairs = pairs_among(ids, n_folds=4, per_fold=12)
    table, folds = verification.verification(feats, ids, pairs, alpha=0.5, intervals={"resamples": 200})
    assert list(table.columns) == verification.TABLE_COLUMNS
    _brackets(table, "accuracy_mean", "accuracy_low", "accuracy_high")
    _brackets(table, "diff_target", "diff_target_low", "diff_target_high")
    native = table[table.method == "native"].set_index("source").accuracy_mean
    ridge = table[table.method == "ridge"]
    assert ridge.diff_target.to_numpy() == pytest.approx((ridge.accuracy_mean - native[ridge.target].to_numpy())
                                                         .to_numpy())
    t = identification.identification(feats, ids, n_folds=3, seed=0, alpha=0.5, intervals={"resamples": 200})
    _brackets(t, "rank1", "rank1_low", "rank1_high")
    _brackets(t, "rank5", "rank5_low", "rank5_high")
    assert (t.rank1_high - t.rank1_low).max() > 0


def test_intervals_are_bit_identical_across_blas_threads():
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(6)
    v = (rng.random((7, 3000)) < 0.6).astype(float)
    strata = np.repeat(np.arange(10), 300)
    got = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            got.append([Bootstrap(3000, 400, seed=2).means(v), Bootstrap(3000, 400, seed=2, strata=strata).means(v)])
    for a, b in zip(*got):
        np.testing.assert_array_equal(a, b)


def test_the_95_percent_interval_covers_a_known_accuracy_about_95_percent_of_the_time():
    """A simulation with a fixed seed (not luck): 300 evaluation sets of 250 samples drawn with accuracy 0.7;
    coverage has a binomial standard error of 1.3 points over 300 sets, so 0.91 to 0.99 is about 3 of them."""
    rng = np.random.default_rng(123)
    covered = 0
    for k in range(300):
        v = (rng.random(250) < 0.7).astype(float)
        boot = Bootstrap(250, 400, seed=k)
        low, high = boot.interval(boot.means(v))
        covered += low <= 0.7 <= high
    assert 0.91 <= covered / 300 <= 0.99, covered
