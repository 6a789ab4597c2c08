"""Closed-set evaluation: Table 2 columns, the analytic theorem, the controls."""

import numpy as np
import pytest

from conftest import synthetic_stores
from embmap import stores
from embmap.evaluate import closed_set, common
from embmap.fit import gram, ridge


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("byo")
    dirs = synthetic_stores(root, names=("a", "b", "c", "rnd"), dims=(12, 10, 12, 12), random_control="rnd")
    fit = stores.open_matched({k: f"{d}/train.zarr" for k, d in dirs.items()})
    cp = gram.cross_products({k: s.embeddings for k, s in fit.items()}, block_rows=50)
    stores.write_blocks(root / "blocks.zarr", cp)
    bl = stores.open_blocks(root / "blocks.zarr")
    maps = {}
    for a in fit:
        for b, m in ridge.fit_maps(bl, a, [t for t in fit if t != a], 1.0).items():
            maps[(a, b)] = m
    ev = stores.open_matched({k: f"{d}/test.zarr" for k, d in dirs.items()}, need_classifier=True)
    return ev, maps, closed_set.evaluate(ev, maps, block_rows=37)


def test_table_has_the_documented_columns_and_rows(evaluated):
    _, _, t = evaluated
    assert list(t.columns) == closed_set.COLUMNS
    assert set(t["method"]) == {"native", "ridge", "analytic", "identity"}
    assert len(t[t.method == "ridge"]) == 4 * 3
    assert len(t[t.method == "native"]) == 4
    # identity only between spaces of equal size: a, c, rnd are 12-d, b is 10-d
    ident = t[t.method == "identity"]
    assert "b" not in set(ident.source) | set(ident.target) and len(ident) == 6


def test_native_accuracy_is_the_classifier_on_own_features(evaluated):
    ev, _, t = evaluated
    s = ev["a"]
    w, b = s.classifier()
    acc = np.mean(np.argmax(s.embeddings[:] @ w.T + b, axis=1) == s.labels)
    row = t[(t.source == "a") & (t.method == "native")].iloc[0]
    assert row.accuracy == pytest.approx(acc)
    assert row.r2 == pytest.approx(1.0) and row.cosine == pytest.approx(1.0) and row.agreement == 1.0


def test_analytic_map_reproduces_source_accuracy(evaluated):
    """Theorem 3.2: with C_B of full row rank the analytic map gives A's own predictions under B's classifier."""
    _, _, t = evaluated
    an = t[t.method == "analytic"]
    assert len(an) == 12
    np.testing.assert_allclose(an.accuracy, an.source_accuracy, atol=1e-12)


def test_ridge_metrics_match_a_direct_computation(evaluated):
    ev, maps, t = evaluated
    fa = ev["a"].embeddings[:].astype(np.float64)
    fb = ev["b"].embeddings[:].astype(np.float64)
    m = maps[("a", "b")]
    mapped = fa @ m.weight + m.intercept
    w, b = ev["b"].classifier()
    pred = np.argmax(mapped @ w.T + b, 1)
    own = np.argmax(fb @ w.T + b, 1)
    row = t[(t.source == "a") & (t.target == "b") & (t.method == "ridge")].iloc[0]
    assert row.accuracy == pytest.approx(np.mean(pred == ev["a"].labels))
    assert row.agreement == pytest.approx(np.mean(pred == own))
    r2 = 1 - ((fb - mapped) ** 2).sum() / ((fb - fb.mean(0)) ** 2).sum()
    assert row.r2 == pytest.approx(r2, rel=1e-9)
    cos = np.mean((mapped * fb).sum(1) / np.linalg.norm(mapped, axis=1) / np.linalg.norm(fb, axis=1))
    assert row.cosine == pytest.approx(cos)
    assert row["pct_change"] == pytest.approx(100 * (row.accuracy - row.source_accuracy) / row.source_accuracy)


def test_controls_behave_as_the_paper_predicts(evaluated):
    _, _, t = evaluated
    ridge_rows = t[t.method == "ridge"]
    trained = ridge_rows[(ridge_rows.source != "rnd") & (ridge_rows.target != "rnd")]
    assert (trained["pct_change"] > -15).all(), "trained networks should lose only a few points"
    into_random = ridge_rows[ridge_rows.target == "rnd"]
    assert (into_random.accuracy < 0.5).all(), "the random network's column sits near chance (4 classes)"
    from_random = ridge_rows[ridge_rows.source == "rnd"]
    assert (from_random.accuracy.to_numpy()[:, None] < trained.accuracy.min()).all()


def test_matrix_is_table2_shaped(evaluated):
    _, _, t = evaluated
    m = common.matrix(t, ["a", "b", "c", "rnd"], "accuracy")
    assert list(m.index) == list(m.columns) == ["a", "b", "c", "rnd"]
    for k in m.index:
        assert m.loc[k, k] == t[(t.source == k) & (t.method == "native")].accuracy.iloc[0]
    assert m.loc["a", "b"] == t[(t.source == "a") & (t.target == "b") & (t.method == "ridge")].accuracy.iloc[0]


def test_heatmap_writes_png_and_svg(evaluated, tmp_path):
    from embmap.evaluate import plots

    _, _, t = evaluated
    m = common.matrix(t, ["a", "b", "c", "rnd"], "accuracy")
    paths = [tmp_path / "h.png", tmp_path / "h.svg"]
    plots.heatmap(m, {"rnd": "random*"}, ["rnd"], "t", paths)
    assert all(p.stat().st_size > 1000 for p in paths)
    assert "random*" in paths[1].read_text()
