"""Beyond the paper: map methods in every table, sample-efficiency curves, similarity outputs, end to end."""

import numpy as np
import pandas as pd
import pytest
import zarr

from embmap import stores
from embmap.evaluate import closed_set, identification, sample_efficiency, verification
from embmap.evaluate import similarity as sim
from embmap.fit import FitError, gram, methods, ridge
from helpers import byo_config, face_embeddings, pairs_among, snakemake, synthetic_stores


@pytest.fixture(scope="module")
def byo(tmp_path_factory):
    root = tmp_path_factory.mktemp("byo")
    dirs = synthetic_stores(root, names=("a", "b", "c"), dims=(12, 10, 12))
    fit = stores.open_matched({k: f"{d}/train.zarr" for k, d in dirs.items()})
    ev = stores.open_matched({k: f"{d}/test.zarr" for k, d in dirs.items()}, need_classifier=True)
    bl = gram.cross_products({k: s.embeddings for k, s in fit.items()}, block_rows=64, sample_sizes=[50, 60, 200])
    return dirs, fit, ev, bl


def all_maps(bl, method, **kw):
    return {(a, b): m for a in bl.names
            for b, m in methods.fit_maps(bl, a, [t for t in bl.names if t != a], method, **kw).items()}


def test_further_methods_add_rows_and_change_none_of_the_others(byo):
    _, _, ev, bl = byo
    ridge_maps = all_maps(bl, "ridge", alpha=1.0)
    before = closed_set.evaluate(ev, {"ridge": ridge_maps})
    more = {"lstsq": all_maps(bl, "lstsq"), "procrustes": all_maps(bl, "procrustes")}
    after = closed_set.evaluate(ev, {"ridge": ridge_maps, **more})
    old = after[after.method.isin(before.method.unique())].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, before)
    for method in ("lstsq", "procrustes"):
        rows = after[after.method == method]
        assert len(rows) == 6 and (rows.source != rows.target).all()
    # a procrustes row measured by hand
    m = more["procrustes"][("a", "b")]
    fa, fb = (np.asarray(ev[k].embeddings[:], np.float64) for k in ("a", "b"))
    w, b0 = ev["b"].classifier()
    pred = np.argmax((fa @ m.weight + m.intercept) @ w.T + b0, axis=1)
    row = after[(after.source == "a") & (after.target == "b") & (after.method == "procrustes")].iloc[0]
    assert row.accuracy == pytest.approx(np.mean(pred == ev["a"].labels))


def test_the_analytic_factor_is_numpys_pinv_and_rank_once_per_target():
    rng = np.random.default_rng(0)
    for shape in [(10, 64), (40, 12)]:
        c = rng.standard_normal(shape)
        pinv, full = closed_set.analytic_factor((c, np.zeros(shape[0])))
        assert np.array_equal(pinv, np.linalg.pinv(c))
        assert full == (np.linalg.matrix_rank(c) == shape[0])


def test_prefix_blocks_are_the_blocks_of_the_first_n_rows(byo):
    dirs, fit, _, bl = byo
    got = sample_efficiency.prefix_blocks(bl, [50, 200])
    for m, sub in got.items():
        ref = gram.blocks_in_memory({k: np.asarray(s.embeddings[:m]) for k, s in fit.items()})
        assert sub.n == m
        for a, b in ref.pairs():
            np.testing.assert_allclose(sub.gram(a, b), ref.gram(a, b), rtol=1e-10, atol=1e-10)


def test_sample_efficiency_rows_equal_the_maps_fitted_on_a_prefix(byo):
    dirs, fit, ev, bl = byo
    full = {"ridge": all_maps(bl, "ridge", alpha=1.0), "lstsq": all_maps(bl, "lstsq")}
    subsets = sample_efficiency.prefix_blocks(bl, [60])
    said = []
    t = sample_efficiency.sample_efficiency(ev, full, subsets, bl.n, methods=["ridge", "lstsq"], log=said.append)
    assert list(t.columns) == sample_efficiency.COLUMNS
    # the job's log says what it does as it goes: each method's fit per size, then each size measured
    assert [m.rsplit(" in ", 1)[0] for m in said] == [
        "60 fit samples: ridge maps of 6 pairs from the blocks", "60 fit samples: lstsq maps of 6 pairs from the blocks",
        "60 fit samples: measured on the evaluation split", "400 fit samples: measured on the evaluation split"]
    assert set(t[t.method != "native"].n_fit) == {60, 400} and len(t[t.method == "native"]) == 3
    # the ridge map on the first 60 rows, fitted directly and measured by closed_set.evaluate
    first = gram.blocks_in_memory({k: np.asarray(s.embeddings[:60]) for k, s in fit.items()})
    direct = {(a, b): m for a in first.names
              for b, m in ridge.fit_maps(first, a, [x for x in first.names if x != a], 1.0).items()}
    want = closed_set.evaluate(ev, {"ridge": direct}, controls=False)
    for r in want[want.method == "ridge"].itertuples():
        got = t[(t.source == r.source) & (t.target == r.target) & (t.method == "ridge") & (t.n_fit == 60)].iloc[0]
        assert got.accuracy == r.accuracy and got.r2 == pytest.approx(r.r2, rel=1e-9)
    whole = t[(t.method == "ridge") & (t.n_fit == 400)].set_index(["source", "target"])
    ref = closed_set.evaluate(ev, {"ridge": full["ridge"]}).set_index(["source", "target", "method"])
    assert whole.loc[("a", "b"), "accuracy"] == ref.loc[("a", "b", "ridge"), "accuracy"]


