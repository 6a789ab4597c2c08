"""Map methods from blocks (lstsq, procrustes) agree with textbook fits on the raw features (float64, 1e-8)."""

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes

from embmap.fit import FitError, folds, gram, methods
from helpers import latent_embeddings

RTOL = 1e-8


def centred(x):
    return x - x.mean(axis=0)


@pytest.fixture(scope="module")
def feats():
    _, xs = latent_embeddings(n=400, dims=(10, 7, 13), noise=0.3, offset=2.0, seed=9)
    return {f"n{i}": x.astype(np.float64) for i, x in enumerate(xs)}


def test_lstsq_is_ordinary_least_squares_with_an_intercept(feats):
    bl = gram.blocks_in_memory(feats)
    maps = methods.fit_maps(bl, "n0", ["n1", "n2"], "lstsq")
    for b, m in maps.items():
        x1 = np.c_[feats["n0"], np.ones(len(feats["n0"]))]
        coef = np.linalg.lstsq(x1, feats[b], rcond=None)[0]
        np.testing.assert_allclose(m.weight, coef[:-1], rtol=RTOL, atol=RTOL * np.abs(coef).max())
        np.testing.assert_allclose(m.intercept, coef[-1], rtol=RTOL, atol=RTOL * np.abs(coef).max())
        assert m.attrs["method"] == "lstsq" and m.attrs["rank"] == 10 and m.attrs["alpha"] == 0.0
        pred = m(feats["n0"])
        r2 = 1 - np.sum((feats[b] - pred) ** 2) / np.sum(centred(feats[b]) ** 2)
        assert m.attrs["fit_r2"] == pytest.approx(r2, rel=RTOL)


def test_lstsq_on_a_singular_source_is_the_minimum_norm_solution_with_its_rank():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 10))  # more features than samples: rank 5 after centring
    y = rng.standard_normal((6, 3))
    bl = gram.blocks_in_memory({"a": x, "b": y})
    m = methods.fit_maps(bl, "a", ["b"], "lstsq")["b"]
    want = np.linalg.pinv(centred(x)) @ centred(y)
    np.testing.assert_allclose(m.weight, want, rtol=1e-7, atol=1e-9)
    assert m.attrs["rank"] == 5 and m.attrs["rank_of"] == 10


@pytest.mark.parametrize("a, b", [("n0", "n1"), ("n1", "n2"), ("n0", "n0b")])
def test_procrustes_is_the_scaled_orthogonal_map_on_zero_padded_features(feats, a, b):
    f = dict(feats, n0b=feats["n0"] @ np.linalg.qr(np.random.default_rng(2).standard_normal((10, 10)))[0] * 2 + 1)
    bl = gram.blocks_in_memory(f)
    m = methods.fit_maps(bl, a, [b], "procrustes")[b]
    xa, xb = centred(f[a]), centred(f[b])
    d = max(xa.shape[1], xb.shape[1])
    pa, pb = (np.c_[x, np.zeros((len(x), d - x.shape[1]))] for x in (xa, xb))
    r, _ = orthogonal_procrustes(pa, pb)
    s = np.sum((pa @ r) * pb) / np.sum(pa ** 2)  # the best isotropic scale
    want = (s * r)[:xa.shape[1], :xb.shape[1]]
    np.testing.assert_allclose(m.weight, want, rtol=RTOL, atol=RTOL * np.abs(want).max())
    np.testing.assert_allclose(m(f[a]).mean(axis=0), f[b].mean(axis=0), atol=1e-9)
    assert m.attrs["isotropic_scale"] == pytest.approx(s, rel=RTOL)
    if b == "n0b":  # an exact rotation, scale and shift is recovered exactly
        np.testing.assert_allclose(m(f[a]), f[b], atol=1e-8)
        assert m.attrs["fit_r2"] == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("case", ["dead units", "fewer samples than features"])
