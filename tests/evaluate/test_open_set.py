"""Open set: the LFW pairs format, the 10-fold verification protocol re-derived independently, identification."""

import numpy as np
import pandas as pd
import pytest

from embmap import data
from embmap.data import manifest as mf
from embmap.data import pairs as pf
from embmap.evaluate import common, identification, verification
from embmap.fit import folds
from helpers import ROOT, fabricated_lfw, face_embeddings, pairs_among, snakemake


# -- the threshold search -----------------------------------------------------------
def brute_force_threshold(d, same):
    """Every candidate tried one by one: each distinct distance and one value below them all."""
    cands = sorted(set(d.tolist()))
    cands = [cands[0] - 1.0] + cands
    accs = [np.mean((d <= t) == same) for t in cands]
    best = max(accs)
    return cands[accs.index(best)], best


def test_threshold_on_a_hand_worked_example():
    # sorted: 0.1 S, 0.2 S, 0.3 D, 0.4 S, 0.5 D, 0.6 D
    d = np.array([0.4, 0.1, 0.6, 0.3, 0.2, 0.5])
    same = np.array([1, 1, 0, 0, 1, 0], bool)
    tau, acc = verification.best_threshold(d, same)
    # tau=0.2 -> 5/6 (one S above); tau=0.4 -> 5/6 (one D below): ties go to the smallest
    assert tau == 0.2 and acc == pytest.approx(5 / 6)


@pytest.mark.parametrize("seed", range(6))
def test_threshold_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    d = rng.integers(0, 7, size=40) / 7.0  # many ties
    same = rng.random(40) < 0.5
    tau, acc = verification.best_threshold(d, same)
    ref_tau, ref_acc = brute_force_threshold(d, same)
    assert acc == pytest.approx(ref_acc)
    if ref_tau >= d.min():
        assert tau == ref_tau
    else:  # "no pair is the same": any value below the smallest distance
        assert tau < d.min() and np.mean((d <= tau) == same) == pytest.approx(ref_acc)


def test_all_equal_distances_and_one_class():
    d = np.full(6, 0.3)
    same = np.array([1, 1, 0, 0, 0, 1], bool)
    tau, acc = verification.best_threshold(d, same)
    assert tau < 0.3 and acc == 0.5  # "all different" ties "all same": the smaller threshold wins
    tau, acc = verification.best_threshold(d, np.ones(6, bool))
    assert tau == 0.3 and acc == 1.0
    tau, acc = verification.best_threshold(np.array([0.1, 0.9]), np.zeros(2, bool))
    assert tau < 0.1 and acc == 1.0


def test_fold_with_one_class_is_scored_with_the_other_folds_threshold():
    d = np.array([0.1, 0.2, 0.8, 0.9, 0.15, 0.85, 0.5, 0.6])
    same = np.array([1, 1, 0, 0, 1, 0, 1, 1], bool)
    fold = np.array([0, 0, 0, 0, 1, 1, 2, 2])  # fold 2 holds matched pairs only
    acc, tau, train_acc, _ = verification.fold_accuracy(d, same, fold, 2)
    assert tau == 0.2 and train_acc == 1.0 and acc == 0.0
    acc, tau, _, _ = verification.fold_accuracy(d, same, fold, 0)
    assert tau == 0.6 and acc == 1.0


# -- the protocol, independently ----------------------------------------------------
def reference_verification(feats, ids, pairs, alpha):
    """Plain numpy: loops over folds, lstsq on centred data for the map, brute-force thresholds."""
    index = {k: i for i, k in enumerate(ids)}
    i1 = np.array([index[p] for p in pairs.path1])
    i2 = np.array([index[p] for p in pairs.path2])
    out = {}
    names = list(feats)
    for k in range(pairs.n_folds):
        train = pairs.fold != k
        fit = train & pairs.same
        for a in names:
            for b in names:
                x1 = feats[a][i1].astype(np.float64)
                x2 = feats[b][i2].astype(np.float64)
                if a != b:
                    xa, xb = x1[fit], x2[fit]
                    ma, mb = xa.mean(0), xb.mean(0)
                    # ridge with unpenalised intercept as an augmented least-squares problem
                    aug = np.vstack([xa - ma, np.sqrt(alpha) * np.eye(xa.shape[1])])
                    rhs = np.vstack([xb - mb, np.zeros((xa.shape[1], xb.shape[1]))])
                    w = np.linalg.lstsq(aug, rhs, rcond=None)[0]
                    x1 = x1 @ w + (mb - ma @ w)
                cos = (x1 * x2).sum(1) / np.linalg.norm(x1, axis=1) / np.linalg.norm(x2, axis=1)
                dist = 1 - cos
                tau, train_acc = brute_force_threshold(dist[train], pairs.same[train])
                acc = np.mean((dist[~train] <= tau) == pairs.same[~train])
                out[(a, b, k)] = (acc, tau, train_acc)
    return out


