"""Neighbourhood indices (mutual_knn, cknna) on the evaluation split: the chunked graphs and sparse kernels equal
brute-force n x n computations written here independently; chance levels are what unrelated spaces give."""

import numpy as np
import pandas as pd
import pytest

from embmap import plan, steps, stores
from embmap.evaluate import neighbours as nb
from embmap.evaluate import similarity as sim
from embmap.fit import gram
from helpers import latent_embeddings, synthetic_stores


# -- brute force: the whole n x n similarity matrix, as platonic-rep computes it ---------------------------
def brute_neighbours(x, k):
    """Each row's k most cosine-similar other rows (a stable sort: ties to the lower row), from n x n."""
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = z @ z.T
    np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1, kind="stable")[:, :k], s


def masks(idx):
    n = len(idx)
    m = np.zeros((n, n))
    m[np.arange(n)[:, None], idx] = 1.0
    return m


def brute_mutual(x, y, k):
    a, _ = brute_neighbours(x, k)
    b, _ = brute_neighbours(y, k)
    return float(np.mean((masks(a) * masks(b)).sum(axis=1) / k))


def hsic1(k, l):
    """Song et al. 2012, eq. 5, on dense n x n kernels with zero diagonals (not necessarily symmetric)."""
    n = len(k)
    one = np.ones(n)
    return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3))


def brute_cknna(x, y, k):
    """Huh et al. 2024: unbiased HSIC of the cosine kernels masked to the shared neighbours, normalised by each
    kernel masked to its own neighbours."""
    a, kx = brute_neighbours(x, k)
    b, ky = brute_neighbours(y, k)
    np.fill_diagonal(kx, 0.0)
    np.fill_diagonal(ky, 0.0)
    ma, mb = masks(a), masks(b)
    m = ma * mb
    return hsic1(m * kx, m * ky) / np.sqrt(hsic1(ma * kx, ma * kx) * hsic1(mb * ky, mb * ky))


@pytest.fixture(scope="module")
def spaces():
    _, xs = latent_embeddings(n=240, dims=(12, 9, 7), noise=0.8, seed=3)
    return {f"n{i}": x.astype(np.float64) for i, x in enumerate(xs)}


def value(t, a, b, index, column="value"):
    r = t[(t.source == a) & (t.target == b) & (t["index"] == index)]
    assert len(r) == 1
    return float(r[column].iloc[0])


# -- the graph ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 7, 240, None])
def test_chunked_neighbours_are_the_brute_force_neighbours_exactly(spaces, chunk):
    x = spaces["n0"]
    g = nb.knn(x, 10, chunk=chunk)
    want, s = brute_neighbours(x, 10)
    np.testing.assert_array_equal(g.index, want)  # the same neighbours, in the same order
    np.testing.assert_allclose(g.sim, np.take_along_axis(s, want, axis=1), rtol=0, atol=1e-14)
    assert not np.any(g.index == np.arange(len(x))[:, None])  # never itself


def test_ties_go_to_the_lower_row_as_a_stable_sort_of_the_whole_row():
    rng = np.random.default_rng(1)
    # rows of +-1 in 4 dimensions: 16 distinct rows, unit rows of +-0.5, every similarity -1, -0.5, 0, 0.5 or 1
    # exactly whatever order a BLAS sums in, so ties are exact in both computations (with inexact similarities
    # a BLAS may round the same dot product differently by where in the matrix it lies, and break a tie)
    x = rng.choice([-1.0, 1.0], size=(60, 4))
    for chunk in (1, 5, None):
        np.testing.assert_array_equal(nb.knn(x, 8, chunk=chunk).index, brute_neighbours(x, 8)[0])


def test_memory_is_one_chunk_of_rows_at_a_time():
    for n in (10, 5000, 10_000, 10**6):
        rows = nb.chunk_rows(n)
        assert rows >= 1 and (rows * n * 8 <= nb.CHUNK_BYTES or rows == 1)
    assert nb.chunk_rows(10_000) < 10_000  # the default cap's 10,000 x 10,000 is never formed at once


def test_too_few_samples_for_k_is_refused():
    with pytest.raises(ValueError, match="10 neighbours need at least 11 samples"):
        nb.knn(np.ones((10, 3)), 10)


# -- mutual k-NN -------------------------------------------------------------------------------------------
def test_mutual_knn_equals_the_brute_force_one(spaces):
    bl = gram.blocks_in_memory(spaces)
    t = sim.similarity(bl, ["mutual_knn"], eval_samples=spaces, knn_k=10)
    for a, b in (("n0", "n1"), ("n0", "n2"), ("n1", "n2")):
        # the chunked graphs are the brute-force ones exactly, so only the final mean's rounding differs
        assert value(t, a, b, "mutual_knn") == pytest.approx(brute_mutual(spaces[a], spaces[b], 10), rel=1e-15)
        assert value(t, a, b, "mutual_knn", "chance") == 10 / 239
    assert (t.n == 240).all() and t.parameters.iloc[0].startswith("k 10, cosine, self excluded")
    assert value(t, "n0", "n1", "mutual_knn") > 5 * 10 / 239  # spaces sharing a latent code share neighbours