def test_procrustes_where_s_ab_is_rank_deficient_maps_its_null_space_to_zero(case):
    """The orthogonal factor is not determined outside the rank of S_AB; the map must not depend on rounding."""
    rng = np.random.default_rng(5)
    if case == "dead units":  # the target has 4 units that never fire on the fit samples
        x = rng.standard_normal((200, 9))
        y = np.c_[np.tanh(x @ rng.standard_normal((9, 6))), np.zeros((200, 4))]
        rank = 6
    else:  # 8 samples: centred blocks of rank 7 < 9 features
        x, y = rng.standard_normal((8, 9)), rng.standard_normal((8, 10))
        rank = 7

    def fit(xx, yy):
        return methods.fit_maps(gram.blocks_in_memory({"a": xx, "b": yy}), "a", ["b"], "procrustes")["b"]

    m = fit(x, y)
    xa, yb = centred(x), centred(y)
    u, sv, vt = np.linalg.svd(xa.T @ yb)  # re-derived from the features: U_r V_r' over the non-zero singular values
    s = sv.sum() / np.sum(xa ** 2)
    np.testing.assert_allclose(m.weight, s * u[:, :rank] @ vt[:rank], rtol=1e-9, atol=1e-12)
    assert (m.attrs["rank"], m.attrs["rank_of"]) == (rank, 9)
    # rounding-sized changes of the features move the map by rounding-sized amounts, not by a new completion
    again = fit(x * (1 + 1e-13), y + 1e-15 * rng.standard_normal(y.shape) * (y != 0))
    np.testing.assert_allclose(again.weight, m.weight, atol=1e-9)
    both = dict(methods.fit_pairs(gram.blocks_in_memory({"a": x, "b": y}), ["a", "b"], "procrustes"))
    np.testing.assert_allclose(both["a", "b"].weight, m.weight, rtol=1e-12, atol=1e-15)
    assert both["b", "a"].attrs["rank"] == rank


def test_procrustes_with_standard_scaling(feats):
    bl = gram.blocks_in_memory(feats)
    m = methods.fit_maps(bl, "n0", ["n2"], "procrustes", scale="standard")["n2"]
    sa, sb = feats["n0"].std(axis=0), feats["n2"].std(axis=0)
    za, zb = centred(feats["n0"]) / sa, centred(feats["n2"]) / sb
    pa = np.c_[za, np.zeros((len(za), 3))]
    r, _ = orthogonal_procrustes(pa, zb)
    s = np.sum((pa @ r) * zb) / np.sum(pa ** 2)
    pred = (za @ (s * r)[:10]) * sb + feats["n2"].mean(axis=0)
    np.testing.assert_allclose(m(feats["n0"]), pred, rtol=1e-8, atol=1e-8)


def test_standard_scaling_refuses_a_constant_feature_naming_the_network(feats):
    f = dict(feats)
    f["n2"] = f["n2"].copy()
    f["n2"][:, 4] = 3.25
    bl = gram.blocks_in_memory(f)
    with pytest.raises(FitError, match=r"network 'n2': 1 constant feature\(s\) .*index 4.*scale: none"):
        methods.fit_maps(bl, "n0", ["n1", "n2"], "procrustes", scale="standard")
    methods.fit_maps(bl, "n0", ["n2"], "procrustes")  # without scaling a constant feature is fine


def test_unknown_method_is_refused(feats):
    bl = gram.blocks_in_memory(feats)
    with pytest.raises(FitError, match="mapping.methods: unknown method 'cca'"):
        methods.fit_maps(bl, "n0", ["n1"], "cca")