@pytest.fixture(scope="module")
def small():
    ids, feats = face_embeddings(n_id=30, per_id=4, dims=(10, 8, 10), random=(2,))
    pairs = pairs_among(ids, n_folds=4, per_fold=12)
    table, folds = verification.verification(feats, ids, pairs, alpha=0.5)
    return ids, feats, pairs, table, folds


def test_protocol_matches_an_independent_derivation(small):
    ids, feats, pairs, table, folds = small
    ref = reference_verification(feats, ids, pairs, alpha=0.5)
    main = folds[folds.method.isin(["native", "ridge"])]
    assert len(main) == 9 * pairs.n_folds
    for r in main.itertuples():
        acc, tau, train_acc = ref[(r.source, r.target, r.fold - 1)]
        assert r.accuracy == pytest.approx(acc)
        assert r.train_accuracy == pytest.approx(train_acc)
        if tau >= -0.5:  # brute force uses min - 1 for "none the same"; the module the next float down
            assert r.threshold == pytest.approx(tau, abs=1e-9)
    # table = mean and population std over folds
    g = main.groupby(["source", "target", "method"]).accuracy
    t = table.set_index(["source", "target", "method"])
    for key, acc in g:
        assert t.loc[key, "accuracy_mean"] == pytest.approx(np.mean(acc))
        assert t.loc[key, "accuracy_std"] == pytest.approx(np.std(acc, ddof=0))


def reference_inner_cv_alpha(feats, ids, pairs, a, b, k, alphas):
    """Plain numpy: for outer fold k, leave each other fold out in turn, score every alpha, pick the best.

    Score: 1 - held-out squared error / held-out squared deviation from the held-out fold's own mean,
    summed over the inner folds; ties go to the larger alpha.
    """
    index = {x: i for i, x in enumerate(ids)}
    i1 = np.array([index[p] for p in pairs.path1])
    i2 = np.array([index[p] for p in pairs.path2])
    x = feats[a][i1].astype(np.float64)
    y = feats[b][i2].astype(np.float64)
    inner = [j for j in range(pairs.n_folds) if j != k]
    scores = []
    for alpha in alphas:
        rss = tss = 0.0
        for j in inner:
            fit = pairs.same & (pairs.fold != k) & (pairs.fold != j)
            held = pairs.same & (pairs.fold == j)
            ma, mb = x[fit].mean(0), y[fit].mean(0)
            aug = np.vstack([x[fit] - ma, np.sqrt(alpha) * np.eye(x.shape[1])])
            rhs = np.vstack([y[fit] - mb, np.zeros((x.shape[1], y.shape[1]))])
            w = np.linalg.lstsq(aug, rhs, rcond=None)[0]
            pred = (x[held] - ma) @ w + mb
            rss += float(((pred - y[held]) ** 2).sum())
            tss += float(((y[held] - y[held].mean(0)) ** 2).sum())
        scores.append(1 - rss / tss)
    best = max(range(len(alphas)), key=lambda i: (round(scores[i], 12), alphas[i]))
    return alphas[best]


def test_an_alpha_list_is_chosen_per_outer_fold_by_inner_cross_validation(small):
    ids, feats, pairs, _, _ = small
    alphas = [0.001, 0.1, 1.0, 10.0, 100.0]
    table, fold_table = verification.verification(feats, ids, pairs, alpha=alphas)
    ridge = fold_table[fold_table.method == "ridge"]
    assert ridge.alpha.notna().all() and set(ridge.alpha) <= set(alphas)
    assert fold_table[fold_table.method != "ridge"].alpha.isna().all()
    chosen = set()
    for r in ridge.itertuples():
        want = reference_inner_cv_alpha(feats, ids, pairs, r.source, r.target, r.fold - 1, alphas)
        assert r.alpha == want, (r.source, r.target, r.fold)
        chosen.add(r.alpha)
    assert len(chosen) > 1  # the choice really depends on the pair and the fold here
    # each fold's map is then the plain ridge map of its chosen alpha on all other folds
    ref = reference_verification(feats, ids, pairs, alpha=1.0)
    for r in ridge[ridge.alpha == 1.0].itertuples():
        assert r.accuracy == pytest.approx(ref[(r.source, r.target, r.fold - 1)][0])