def test_sizes_the_pass_did_not_keep_are_a_clear_error(byo):
    _, _, _, bl = byo
    with pytest.raises(FitError, match=r"holds no blocks of the first \[100\] samples .* re-run the pass"):
        sample_efficiency.prefix_blocks(bl, [50, 100])


def test_a_sample_size_as_large_as_the_split_is_refused():
    with pytest.raises(FitError, match=r"mapping.sample_sizes: 400 is not below the fit split's 400 samples"):
        sample_efficiency.check_sizes([50, 400, "all"], 400)
    sample_efficiency.check_sizes([50, 399, "all"], 400)


def test_open_set_methods_add_rows_and_keep_the_ridge_rows():
    ids, feats = face_embeddings(n_id=30, per_id=4, dims=(10, 8, 10), random=(2,))
    pairs = pairs_among(ids, n_folds=4, per_fold=12)
    t0, f0 = verification.verification(feats, ids, pairs, alpha=0.5)
    t1, f1 = verification.verification(feats, ids, pairs, alpha=0.5, methods=["ridge", "lstsq", "procrustes"],
                                       threads=2)
    pd.testing.assert_frame_equal(f1[f1.method.isin(f0.method.unique())].reset_index(drop=True), f0)
    assert set(t1.method) == {"native", "ridge", "lstsq", "procrustes", "identity"}
    assert (f1[f1.method == "lstsq"].alpha == 0).all() and f1[f1.method == "procrustes"].alpha.isna().all()
    i0 = identification.identification(feats, ids, n_folds=3, seed=0, alpha=0.5)
    i1 = identification.identification(feats, ids, n_folds=3, seed=0, alpha=0.5, methods=["ridge", "procrustes"])
    pd.testing.assert_frame_equal(i1[i1.method.isin(i0.method.unique())].reset_index(drop=True), i0)
    assert len(i1[i1.method == "procrustes"]) == 6


def test_open_set_standard_scaling_refuses_a_constant_feature_before_fitting():
    ids, feats = face_embeddings(n_id=20, per_id=3, dims=(6, 5))
    feats["net1"] = feats["net1"].copy()
    feats["net1"][:, 2] = 0.5
    pairs = pairs_among(ids, n_folds=3, per_fold=8)
    with pytest.raises(FitError, match="network 'net1': 1 constant feature"):
        verification.verification(feats, ids, pairs, methods=["ridge", "procrustes"], scale="standard")