def test_mutual_knn_is_one_for_spaces_equal_up_to_rotation_and_scale(spaces):
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    x = {"x": spaces["n0"], "y": 4.0 * spaces["n0"] @ q}
    t = sim.similarity(gram.blocks_in_memory(x), ["mutual_knn", "cknna"], eval_samples=x)
    assert value(t, "x", "y", "mutual_knn") == 1.0
    assert value(t, "x", "y", "cknna") == pytest.approx(1.0, abs=1e-12)


def test_mutual_knn_of_independent_spaces_is_its_chance_level():
    """For unrelated spaces N_B(i) is a uniformly random k-subset of the other n - 1 samples, so the overlap
    |N_A(i) & N_B(i)| is hypergeometric (n - 1 samples, k marked, k drawn): mean k^2 / (n - 1), variance
    k p (1 - p) (n - 1 - k) / (n - 2) with p = k / (n - 1). The index is the mean over n samples of overlap / k;
    the samples' overlaps are not quite independent (a pair neighbours both ways counts twice), which at most
    doubles the variance, so sd <= sqrt(2 var / n) / k. Its relative size is about 1 / k whatever n: a large k
    (50) makes the check tight. The seed is fixed; the tolerance is 4 such sd."""
    n, k, d = 3000, 50, 32
    rng = np.random.default_rng(0)
    x = {"x": rng.standard_normal((n, d)), "y": rng.standard_normal((n, d))}
    t = sim.similarity(gram.blocks_in_memory(x), ["mutual_knn"], eval_samples=x, knn_k=k, knn_permutations=20)
    p = k / (n - 1)
    sd = np.sqrt(2 * k * p * (1 - p) * (n - 1 - k) / (n - 2) / n) / k
    assert value(t, "x", "y", "mutual_knn", "chance") == pytest.approx(p, rel=1e-15)
    assert abs(value(t, "x", "y", "mutual_knn") - p) < 4 * sd  # sd is 0.04 p: within 16% of chance
    # the permutation null of the same two graphs: its 95th percentile lies above chance, by about 1.6 sd
    q95 = value(t, "x", "y", "mutual_knn", "chance_q95")
    assert p < q95 < p + 4 * sd
    null = nb.null("mutual", nb.knn(x["x"], k), nb.knn(x["y"], k), 20, 0)
    assert abs(null.mean() - p) < 4 * sd / np.sqrt(20)  # 20 nearly independent draws of mean p


# -- CKNNA -------------------------------------------------------------------------------------------------
def test_cknna_equals_a_brute_force_n_by_n_implementation(spaces):
    bl = gram.blocks_in_memory(spaces)
    t = sim.similarity(bl, ["cknna", "mutual_knn"], eval_samples=spaces, knn_k=8, knn_permutations=5)
    for a, b in (("n0", "n1"), ("n0", "n2"), ("n1", "n2")):
        assert value(t, a, b, "cknna") == pytest.approx(brute_cknna(spaces[a], spaces[b], 8), rel=1e-10)
    assert list(t["index"].unique()) == ["mutual_knn", "cknna"]  # the registry's order
    # the null is CKNNA against the other space's samples permuted: recomputed from scratch here
    a, b = spaces["n0"], spaces["n1"]
    perms = nb.permutations(len(a), 5, 0)
    want = np.array([brute_cknna(a, b[p], 8) for p in perms])
    np.testing.assert_allclose(nb.null("cknna", nb.knn(a, 8), nb.knn(b, 8), 5, 0), want, rtol=1e-10, atol=1e-14)
    assert value(t, "n0", "n1", "cknna", "chance") == pytest.approx(want.mean(), rel=1e-10)
    assert value(t, "n0", "n1", "cknna", "chance_q95") == pytest.approx(np.quantile(want, 0.95), rel=1e-10)
    assert value(t, "n0", "n1", "cknna") > value(t, "n0", "n1", "cknna", "chance_q95")


def test_cknna_of_independent_spaces_is_near_its_null():
    rng = np.random.default_rng(5)
    x = {"x": rng.standard_normal((1500, 24)), "y": rng.standard_normal((1500, 24))}
    t = sim.similarity(gram.blocks_in_memory(x), ["cknna"], eval_samples=x, knn_permutations=40)
    v, level, q95 = (value(t, "x", "y", "cknna", c) for c in ("value", "chance", "chance_q95"))
    null = nb.null("cknna", nb.knn(x["x"], 10), nb.knn(x["y"], 10), 40, 0)
    assert abs(v - level) < 4 * null.std() and level < q95 and abs(v) < 0.05


def test_cknna_needs_two_neighbours(spaces):
    with pytest.raises(ValueError, match="cknna needs k >= 2"):
        sim.similarity(gram.blocks_in_memory(spaces), ["cknna"], eval_samples=spaces, knn_k=1)