def test_an_alpha_list_needs_two_other_folds(small):
    from embmap.fit import FitError

    ids, feats, _, _, _ = small
    two = pairs_among(ids, n_folds=2, per_fold=12)
    with pytest.raises(FitError, match=r"fold 1: choosing alpha among \[0\.1, 1\.0\] by inner cross-validation"):
        verification.verification(feats, ids, two, alpha=[0.1, 1.0])
    identification.identification(feats, ids, n_folds=3, seed=0, alpha=[0.1, 1.0])  # 2 other folds: fine


def test_table_columns_rows_and_controls(small):
    ids, feats, pairs, table, folds = small
    assert list(table.columns) == verification.TABLE_COLUMNS
    assert list(folds.columns) == verification.FOLD_COLUMNS
    assert set(table.method) == {"native", "ridge", "identity"}
    ident = table[table.method == "identity"]
    assert set(zip(ident.source, ident.target)) == {("net0", "net2"), ("net2", "net0")}  # equal dims only
    native = table[table.method == "native"].set_index("source").accuracy_mean
    assert native["net0"] > 0.9 and native["net1"] > 0.9 and native["net2"] < 0.75
    rid = table[table.method == "ridge"].set_index(["source", "target"]).accuracy_mean
    assert rid[("net0", "net1")] > 0.7 and rid[("net1", "net0")] > 0.7
    assert rid[("net0", "net2")] < 0.65 and rid[("net2", "net1")] < 0.65  # the random control
    assert (ident.accuracy_mean < 0.65).all()
    fit = folds[folds.method == "ridge"].n_fit
    assert (fit == 3 * pairs.per_fold).all()  # matched pairs of the other folds only
    m = common.matrix(table, ["net0", "net1", "net2"], "accuracy_mean")
    assert m.loc["net0", "net0"] == native["net0"] and m.loc["net0", "net1"] == rid[("net0", "net1")]


@pytest.mark.parametrize("block", [1, 3, 512])
def test_mapped_distances_match_mapping_every_pair(block):
    """Blocks of first images mapped once to all targets give each pair's distance as mapping it alone."""
    rng = np.random.default_rng(3)
    x1 = rng.standard_normal((7, 5))
    w, c = rng.standard_normal((5, 9)), rng.standard_normal(9)
    slices = {"p": slice(0, 4), "q": slice(4, 9)}
    first = np.array([0, 0, 1, 3, 3, 3, 4, 6])  # image 2 and 5 in no pair; grouped, not one per pair
    y2 = {b: rng.standard_normal((len(first), sl.stop - sl.start)) for b, sl in slices.items()}
    ny2 = {b: np.linalg.norm(y, axis=1) for b, y in y2.items()}
    got = verification.mapped_distances(x1, w, c, slices, first, y2, ny2, block=block)
    for b, sl in slices.items():
        m = x1[first] @ w[:, sl] + c[sl]
        want = 1 - np.sum(m * y2[b], axis=1) / (np.linalg.norm(m, axis=1) * ny2[b])
        np.testing.assert_allclose(got[b], want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="grouped by first image"):
        verification.mapped_distances(x1, w, c, slices, first[::-1], y2, ny2)


def test_fold_map_ignores_its_own_fold():
    ids, feats = face_embeddings(n_id=20, per_id=3, dims=(6, 5))
    pairs = pairs_among(ids, n_folds=3, per_fold=8)
    i1, i2 = pf.rows_of(pairs, ids)
    fit = pairs.same
    src = feats["net0"][i1[fit]].astype(np.float64)
    tgt = {"net1": feats["net1"][i2[fit]].astype(np.float64)}

    def fold_map(x, k):
        return folds.SourceFolds("net0", x, tgt, pairs.fold[fit], 3).weights(k, "ridge", alpha=1.0)[:2]

    w0, c0 = fold_map(src, 0)
    in0 = pairs.fold[fit] == 0
    changed = src.copy()
    changed[in0] += 5.0  # change fold 0's pairs only
    w0b, c0b = fold_map(changed, 0)
    np.testing.assert_allclose(w0b, w0, atol=1e-10)
    np.testing.assert_allclose(c0b, c0, atol=1e-10)
    assert not np.allclose(fold_map(changed, 1)[1], fold_map(src, 1)[1])
    # and it equals a fit on the other folds' rows
    from sklearn.linear_model import Ridge

    ref = Ridge(alpha=1.0).fit(src[~in0], tgt["net1"][~in0])
    np.testing.assert_allclose(w0, ref.coef_.T, atol=1e-8)
    np.testing.assert_allclose(c0, ref.intercept_, atol=1e-8)