@pytest.mark.parametrize("method", ["lstsq", "procrustes"])
def test_per_fold_maps_of_every_method_equal_a_fit_on_the_other_folds(feats, method):
    rng = np.random.default_rng(3)
    fold = rng.integers(0, 4, len(feats["n0"]))
    sf = folds.SourceFolds("n0", feats["n0"], {"n1": feats["n1"], "n2": feats["n2"]}, fold, 4)
    w, c, penalty = sf.weights(2, method)
    keep = fold != 2
    direct = gram.blocks_in_memory({k: x[keep] for k, x in feats.items()})
    for b in ("n1", "n2"):
        m = methods.fit_maps(direct, "n0", [b], method)[b]
        np.testing.assert_allclose(w[:, sf.slices[b]], m.weight, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(c[sf.slices[b]], m.intercept, rtol=1e-8, atol=1e-10)
    assert penalty["n1"] == 0.0 if method == "lstsq" else np.isnan(penalty["n1"])


def test_ridge_by_one_solve_equals_ridge_by_eigh(feats):
    """A single alpha takes one LU solve for every target: the same maps as the eigenbasis formula."""
    from embmap.fit import ridge

    bl = gram.blocks_in_memory(feats)
    fast = ridge.fit_maps(bl, "n1", ["n0", "n2"], 2.5)
    w, v = np.linalg.eigh(bl.gram("n1", "n1"))
    for b in ("n0", "n2"):
        p = v.T @ bl.gram("n1", b)
        m = v @ (p / (w + 2.5)[:, None])
        np.testing.assert_allclose(fast[b].weight, m, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(fast[b].intercept, bl.means[b] - bl.means["n1"] @ m, rtol=1e-9, atol=1e-12)
        rss = float(bl.sumsq(b).sum()) - 2 * float(np.sum(m * bl.gram("n1", b))) + float(
            np.sum(m * (bl.gram("n1", "n1") @ m)))
        assert fast[b].attrs["fit_r2"] == pytest.approx(1 - rss / float(bl.sumsq(b).sum()), rel=1e-10)

@pytest.mark.parametrize("method,scale", [("procrustes", "none"), ("procrustes", "standard"), ("lstsq", "none")])
def test_all_pairs_share_one_factorisation_per_unordered_pair_and_equal_per_source_fits(feats, method, scale):
    """fit_pairs (one SVD per unordered pair for procrustes) gives every ordered pair the map fit_maps gives."""
    bl = gram.blocks_in_memory(feats)
    names = list(feats)
    pairs = dict(methods.fit_pairs(bl, names, method, scale=scale))
    assert sorted(pairs) == sorted((a, b) for a in names for b in names if a != b)
    for a in names:
        for b, m in methods.fit_maps(bl, a, [b for b in names if b != a], method, scale=scale).items():
            np.testing.assert_allclose(pairs[(a, b)].weight, m.weight, rtol=1e-9, atol=1e-12 * np.abs(m.weight).max())
            np.testing.assert_allclose(pairs[(a, b)].intercept, m.intercept, rtol=1e-9, atol=1e-9)
            for k in ("fit_r2", "isotropic_scale"):
                if k in m.attrs:
                    assert pairs[(a, b)].attrs[k] == pytest.approx(m.attrs[k], rel=1e-9), k


@pytest.mark.parametrize("method, says", [("lstsq", "S_AA is singular (rank 7 of 9)"),
                                          ("procrustes", "S_AB has rank 7 of 9")])
def test_fit_method_maps_warns_when_a_map_spans_less_than_its_dimensions(tmp_path, caplog, method, says):
    import logging

    from embmap import steps, stores

    rng = np.random.default_rng(6)  # 8 samples of 9 and 10 features: centred blocks of rank 7
    stores.write_blocks(tmp_path / "blocks.zarr", gram.blocks_in_memory(
        {"a": rng.standard_normal((8, 9)), "b": rng.standard_normal((8, 10))}))
    with caplog.at_level(logging.WARNING, logger="embmap"):
        steps.fit_method_maps(str(tmp_path / "blocks.zarr"), method, ["a", "b"], methods.options(),
                              str(tmp_path / "maps"), "exp", "train")
    assert any(says in r.getMessage() and r.getMessage().startswith("a -> b") for r in caplog.records), caplog.text
    assert stores.read_map(tmp_path / "maps" / "a" / "b.zarr").attrs["rank"] == 7


@pytest.mark.parametrize("method", list(methods.METHODS))
def test_every_method_warns_once_per_source_when_fit_samples_are_few_for_its_features(tmp_path, caplog, method):
    """158 photos of 1,280 features gave ridge a fit R2 of 0.8 and an evaluation R2 of 0 without a word (issue
    26): every method's fit job now says so, once per source, below 2 samples per feature, and not above."""
    import logging

    from embmap import steps, stores

    rng = np.random.default_rng(7)
    few = {"a": rng.standard_normal((30, 20)), "b": rng.standard_normal((30, 25)), "c": rng.standard_normal((30, 8))}
    stores.write_blocks(tmp_path / "blocks.zarr", gram.blocks_in_memory(few))
    jobs = ([(a, tmp_path / "maps" / a) for a in few] if methods.get(method).jobs == methods.SOURCE_JOBS
            else [(None, tmp_path / "maps")])
    with caplog.at_level(logging.WARNING, logger="embmap"):
        for a, out in jobs:
            if a is None:
                steps.fit_method_maps(str(tmp_path / "blocks.zarr"), method, list(few), methods.options(), str(out),
                                      "exp", "train")
            else:
                steps.fit_maps(str(tmp_path / "blocks.zarr"), method, a, [b for b in few if b != a],
                               methods.options(), str(out), "exp", "train")
    said = [r.getMessage() for r in caplog.records if "fit samples for" in r.getMessage()]
    assert sorted(m.split(" ")[0] for m in said) == ["a", "b"], said  # c has 30 samples for 8 features
    assert "30 fit samples for 20 source features (fewer than 2 per feature)" in said[0] or \
        "30 fit samples for 20 source features (fewer than 2 per feature)" in said[1]


@pytest.mark.parametrize("method, alpha, scale", [("ridge", 0.7, "none"), ("ridge", 25.0, "none"),
                                                  ("lstsq", 0.0, "none"), ("procrustes", 1.0, "none"),
                                                  ("procrustes", 1.0, "standard")])
def test_the_sample_space_route_gives_the_maps_of_the_blocks_for_fewer_samples_than_features(method, alpha, scale):
    """Prefixes of m < d samples: X^T (X X^T + alpha I)^-1 Y (ridge), X^T (X X^T)^+ Y (lstsq, minimum norm) and
    procrustes from a thin QR of each network's samples equal the maps the blocks give, at m^2 d cost instead of
    d^3 (issue 26)."""
    rng = np.random.default_rng(8)
    z = rng.standard_normal((40, 5))
    rows = {"a": z @ rng.standard_normal((5, 60)) + 0.1 * rng.standard_normal((40, 60)) + 3.0,
            "b": z @ rng.standard_normal((5, 50)) + 0.1 * rng.standard_normal((40, 50)) - 1.0,
            "c": rng.standard_normal((40, 30))}
    bl = gram.blocks_in_memory(rows)
    opts = methods.options(alpha=alpha, scale=scale)
    m = methods.get(method)
    full = dict(m.fit_pairs(bl, list(rows), opts))
    dual = m.like_samples(rows, list(rows), opts, full)
    for pair, want in m.fit_like(bl, list(rows), opts, full).items():
        got = dual[pair]
        scale = np.abs(want.weight).max()
        np.testing.assert_allclose(got.weight, want.weight, rtol=1e-6, atol=1e-8 * scale)
        np.testing.assert_allclose(got.intercept, want.intercept, rtol=1e-6, atol=1e-8 * scale)
        assert got.attrs["fit_r2"] == pytest.approx(want.attrs["fit_r2"], abs=1e-8)
        for k in ("source", "target", "method", "n", "alpha", "rank", "rank_of", "scale"):
            assert got.attrs.get(k) == want.attrs.get(k), k
        if "isotropic_scale" in want.attrs:
            assert got.attrs["isotropic_scale"] == pytest.approx(want.attrs["isotropic_scale"], rel=1e-8)


def test_a_penalty_too_small_for_the_singular_sample_gram_takes_the_blocks_route():
    """Centred samples have a singular m x m Gram: ridge's sample-space route declines a penalty the blocks would
    solve in the eigenbasis (and the blocks' route runs instead)."""
    rng = np.random.default_rng(9)
    rows = {"a": rng.standard_normal((20, 40)), "b": rng.standard_normal((20, 30))}
    bl = gram.blocks_in_memory(rows)
    m = methods.get("ridge")
    full = dict(m.fit_pairs(bl, list(rows), methods.options(alpha=0.5)))
    assert m.like_samples(rows, list(rows), methods.options(alpha=0.5), full) is not None
    for f in full.values():
        f.attrs["alpha"] = 1e-14  # a whole-split map that chose a vanishing penalty
    assert m.like_samples(rows, list(rows), methods.options(alpha=0.5), full) is None
