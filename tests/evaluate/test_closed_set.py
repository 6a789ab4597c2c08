"""Closed-set evaluation: Table 2 columns, the analytic theorem, the controls."""

import numpy as np
import pytest

from embmap import stores
from embmap.evaluate import closed_set, common
from embmap.fit import gram, ridge
from helpers import synthetic_stores


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
    return ev, maps, closed_set.evaluate(ev, {"ridge": maps}, block_rows=37)


def test_table_has_the_documented_columns_and_rows(evaluated):
    _, _, t = evaluated
    assert list(t.columns) == closed_set.COLUMNS
    assert set(t["method"]) == {"native", "ridge", "analytic", "identity"}
    assert len(t[t.method == "ridge"]) == 4 * 3
    assert len(t[t.method == "native"]) == 4
    # identity only between spaces of equal size: a, c, rnd are 12-d, b is 10-d
    ident = t[t.method == "identity"]
    assert "b" not in set(ident.source) | set(ident.target) and len(ident) == 6


def test_each_mapped_row_carries_its_maps_fit_r2_beside_the_evaluation_r2(evaluated):
    _, maps, t = evaluated
    ridge_rows = t[t.method == "ridge"]
    for r in ridge_rows.itertuples():
        assert r.fit_r2 == maps[(r.source, r.target)].attrs["fit_r2"]
    assert t[t.method != "ridge"].fit_r2.isna().all()
    assert (ridge_rows.fit_r2 >= ridge_rows.r2 - 0.05).all()  # fitted on its own samples, it does not do worse


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


def _two_label_spaces(root, n_fit=400, n_eval=300, k=6, seed=0):
    """A 1,001-style network (class 0 = background, then labels 1..k) and a 1,000-style one (labels 1..k as
    classes 0..k-1, ``label_offset`` 1), on shared samples whose labels are 1..k (ImageNet's convention)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    n = n_fit + n_eval
    z = rng.standard_normal((n, 8))
    labels = 1 + np.argmax(z[:, :k] + 0.2 * rng.standard_normal((n, k)), axis=1)
    ids = np.array([f"img/{i:05d}.jpg" for i in range(n)])
    dirs = {}
    for name, d, with_background in (("tfhub_like", 14, True), ("keras_like", 11, False)):
        f = (np.tanh(z @ rng.standard_normal((8, d))) + 0.05 * rng.standard_normal((n, d))).astype(np.float32)
        clf = LogisticRegression(max_iter=3000).fit(f[:n_fit], labels[:n_fit])  # classes 1..k
        w, b = clf.coef_, clf.intercept_
        if with_background:  # a background row that real images rarely win
            w, b = np.vstack([rng.standard_normal((1, d)) * 0.1, w]), np.concatenate([[-30.0], b])
        for split, sl in (("train", slice(0, n_fit)), ("test", slice(n_fit, n))):
            stores.write_embeddings(root / name / f"{split}.zarr", f[sl], ids[sl], labels[sl], classifier=(w, b),
                                    label_offset=0 if with_background else 1, chunk_rows=64)
        dirs[name] = root / name
    return dirs


def test_networks_of_1001_and_1000_classes_are_compared_on_the_datasets_labels(tmp_path):
    from embmap.evaluate import network_table

    dirs = _two_label_spaces(tmp_path)
    fit = stores.open_matched({k: d / "train.zarr" for k, d in dirs.items()})
    stores.write_blocks(tmp_path / "blocks.zarr", gram.cross_products({k: s.embeddings for k, s in fit.items()}))
    bl = stores.open_blocks(tmp_path / "blocks.zarr")
    maps = {(a, b): m for a in fit for b, m in ridge.fit_maps(bl, a, [t for t in fit if t != a], 1.0).items()}
    ev = stores.open_matched({k: d / "test.zarr" for k, d in dirs.items()}, need_classifier=True)
    assert ev["tfhub_like"].label_offset == 0 and ev["keras_like"].label_offset == 1
    assert ev["tfhub_like"].classifier()[0].shape[0] == 7 and ev["keras_like"].classifier()[0].shape[0] == 6
    t = closed_set.evaluate(ev, {"ridge": maps})
    y = ev["tfhub_like"].labels
    own = {}
    for k, s in ev.items():  # each network's predictions in dataset labels, computed here from the raw classifier
        w, b = s.classifier()
        logits = s.embeddings[:].astype(np.float64) @ w.T + b
        own[k] = np.argmax(logits, 1) + (1 if k == "keras_like" else 0)
        native = t[(t.source == k) & (t.method == "native")].iloc[0]
        assert native.accuracy == pytest.approx(np.mean(own[k] == y)) and native.accuracy > 0.5
    assert not (own["tfhub_like"] == 0).any()  # background never wins on these images
    an = t[t.method == "analytic"].set_index("source")
    assert len(an) == 2
    # Theorem 3.2 across label spaces: B's classifier on mapped features predicts exactly what A predicts
    np.testing.assert_allclose(an.accuracy, an.source_accuracy, atol=1e-12)
    for a, b in (("tfhub_like", "keras_like"), ("keras_like", "tfhub_like")):
        m = closed_set.analytic_map(ev[a].classifier(), ev[b].classifier(), ev[a].label_offset, ev[b].label_offset)
        w, bias = ev[b].classifier()
        mapped = m(ev[a].embeddings[:].astype(np.float64))
        pred = np.argmax(mapped @ w.T + bias, 1) + ev[b].label_offset
        np.testing.assert_array_equal(pred, own[a])
    # the ridge maps are scored on dataset labels too: the 1,000-class target is not off by one
    rg = t[t.method == "ridge"].set_index("source")
    assert (rg.accuracy > 0.5).all()
    table = network_table.describe(ev).set_index("network")
    for k in ev:
        assert table.loc[k, "top1"] == pytest.approx(np.mean(own[k] == y))


def test_analytic_map_in_one_label_space_is_the_theorems_formula():
    rng = np.random.default_rng(3)
    ca, ba = rng.standard_normal((5, 9)), rng.standard_normal(5)
    cb, bb = rng.standard_normal((5, 7)), rng.standard_normal(5)
    m = closed_set.analytic_map((ca, ba), (cb, bb))
    f = rng.standard_normal((4, 9))
    want = (np.linalg.pinv(cb) @ (ca @ f.T + ba[:, None] - bb[:, None])).T
    np.testing.assert_allclose(m(f), want, atol=1e-10)
    np.testing.assert_allclose(m(f) @ cb.T + bb, f @ ca.T + ba, atol=1e-10)  # B's logits are A's
    with pytest.raises(Exception, match="share no label"):
        closed_set.analytic_map((ca, ba), (cb, bb), 0, 5)