def test_a_single_fold_is_refused():
    ids, feats = face_embeddings(n_id=6, per_id=3, dims=(4, 4))
    pairs = pairs_among(ids, n_folds=1, per_fold=4)
    with pytest.raises(pf.PairsError, match="at least 2"):
        verification.verification(feats, ids, pairs)


def test_pairs_naming_images_without_embeddings_are_listed():
    ids, feats = face_embeddings(n_id=6, per_id=3, dims=(4, 4))
    pairs = pairs_among(ids, n_folds=2, per_fold=4)
    keep = ~np.isin(ids, [pairs.path1[0], pairs.path2[-1]])
    with pytest.raises(pf.PairsError, match=r"2 image\(s\) have no embedding") as e:
        verification.verification({k: f[keep] for k, f in feats.items()}, ids[keep], pairs)
    assert pairs.path1[0] in str(e.value) and pairs.path2[-1] in str(e.value)


# -- identification -----------------------------------------------------------------
def test_identification_against_a_direct_computation():
    ids, feats = face_embeddings(n_id=30, per_id=4, dims=(10, 8, 10), random=(2,))
    t = identification.identification(feats, ids, n_folds=3, seed=0, alpha=0.5)
    assert list(t.columns) == identification.COLUMNS
    assert (t.n_probes == 30 * 3).all() and (t.gallery_size == 10).all()
    r = t.set_index(["source", "target", "method"])
    assert r.loc[("net0", "net0", "native"), "rank1"] > 0.8
    assert r.loc[("net0", "net1", "ridge"), "rank1"] > 0.3 and r.loc[("net0", "net1", "ridge"), "rank5"] > 0.8
    assert r.loc[("net0", "net2", "identity"), "rank1"] < 0.2  # chance: 1 in 10
    assert (t.rank5 >= t.rank1).all()
    # native rank-1 by hand: nearest gallery image (the first image of each identity) within each fold
    gallery, gfold, probes, pid = identification.identification_split(ids, 3, 0)
    f = feats["net1"].astype(np.float64)
    hits = 0
    for k in range(3):
        g = np.flatnonzero(gfold == k)
        for p, who in zip(probes, pid):
            if gfold[who] != k:
                continue
            sims = [f[p] @ f[gallery[j]] / np.linalg.norm(f[p]) / np.linalg.norm(f[gallery[j]]) for j in g]
            hits += g[int(np.argmax(sims))] == who
    assert r.loc[("net1", "net1", "native"), "rank1"] == pytest.approx(hits / len(probes))


def test_identification_split_keeps_identities_apart():
    ids, _ = face_embeddings(n_id=12, per_id=3, dims=(4,))
    ids = np.concatenate([ids, ["Loner/Loner_0001.jpg"]])
    gallery, gfold, probes, pid = identification.identification_split(ids, 4, seed=3)
    who = pf.identities_of(ids)
    assert "Loner" not in set(who[gallery])  # one image: no probe, left out
    assert all(ids[g].endswith("_0001.jpg") for g in gallery)
    assert len(set(gallery) & set(probes)) == 0 and len(probes) == 12 * 2
    assert (who[probes] == who[gallery[pid]]).all()
    assert np.bincount(gfold).tolist() == [3, 3, 3, 3]


def test_rank_ties_count_against_the_probe():
    g = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert identification.rank_of_true(np.array([[1.0, 0.0]]), g, np.array([0])).tolist() == [2]


# -- the pairs file -----------------------------------------------------------------
def test_pairs_roundtrip_in_lfw_format(tmp_path):
    p = pf.make_pairs({"Ann_Lee": 3, "Bob": 4, "Cy_D_E": 2}, 3, 2, seed=0)
    pf.write_pairs(tmp_path / "pairs.txt", p)
    lines = (tmp_path / "pairs.txt").read_text().splitlines()
    assert lines[0] == "3\t2" and len(lines) == 1 + 3 * 4
    assert len(lines[1].split("\t")) == 3 and len(lines[3].split("\t")) == 4
    q = pf.read_pairs(tmp_path / "pairs.txt")
    assert (q.n_folds, q.per_fold) == (3, 2)
    np.testing.assert_array_equal(q.path1, p.path1)
    np.testing.assert_array_equal(q.same, [True, True, False, False] * 3)
    np.testing.assert_array_equal(q.fold, np.repeat([0, 1, 2], 4))
    assert q.path1[0].startswith(q.name1[0] + "/" + q.name1[0] + "_0")


