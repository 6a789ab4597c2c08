"""What the classifier sees of each residual, checked on stores with an exact linear relation (b = a R, c = a P)."""

import numpy as np
import pytest

from embmap.evaluate import classifier_view as cv
from embmap.evaluate import closed_set
from embmap.evaluate.intervals import Bootstrap
from helpers import classified_right, linear_experiment

INTERVALS = {"resamples": 200, "seed": 7}


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    ev, maps, feats, labels = linear_experiment(tmp_path_factory.mktemp("linear"))
    return ev, maps, feats, labels, cv.classifier_view(ev, maps, block_rows=70, intervals=INTERVALS)


def test_every_column_against_a_projector_from_the_pseudo_inverse(linear):
    ev, maps, feats, labels, t = linear
    assert list(t.columns) == cv.COLUMNS
    assert set(t.method) == {"ridge", "lstsq", "analytic"} and len(t) == 6 * 3
    boot = Bootstrap(n=len(labels), resamples=200, seed=7)
    counts = np.concatenate(list(boot.weights()))
    for r in t.itertuples():
        fa, fb = feats[r.source], feats[r.target]
        w, b0 = ev[r.target].classifier()
        proj = np.linalg.pinv(w) @ w  # the orthogonal projector onto the row space of C_B (not the module's SVD)
        if r.method == "analytic":
            m = closed_set.analytic_map(ev[r.source].classifier(), (w, b0))
        else:
            m = maps[r.method][(r.source, r.target)]
        out = fa @ m.weight + m.intercept
        res = out - fb
        seen, total = np.sum((res @ proj) ** 2), np.sum(res ** 2)
        fc = fb - fb.mean(0)
        k, k_b = classified_right(out, ev[r.target], labels), classified_right(fb, ev[r.target], labels)
        an = closed_set.analytic_map(ev[r.source].classifier(), (w, b0))
        k_an = classified_right(fa @ an.weight + an.intercept, ev[r.target], labels)
        assert r.accuracy == pytest.approx(k.mean()) and r.target_accuracy == pytest.approx(k_b.mean())
        assert r.accuracy_loss == pytest.approx(k.mean() - k_b.mean())
        assert r.analytic_accuracy == pytest.approx(k_an.mean())
        assert r.analytic_gap == pytest.approx(k_an.mean() - k.mean())
        assert r.r2 == pytest.approx(1 - total / np.sum(fc ** 2))
        assert r.r2_seen == pytest.approx(1 - seen / np.sum((fc @ proj) ** 2), rel=1e-6, abs=1e-6)
        rank = np.linalg.matrix_rank(w)
        assert r.classifier_rank == rank and r.target_dim == fb.shape[1] and r.sees_all == (rank == fb.shape[1])
        if r.sees_all:
            assert r.seen_fraction == 1.0 and np.isnan(r.r2_ignored)
            # full column rank: the projector is the identity, to pinv's rounding (about cond(C_B) x 1e-16 of it)
            assert seen == pytest.approx(total, rel=1e-6)
        else:
            assert r.seen_fraction == pytest.approx(seen / total, rel=1e-6)
            ignored = fc - fc @ proj
            # one-pass sums of squares (as closed_set.csv's r2): rounding of about 1e-7 of the spread
            assert r.r2_ignored == pytest.approx(1 - (total - seen) / np.sum(ignored ** 2), abs=1e-6)
        for col, v in (("accuracy_loss", k.astype(float) - k_b), ("analytic_gap", k_an.astype(float) - k)):
            np.testing.assert_allclose([getattr(r, f"{col}_low"), getattr(r, f"{col}_high")],
                                       np.quantile(counts @ v / len(labels), [0.025, 0.975]), atol=1e-12)


def test_the_analytic_map_keeps_the_accuracy_with_a_residual_the_classifier_mostly_ignores(linear):
    """The paper's section 3.4 caveat as numbers: a -> b analytic reaches a's accuracy with a poor feature fit,
    because most of its residual lies where b's 4-class classifier does not look (8 features, rank 4)."""
    *_, t = linear
    row = t.set_index(["source", "target", "method"]).loc[("a", "b", "analytic")]
    assert row.accuracy_loss > 0 and row.r2 < 0.2 and row.seen_fraction < 0.5 and not row.sees_all
    exact = t.set_index(["source", "target", "method"]).loc[("a", "b", "lstsq")]
    assert exact.r2 == pytest.approx(1.0, abs=1e-9) and exact.accuracy_loss == 0
    # c: 4 features and 4 classes, so its classifier sees every residual
    into_c = t[t.target == "c"]
    assert into_c.sees_all.all() and (into_c.seen_fraction == 1.0).all() and into_c.r2_ignored.isna().all()


def test_the_row_space_basis_is_orthonormal_and_has_the_rank():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 7))
    w = np.vstack([w, w[0] + w[1]])  # rank 3 of 4 rows
    q = cv.row_space(w)
    assert q.shape == (7, 3)
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(q @ q.T, np.linalg.pinv(w) @ w, atol=1e-12)