# -- the table and the evaluation split ----------------------------------------------------------------------
def test_indices_without_a_chance_level_leave_it_empty_and_say_which_split_is_missing(spaces):
    bl = gram.blocks_in_memory(spaces)
    t = sim.similarity(bl, ["cka", "mutual_knn"], eval_samples=spaces, knn_permutations=0)
    assert list(t.columns) == sim.COLUMNS
    assert t[t["index"] == "cka"].chance.isna().all() and t[t["index"] == "cka"].chance_q95.isna().all()
    assert t[t["index"] == "mutual_knn"].chance.notna().all() and t[t["index"] == "mutual_knn"].chance_q95.isna().all()
    with pytest.raises(ValueError, match="needs the evaluation split's embeddings"):
        sim.similarity(bl, ["mutual_knn"], samples=spaces)


def test_above_the_cap_the_evaluation_rows_are_a_seeded_draw():
    np.testing.assert_array_equal(nb.eval_rows(50, 50, 0), np.arange(50))
    r = nb.eval_rows(1000, 100, 3)
    assert len(np.unique(r)) == 100 and np.all(np.diff(r) > 0) and r[-1] < 1000
    np.testing.assert_array_equal(r, nb.eval_rows(1000, 100, 3))  # seeded
    assert not np.array_equal(r, nb.eval_rows(1000, 100, 4))
    assert not np.array_equal(r, sim.sample_rows(1000, 100))  # a random draw, not evenly spaced


def test_the_step_reads_the_evaluation_split_for_neighbourhoods_and_the_pass_for_debiased_cka(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dirs = synthetic_stores(tmp_path, names=("a", "b", "c"), dims=(5, 4, 6), random_control="c")
    c = {"experiments": {"byo": {"task": "closed_set", "dataset": {"kind": "embeddings"},
                                 "similarity": {"indices": ["mutual_knn", "cka_debiased"], "max_samples": 150,
                                                "knn_max_samples": 120, "seed": 7, "knn_permutations": 10},
                                 "networks": {k: {"source": "zarr", "path": d} for k, d in dirs.items()}}}}
    p = plan.Plan(c, tmp_path)

    class W:
        exp = "byo"

    inputs = p.inputs("similarity")(W)
    assert sorted(inputs["network_stores"]) == sorted(f"{d}/test.zarr" for d in dirs.values())
    job = p.job("similarity")(W)
    assert job["stores"] is None  # no index reads the fit split's samples: cka_debiased reads the pass's statistics
    assert job["eval_stores"] == {k: f"{d}/test.zarr" for k, d in dirs.items()}

    fit = {k: stores.open_embeddings(f"{d}/train.zarr").embeddings[:].astype(np.float64) for k, d in dirs.items()}
    ev = {k: stores.open_embeddings(f"{d}/test.zarr").embeddings[:].astype(np.float64) for k, d in dirs.items()}
    blocks = str(tmp_path / "blocks.zarr")
    stores.write_blocks(blocks, gram.blocks_in_memory(fit))
    table = tmp_path / "similarity.csv"
    steps.similarity(blocks, job["indices"], job["options"], job["ridge_maps"], job["stores"], str(table),
                     eval_stores=job["eval_stores"])
    t = pd.read_csv(table)
    assert list(t.columns) == sim.COLUMNS
    rows = nb.eval_rows(200, 120, 7)  # 200 evaluation images, 120 drawn by seed 7
    got = t[t["index"] == "mutual_knn"].set_index(["source", "target"])
    assert (got.n == 120).all() and (t[t["index"] == "cka_debiased"].n == len(fit["a"])).all()
    for a, b in (("a", "b"), ("a", "c"), ("b", "c")):
        assert got.loc[(a, b), "value"] == pytest.approx(brute_mutual(ev[a][rows], ev[b][rows], 10), rel=1e-7)
        assert got.loc[(a, b), "chance"] == pytest.approx(10 / 119, rel=1e-7)
    assert got.loc[("a", "b"), "value"] > got.loc[("a", "b"), "chance_q95"] > got.loc[("a", "b"), "chance"]
    assert t[t["index"] == "cka_debiased"].chance.isna().all()


def test_the_heatmap_draws_both_in_their_ranges_and_states_the_chance_level(spaces, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from embmap.evaluate import plots

    t = sim.similarity(gram.blocks_in_memory(spaces), ["cka", "mutual_knn", "cknna"], eval_samples=spaces,
                       knn_permutations=5)
    drawn = []
    monkeypatch.setattr(plt, "close", drawn.append)
    plots.similarity_heatmap(t, list(spaces), paths=[str(tmp_path / "h.png")])
    titles = [ax.get_title() for ax in drawn[0].axes if ax.get_title()]
    assert titles[0] == "linear CKA" or "chance" not in titles[0]
    assert titles[1] == f"mutual k-NN\nchance {10 / 239:.2g}" and titles[2].startswith("CKNNA\nchance ")
    assert (tmp_path / "h.png").stat().st_size > 0