def test_reads_a_real_lfw_style_file(tmp_path):
    text = ("2\t1\nAbel_Pacheco\t1\t4\nAbdel_Madi_Shabneh\t1\tDean_Barker\t1\n"
            "Akhmed_Zakayev\t1\t3\nAbdulaziz_Kamilov\t1\tAnn_Veneman\t11\n")
    (tmp_path / "p.txt").write_text(text)
    p = pf.read_pairs(tmp_path / "p.txt")
    assert p.path1.tolist() == ["Abel_Pacheco/Abel_Pacheco_0001.jpg", "Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg",
                                "Akhmed_Zakayev/Akhmed_Zakayev_0001.jpg", "Abdulaziz_Kamilov/Abdulaziz_Kamilov_0001.jpg"]
    assert p.path2[3] == "Ann_Veneman/Ann_Veneman_0011.jpg"
    assert p.same.tolist() == [True, False, True, False] and p.fold.tolist() == [0, 0, 1, 1]
    assert len(p.images()) == 8


@pytest.mark.parametrize("text,message", [
    ("10\n", r":1: the first line must be 'FOLDS PAIRS_PER_CLASS'"),
    ("1 1\nA 1 2\n", r"2 lines; a header '1 1' announces 3"),
    ("1 1\nA 1 B 2\nA 1 B 2\n", r":2 \(fold 1, matched pair 1\): expected a matched pair"),
    ("1 1\nA 1 2\nA 1 2\n", r":3 \(fold 1, mismatched pair 1\): expected a mismatched pair"),
    ("1 1\nA 1 x\nA 1 B 2\n", r":2 .*'x' is not an image number"),
    ("1 1\nA 0 2\nA 1 B 2\n", r"image numbers start at 1"),
    ("1 1\nA 2 2\nA 1 B 2\n", r"one image with itself"),
    ("1 1\nA 1 2\nA 1 A 2\n", r"names one person twice"),
])
def test_malformed_pairs_files_name_the_line(tmp_path, text, message):
    (tmp_path / "p.txt").write_text(text)
    with pytest.raises(pf.PairsError, match=message):
        pf.read_pairs(tmp_path / "p.txt")