# -- end to end ---------------------------------------------------------------------
@pytest.mark.workflow
def _debiased_by_gram_matrices(x, y):
    """Debiased linear CKA with the n x n Gram matrices of the centred rows (Song et al. 2012, eq. 5)."""
    def hsic(k, l):
        n = len(k)
        k, l = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
        return (np.sum(k * l) + k.sum() * l.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * k.sum(0) @ l.sum(0)) / (
            n * (n - 3))

    x, y = x - x.mean(0), y - y.mean(0)
    k, l = x @ x.T, y @ y.T
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_every_analysis_end_to_end_and_defaults_unchanged(tmp_path):
    dirs = synthetic_stores(tmp_path / "byo", names=("a", "b", "c"), dims=(12, 10, 12))
    plain = tmp_path / "plain"
    plain.mkdir()
    snakemake(plain, byo_config(dirs))
    cfg = byo_config(dirs, similarity={"indices": list(sim.INDICES), "svcca_k": 4, "max_samples": 300})
    cfg["experiments"]["byo"]["mapping"].update({"methods": ["ridge", "lstsq", "procrustes"],
                                                 "sample_sizes": [50, 200, "all"], "shards": 2})
    snakemake(tmp_path, cfg)
    res, ref = tmp_path / "results" / "byo", plain / "results" / "byo"
    t = pd.read_csv(res / "tables" / "closed_set.csv")
    t0 = pd.read_csv(ref / "tables" / "closed_set.csv")
    pd.testing.assert_frame_equal(t[t.method.isin(t0.method.unique())].reset_index(drop=True), t0)
    assert (res / "tables" / "closed_set_matrix.csv").read_text() == (ref / "tables" / "closed_set_matrix.csv").read_text()
    assert len(t[t.method == "procrustes"]) == 6
    g = zarr.open_group(str(res / "maps" / "lstsq" / "a" / "b.zarr"), mode="r")
    assert g.attrs["method"] == "lstsq" and g.attrs["rank"] == 12 and g["weight"].shape == (12, 10)
    assert (res / "maps" / "ridge" / "a" / "b.zarr").exists()  # every method's maps in one layout
    s = pd.read_csv(res / "tables" / "similarity.csv")
    assert list(s.columns) == sim.COLUMNS and set(s["index"]) == set(sim.INDICES)
    # debiased CKA from two shards' statistics: the n x n formula on the fit stores' rows
    raw = {k: np.asarray(stores.open_embeddings(f"{d}/train.zarr").embeddings[:], np.float64) for k, d in dirs.items()}
    for r in s[s["index"] == "cka_debiased"].itertuples():
        assert r.value == pytest.approx(_debiased_by_gram_matrices(raw[r.source], raw[r.target]), rel=1e-8)
        assert r.n == 400 and "all n fit samples" in r.parameters
    e = pd.read_csv(res / "tables" / "sample_efficiency.csv")
    assert list(e.columns) == sample_efficiency.COLUMNS
    assert set(e.n_fit.dropna()) == {50, 200, 400} and set(e.method) == {"native", "ridge", "lstsq", "procrustes"}
    for f in ["similarity_heatmap.png", "similarity_heatmap.svg"] + [f"sample_efficiency/{k}.png" for k in "abc"]:
        assert (res / "figures" / f).stat().st_size > 1000, f
    # a sample size the split does not have stops the pass before it reads a block
    bad = tmp_path / "bad"
    bad.mkdir()
    cfg["experiments"]["byo"]["mapping"]["sample_sizes"] = [50, 5000]
    r = snakemake(bad, cfg, check=False)
    assert r.returncode != 0
    # whichever shard started first stops (the other may never start)
    log = "".join(p.read_text() for p in (bad / "results" / "byo" / "logs" / "cross_products_shard").glob("*.log"))
    assert "mapping.sample_sizes (fit split 'train'): 5000 is not below the fit split's 400 samples" in log


def test_prefixes_below_the_features_are_fitted_in_the_sample_space_with_the_same_table(tmp_path):
    dirs = synthetic_stores(tmp_path, names=("a", "b", "c"), dims=(40, 30, 36), n_train=300, n_test=120)
    fit = stores.open_matched({k: f"{d}/train.zarr" for k, d in dirs.items()})
    ev = stores.open_matched({k: f"{d}/test.zarr" for k, d in dirs.items()}, need_classifier=True)
    cp = gram.cross_products({k: s.embeddings for k, s in fit.items()}, sample_sizes=[20, 35])
    full = {"ridge": all_maps(cp, "ridge", alpha=1.0), "lstsq": all_maps(cp, "lstsq"),
            "procrustes": all_maps(cp, "procrustes")}
    subsets = sample_efficiency.prefix_blocks(cp, [20, 35])
    kw = dict(methods=["ridge", "lstsq", "procrustes"], alpha=1.0)
    blocks_only = sample_efficiency.sample_efficiency(ev, full, subsets, None, **kw)
    said = []
    rows = {k: stores.read_rows(s, np.arange(35)) for k, s in fit.items()}
    both = sample_efficiency.sample_efficiency(ev, full, subsets, None, log=said.append, first_rows=rows, **kw)
    pd.testing.assert_frame_equal(both, blocks_only, rtol=1e-6, atol=1e-9)
    routes = [m.rsplit(" in ", 1)[0] for m in said if "maps of" in m]
    assert routes == ["20 fit samples: ridge maps of 6 pairs in the sample space",
                      "20 fit samples: lstsq maps of 6 pairs in the sample space",
                      "20 fit samples: procrustes maps of 6 pairs in the sample space",
                      "35 fit samples: ridge maps of 6 pairs in the sample space",
                      "35 fit samples: lstsq maps of 6 pairs in the sample space",
                      "35 fit samples: procrustes maps of 6 pairs in the sample space"], routes