# -- the LFW reader -----------------------------------------------------------------
def test_lfw_manifest_ids_are_paths_relative_to_the_root(tmp_path):
    root = fabricated_lfw(tmp_path / "lfw")
    (tmp_path / "pairs.txt").write_text("2 1\nAnn_Lee 1 3\nAnn_Lee 2 Bob_Ray 1\nBob_Ray 1 2\nAnn_Lee 1 Cy 2\n")
    ds = data.get({"kind": "lfw", "root": str(root), "pairs": str(tmp_path / "pairs.txt")})
    m = ds.manifest()
    assert m.id.tolist() == ["Ann_Lee/Ann_Lee_0001.jpg", "Ann_Lee/Ann_Lee_0002.jpg", "Ann_Lee/Ann_Lee_0003.jpg",
                             "Bob_Ray/Bob_Ray_0001.jpg", "Bob_Ray/Bob_Ray_0002.jpg", "Cy/Cy_0002.jpg"]
    assert set(m.split) == {"pairs"} and m.label.tolist() == [0, 0, 0, 1, 1, 2]
    x = ds.images(m.id[:2].tolist())
    assert x.shape == (2, 250, 250, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert abs(x[0, 125, 125, 0] - 180 / 255) < 0.05


def test_lfw_missing_images_are_all_listed(tmp_path):
    root = fabricated_lfw(tmp_path / "lfw")
    (tmp_path / "pairs.txt").write_text("1 2\nAnn_Lee 1 7\nZed 1 2\nAnn_Lee 1 Bob_Ray 9\nCy 1 Bob_Ray 2\n")
    ds = data.get({"kind": "lfw", "root": str(root), "pairs": str(tmp_path / "pairs.txt")})
    with pytest.raises(pf.PairsError, match=r"4 image\(s\) missing") as e:
        ds.manifest()
    for p in ("Ann_Lee/Ann_Lee_0007.jpg", "Zed/Zed_0001.jpg", "Zed/Zed_0002.jpg", "Bob_Ray/Bob_Ray_0009.jpg"):
        assert p in str(e.value)
    assert "Cy/Cy_0001.jpg" not in str(e.value)


def test_digit_pairs_use_only_held_out_digits(tmp_path):
    ds = data.get({"kind": "digit_pairs", "folds": 4, "pairs_per_fold": 5, "seed": 2,
                       "pairs": str(tmp_path / "pairs.txt")})
    ds.write_pairs(tmp_path / "pairs.txt")
    p = pf.read_pairs(tmp_path / "pairs.txt")
    assert (p.n_folds, p.per_fold) == (4, 5)
    m = ds.manifest()
    train, pairs = m[m.split == "train"], m[m.split == "pairs"]
    assert sorted(set(train.label)) == [0, 1, 2, 3, 4, 5]
    assert set(pf.identities_of(pairs.id)) <= {"digit_6", "digit_7", "digit_8", "digit_9"}
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = ds.images(pairs.id.tolist())
    for i, img in zip(pairs.id, x):
        d = int(i.split("/")[0][-1])
        n = int(i[-8:-4])
        np.testing.assert_array_equal(img[..., 0], digits.images[np.flatnonzero(digits.target == d)[n - 1]] / 16)
    halves = [mf.part_of(train, j, 2) for j in (0, 1)]
    assert not set(halves[0].id) & set(halves[1].id)
    assert abs(len(halves[0]) - len(halves[1])) <= 6



# -- end to end ---------------------------------------------------------------------
def write_pairs_stores(root, ids, feats):
    from embmap import stores

    out = {}
    for name, f in feats.items():
        stores.write_embeddings(root / name / "pairs.zarr", f, ids, np.full(len(ids), -1), chunk_rows=50,
                                network=name, source="zarr", split="pairs")
        out[name] = str(root / name)
    return out


@pytest.mark.workflow
def test_bring_your_own_embeddings_open_set_end_to_end(tmp_path):
    import json

    import zarr

    ids, feats = face_embeddings(n_id=40, per_id=4, dims=(10, 8, 10), random=(2,))
    pairs = pairs_among(ids, n_folds=5, per_fold=10)
    pf.write_pairs(tmp_path / "pairs.txt", pairs)
    # stores in another order and with images no pair names: rows are matched by id
    extra = np.concatenate([ids, ["Nobody/Nobody_0001.jpg"]])
    perm = np.random.default_rng(0).permutation(len(extra))
    dirs = write_pairs_stores(tmp_path / "byo", extra[perm],
                              {k: np.vstack([f, np.ones((1, f.shape[1]), np.float32)])[perm]
                               for k, f in feats.items()})
    cfg = {"experiments": {"faces": {
        "task": "open_set", "dataset": {"kind": "embeddings", "pairs": str(tmp_path / "pairs.txt")},
        "mapping": {"alpha": 0.5}, "identification": {"folds": 4, "seed": 1},
        "networks": {k: {"source": "zarr", "path": d, "label": k.upper()} for k, d in dirs.items()}}}}
    cfg["experiments"]["faces"]["networks"]["net2"]["control"] = True
    cv = json.loads(json.dumps(cfg["experiments"]["faces"]))
    cv["mapping"]["alpha"] = [0.01, 0.5, 10.0]
    cfg["experiments"]["faces_cv"] = cv
    snakemake(tmp_path, cfg)
    f = pd.read_csv(tmp_path / "results" / "faces_cv" / "tables" / "open_set_folds.csv")
    assert set(f[f.method == "ridge"].alpha) <= {0.01, 0.5, 10.0}
    meta = json.loads((tmp_path / "results" / "faces_cv" / "tables" / "open_set.json").read_text())
    assert meta["alpha"] == [0.01, 0.5, 10.0] and meta["alpha_selection"].startswith("inner cross-validation")
    res = tmp_path / "results" / "faces"
    t = pd.read_csv(res / "tables" / "open_set.csv")
    assert list(t.columns) == verification.TABLE_COLUMNS
    ref, _ = verification.verification(feats, ids, pairs, alpha=0.5)
    np.testing.assert_allclose(t.accuracy_mean, ref.accuracy_mean, atol=1e-6)
    f = pd.read_csv(res / "tables" / "open_set_folds.csv")
    assert list(f.columns) == verification.FOLD_COLUMNS and set(f.fold) == {1, 2, 3, 4, 5}
    m = pd.read_csv(res / "tables" / "open_set_matrix.csv", index_col=0)
    assert list(m.index) == list(m.columns) == ["net0", "net1", "net2"]
    meta = json.loads((res / "tables" / "open_set.json").read_text())
    assert meta["folds"] == 5 and meta["n_pairs"] == 100 and meta["networks"]["net1"]["dim"] == 8
    ident = pd.read_csv(res / "tables" / "identification.csv")
    assert list(ident.columns) == identification.COLUMNS and (ident.folds == 4).all()
    for name in ("open_set", "identification"):
        for ext in ("png", "svg"):
            assert (res / "figures" / f"{name}_heatmap.{ext}").stat().st_size > 1000
    assert "NET0" in (res / "figures" / "open_set_heatmap.svg").read_text()
    assert not (res / "maps").exists() and not (res / "fit").exists()  # per-fold maps live in memory only
    assert zarr.open_group(str(tmp_path / "byo" / "net0" / "pairs.zarr"), mode="r").attrs["split"] == "pairs"
    r = snakemake(tmp_path, cfg, "-n")
    assert "Nothing to be done" in r.stdout + r.stderr


@pytest.mark.workflow
def test_a_pairs_file_naming_missing_embeddings_fails_listing_them(tmp_path):
    ids, feats = face_embeddings(n_id=10, per_id=3, dims=(4, 4))
    pairs = pairs_among(ids, n_folds=2, per_fold=5)
    pf.write_pairs(tmp_path / "pairs.txt", pairs)
    keep = ids != pairs.path1[0]
    dirs = write_pairs_stores(tmp_path / "byo", ids[keep], {k: f[keep] for k, f in feats.items()})
    cfg = {"experiments": {"faces": {
        "task": "open_set", "dataset": {"kind": "embeddings", "pairs": str(tmp_path / "pairs.txt")},
        "networks": {k: {"source": "zarr", "path": d} for k, d in dirs.items()}}}}
    r = snakemake(tmp_path, cfg, check=False)
    assert r.returncode != 0
    log = (tmp_path / "results" / "faces" / "logs" / "evaluate_open_set.log").read_text()
    assert "1 image(s) have no embedding" in log and pairs.path1[0] in log
    assert not (tmp_path / "results" / "faces" / "tables" / "open_set.csv").exists()


# -- config -------------------------------------------------------------------------
def _open_cfg(dataset, networks=None):
    return {"experiments": {"faces": {"task": "open_set", "dataset": dataset, "networks": networks or {
        "a": {"source": "zarr", "path": "a"}, "b": {"source": "zarr", "path": "b"}}}}}


def test_plan_targets_and_stores_of_an_open_set_experiment(tmp_path):
    from embmap import plan
    from embmap.config import check as check_config

    (tmp_path / "pairs.txt").write_text("2 1\nA 1 2\nA 1 B 1\nA 1 3\nA 2 B 1\n")
    cfg = _open_cfg({"kind": "embeddings", "pairs": "pairs.txt"})
    check_config(cfg)
    p = plan.Plan(cfg, tmp_path, check_paths=False)
    assert p.experiments["faces"].splits == ["pairs"]
    assert p.store("faces", "a", "pairs").endswith("a/pairs.zarr")
    assert p.pairs_file("faces") == str(tmp_path / "pairs.txt")
    t = p.targets()
    assert "results/faces/tables/open_set.csv" in t and "results/faces/figures/open_set_heatmap.svg" in t
    assert "results/faces/tables/identification.csv" in t and not any("closed_set" in x for x in t)
    demo = plan.Plan(_open_cfg({"kind": "digit_pairs"}), tmp_path, check_paths=False)
    assert demo.pairs_file("faces") == "results/faces/data/pairs.txt"
    assert demo.experiments["faces"].dataset["pairs"] == "results/faces/data/pairs.txt"


@pytest.mark.parametrize("cfg,message", [
    (_open_cfg({"kind": "embeddings"}), r"faces\.dataset\.pairs: open_set needs a pairs file"),
    (_open_cfg({"kind": "embeddings", "pairs": "nowhere.txt"}), r"faces\.dataset\.pairs: no pairs file at"),
    (_open_cfg({"kind": "digits"}), r"faces\.dataset\.kind: 'digits' serves task closed_set, not open_set: open_set needs pairs"),
    (_open_cfg({"kind": "lfw", "root": ".", "pairs": "p.txt"},
               {"a": {"source": "train", "train": {"architecture": "cnn"}}, "b": {"source": "zarr", "path": "b"}}),
     r"networks\.a\.source: 'train' trains the demo architectures on digits only; dataset kind 'lfw' has faces"),
    (_open_cfg({"kind": "digit_pairs"},
               {"a": {"source": "train", "train": {"architecture": "cnn", "part": [2, 2]}},
                "b": {"source": "zarr", "path": "b"}}), r"networks\.a\.train\.part: \[2, 2\]"),
])
def test_open_set_config_errors_name_the_key(tmp_path, cfg, message):
    from embmap import plan
    from embmap.config import ConfigError, check as check_config

    (tmp_path / "p.txt").write_text("")
    check_config(cfg)
    with pytest.raises(ConfigError, match=message):
        plan.Plan(cfg, tmp_path, check_paths="nowhere" in str(cfg))


def test_lfw_schema_needs_root_and_pairs_and_closed_set_refuses_it():
    from embmap import plan
    from embmap.config import ConfigError, check as check_config

    with pytest.raises(ConfigError, match=r"faces\.dataset: 'root' is a required property"):
        check_config(_open_cfg({"kind": "lfw", "pairs": "p.txt"}))
    with pytest.raises(ConfigError, match=r"dataset\.pairz: unknown key"):
        check_config(_open_cfg({"kind": "lfw", "root": "r", "pairz": "p.txt"}))
    cfg = _open_cfg({"kind": "lfw", "root": "r", "pairs": "p.txt"})
    cfg["experiments"]["faces"]["task"] = "closed_set"
    with pytest.raises(ConfigError, match=r"faces\.dataset\.kind: 'lfw' serves task open_set, not closed_set: its images come with verification pairs"):
        plan.Plan(cfg, ".", check_paths=False)


@pytest.mark.workflow
@pytest.mark.tensorflow
def test_digits_open_set_demo_writes_and_reads_back_an_lfw_pairs_file(tmp_path):
    """The default config's open-set experiment, shortened: two networks on disjoint halves of digits 0-5."""
    import yaml

    from embmap import stores

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    del cfg["experiments"]["digits"]
    exp = cfg["experiments"]["digits_open_set"]
    exp["networks"] = {k: exp["networks"][k] for k in ("sep_a", "sep_b")}
    for n in exp["networks"].values():
        n["train"]["epochs"] = 12
    snakemake(tmp_path, cfg)
    res = tmp_path / "results" / "digits_open_set"
    pairs = pf.read_pairs(res / "data" / "pairs.txt")
    assert (pairs.n_folds, pairs.per_fold) == (10, 30)
    assert (res / "data" / "pairs.txt").read_text().startswith("10\t30\n")
    s = stores.open_embeddings(res / "embeddings" / "sep_a" / "pairs.zarr")
    assert s.ids.tolist() == pairs.images() and s.attrs["l2_normalised"]
    np.testing.assert_allclose(np.linalg.norm(s.embeddings[:], axis=1), 1.0, atol=1e-5)
    train = json_of(res / "models" / "sep_a" / "training.json")
    assert train["n_classes"] == 6
    t = pd.read_csv(res / "tables" / "open_set.csv").set_index(["source", "target", "method"])
    assert t.loc[("sep_a", "sep_a", "native"), "accuracy_mean"] > 0.6
    assert t.loc[("sep_a", "sep_b", "ridge"), "accuracy_mean"] > t.loc[("sep_a", "sep_b", "identity"),
                                                                        "accuracy_mean"]
    assert (res / "figures" / "open_set_heatmap.png").exists()


def json_of(path):
    import json

    return json.loads(path.read_text())


@pytest.mark.parametrize("controls, warned", [([], ["net2"]), (["net2"], [])])
def test_a_network_at_chance_in_verification_is_a_warning_unless_it_is_a_control(tmp_path, caplog, controls, warned):
    """The open set's check of native accuracy (issue 26): a network whose own pairs verify at chance (here one
    that ignores identity, as after a preprocessing mistake) is a warning and a flag in open_set.json."""
    import json
    import logging

    from embmap import steps, stores
    from embmap.fit import methods as mt

    ids, feats = face_embeddings(n_id=30, per_id=4, dims=(10, 8, 10), random=(2,))
    p = pairs_among(ids, n_folds=4, per_fold=12)
    pf.write_pairs(tmp_path / "pairs.txt", p)
    paths = {}
    for k, f in feats.items():
        stores.write_embeddings(tmp_path / f"{k}.zarr", f, np.array(ids), -np.ones(len(ids), int), network=k,
                                split="pairs")
        paths[k] = str(tmp_path / f"{k}.zarr")
    out = {n: str(tmp_path / f"{n}") for n in ("t.csv", "f.csv", "m.csv", "meta.json")}
    with caplog.at_level(logging.WARNING, logger="embmap"):
        steps.evaluate_open_set(paths, str(tmp_path / "pairs.txt"), out["t.csv"], out["f.csv"], out["m.csv"],
                                out["meta.json"], mt.options(alpha=0.5), controls=controls)
    said = [r.getMessage().split("'")[1] for r in caplog.records if "its own verification accuracy" in r.getMessage()]
    assert said == warned
    meta = json.loads((tmp_path / "meta.json").read_text())["networks"]
    assert meta["net0"]["accuracy_check"] == "ok"
    assert meta["net2"]["accuracy_check"] == ("control" if controls else "near chance")
