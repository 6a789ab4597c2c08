"""The ridge fits as Dask graphs: the same maps, bit for bit, on every scheduler, thread count and completion order."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from embmap import engine
from embmap.fit import gram, ridge
from embmap.fit.methods import ridge as ridge_method

from test_dask_pass import _shuffled_get

TILE = 512  # these tests cut the solves into tiles of 512 columns (embmap's own tiles are wider)
# wide enough that some targets are cut into several tiles and OpenBLAS's LAPACK threads (where the LU of
# the old fits differed in the last bits between one thread and two)
DIMS = (TILE + 90, 700, 130)


@pytest.fixture(scope="module", autouse=True)
def narrow_tiles():
    mp = pytest.MonkeyPatch()
    mp.setattr(ridge, "RHS_TILE", TILE)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def blocks():
    rng = np.random.default_rng(7)
    n = 1600
    z = rng.standard_normal((n, 60))
    arrays = {f"n{i}": (z @ rng.standard_normal((60, d)) + 0.5 * rng.standard_normal((n, d)) + 2.0)
              for i, d in enumerate(DIMS)}
    with engine.scheduler({"scheduler": "synchronous"}) as get:
        return gram.cross_products(arrays, folds=3, block_rows=128, sample_sizes=(400,), get=get)


ALPHAS = {"one alpha": 10.0, "alpha 0": 0.0, "a list (cross-validation)": [0.1, 10.0, 1000.0]}


def _maps(bl, alpha, get):
    return {(a, b): m for a in bl.names
            for b, m in ridge.fit_maps(bl, a, [t for t in bl.names if t != a], alpha, get=get).items()}


def _same(x, y):
    assert x.keys() == y.keys()
    for k in x:
        np.testing.assert_array_equal(x[k].weight, y[k].weight, err_msg=str(k))
        np.testing.assert_array_equal(x[k].intercept, y[k].intercept, err_msg=str(k))
        assert x[k].attrs == y[k].attrs, k


@pytest.fixture(scope="module")
def reference(blocks):
    with engine.scheduler({"scheduler": "synchronous"}) as get:
        return {name: _maps(blocks, alpha, get) for name, alpha in ALPHAS.items()}


@pytest.mark.parametrize("name", list(ALPHAS))
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_maps_are_the_same_bits_on_any_number_of_threads(blocks, reference, name, threads):
    with engine.scheduler({"scheduler": "threads"}, threads=threads) as get:
        _same(_maps(blocks, ALPHAS[name], get), reference[name])
    with threadpool_limits(threads):  # the default: the threads BLAS may use now, each task on one of them
        _same(_maps(blocks, ALPHAS[name], None), reference[name])


@pytest.mark.parametrize("name", list(ALPHAS))
def test_tasks_finishing_in_another_order_change_no_map(blocks, reference, name):
    with threadpool_limits(1):  # what every scheduler of embmap.engine does
        _same(_maps(blocks, ALPHAS[name], _shuffled_get(5)), reference[name])


def test_the_graph_solves_on_fixed_tiles_and_folds_side_by_side(blocks):
    graph, keys = ridge.fit_graph(blocks, "n0", ["n1", "n2"], [10.0])
    solves = sorted(k[1:] for k in graph if k[0] == "solve")
    assert solves == [("n1", 0), ("n1", TILE), ("n2", 0)]  # n1 has 700 columns: two tiles
    assert keys == {"n1": ("map", "n1"), "n2": ("map", "n2")}
    graph, _ = ridge.fit_graph(blocks, "n0", ["n1", "n2"], [0.1, 10.0])
    assert sorted(k for k in graph if k[0] == "cv-fold") == [("cv-fold", 0), ("cv-fold", 1), ("cv-fold", 2)]
    assert ("inverse",) not in graph and ("eigh",) in graph


def test_the_maps_solve_the_ridge_normal_equations(blocks, reference):
    """The inverse-and-tiles route against an independent solve of (S_AA + alpha I) M = S_AB."""
    for (a, b), m in reference["one alpha"].items():
        s_aa, s_ab = blocks.gram(a, a), blocks.gram(a, b)
        want = np.linalg.lstsq(s_aa + 10.0 * np.eye(len(s_aa)), s_ab, rcond=None)[0]
        np.testing.assert_allclose(m.weight, want, rtol=1e-8, atol=1e-10 * np.abs(want).max())
        np.testing.assert_allclose(m.intercept, blocks.means[b] - blocks.means[a] @ want, rtol=1e-8, atol=1e-8)


def test_cross_validation_on_tasks_equals_its_scores_fold_by_fold(blocks, reference):
    alphas = ALPHAS["a list (cross-validation)"]
    scores = ridge.cross_validate(blocks, "n1", ["n0", "n2"], alphas)
    for b in ("n0", "n2"):
        rss = sum(ridge._fold_terms(blocks, "n1", [b], alphas, k)[0][b] for k in range(3))
        tss = sum(ridge._fold_terms(blocks, "n1", [b], alphas, k)[1][b] for k in range(3))
        np.testing.assert_allclose(scores[b], 1 - rss / tss, rtol=1e-12)
        m = reference["a list (cross-validation)"][("n1", b)]
        assert m.attrs["alpha"] == ridge.choose_alpha(alphas, scores[b]) and m.attrs["cv_folds"] == 3


def test_an_indefinite_system_at_the_threshold_falls_back_to_the_eigenbasis():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 8))
    x[:, 7] = x[:, 6]  # a rank-deficient source: S_AA + alpha I is indefinite to rounding for a tiny alpha
    bl = gram.blocks_in_memory({"a": x, "b": rng.standard_normal((50, 3))})
    alpha = 1.5e-12 * float(np.trace(bl.gram("a", "a")))
    with pytest.raises(ridge._NotPositive):
        ridge._inverse(bl.gram("a", "a") - 1e-9 * np.eye(8), alpha)
    m = ridge.fit_maps(bl, "a", ["b"], alpha)["b"]
    assert np.all(np.isfinite(m.weight))


def test_the_sample_size_prefixes_fit_on_the_same_tasks(blocks):
    full = _maps(blocks, 10.0, None)
    first = blocks.subsets[400]
    with threadpool_limits(1):
        ref = ridge_method.like(first, list(first.names), {"alpha": 10.0}, full)
    with threadpool_limits(3):  # all sources in one graph, side by side
        _same(ridge_method.like(first, list(first.names), {"alpha": 10.0}, full), ref)
    _same(ref, {(a, b): m for a in first.names
                for b, m in ridge.fit_maps(first, a, [t for t in first.names if t != a], 10.0).items()})


@pytest.mark.slow
def test_a_local_cluster_of_two_single_threaded_workers_gives_the_same_maps(blocks, reference):
    with engine.scheduler({"scheduler": "local", "workers": 2, "threads_per_worker": 1}) as get:
        for name in ("one alpha", "a list (cross-validation)"):
            _same(_maps(blocks, ALPHAS[name], get), reference[name])


@pytest.mark.parametrize("method", ["lstsq", "procrustes"])
def test_the_pairs_methods_fit_side_by_side_and_give_the_same_bits_on_any_number_of_threads(blocks, method):
    from embmap.fit import methods

    with threadpool_limits(1):
        ref = dict(methods.fit_pairs(blocks, blocks.names, method))
    assert len(ref) == 6
    for threads in (2, 3):
        with threadpool_limits(threads):
            _same(dict(methods.fit_pairs(blocks, blocks.names, method)), ref)


def test_the_fit_job_writes_the_same_map_stores_on_one_thread_and_on_three(blocks, tmp_path):
    """The step end to end: blocks from a store, the graph on the job's threads, the stores written side by side."""
    from embmap import steps, stores
    from embmap.fit import methods

    path = str(tmp_path / "blocks.zarr")
    stores.write_blocks(path, blocks, split="train", stores={})
    got = {}
    for threads in (1, 3):
        out = tmp_path / f"maps{threads}"
        with threadpool_limits(threads):  # what the step's runner sets from the job's threads
            steps.fit_maps(path, "ridge", "n0", ["n1", "n2"], methods.options(alpha=[0.1, 10.0]), str(out),
                           experiment="x", fit_split="train", threads=threads)
        got[threads] = {b: stores.read_map(out / f"{b}.zarr") for b in ("n1", "n2")}
    for b in ("n1", "n2"):
        np.testing.assert_array_equal(got[1][b].weight, got[3][b].weight)
        np.testing.assert_array_equal(got[1][b].intercept, got[3][b].intercept)
        assert got[3][b].attrs["cv_folds"] == 3 and got[3][b].attrs["source"] == "n0"


def test_the_sample_space_route_of_the_prefixes_gives_the_same_bits_on_any_number_of_threads():
    rng = np.random.default_rng(2)
    rows = {k: rng.standard_normal((300, d)) for k, d in (("a", 700), ("b", 650), ("c", 20))}
    full = {(s, t): type("M", (), {"attrs": {"alpha": 3.0}})() for s in rows for t in rows if s != t}
    with threadpool_limits(1):
        ref = ridge_method.like_samples(rows, list(rows), {}, full)
    with threadpool_limits(3):
        _same(ridge_method.like_samples(rows, list(rows), {}, full), ref)


def _fit_jobs(path, out, engine_block, threads):
    """Both fit steps (ridge per source, procrustes for all pairs) on ``engine_block``: {(method, a, b): map}."""
    from embmap import steps, stores
    from embmap.fit import methods

    got = {}
    with threadpool_limits(threads):
        steps.fit_maps(path, "ridge", "n0", ["n1", "n2"], methods.options(alpha=[0.1, 10.0]), str(out / "ridge"),
                       experiment="x", fit_split="train", threads=threads, engine=engine_block)
        steps.fit_method_maps(path, "procrustes", ["n0", "n1", "n2"], methods.options(), str(out / "procrustes"),
                              experiment="x", fit_split="train", threads=threads, engine=engine_block)
    for b in ("n1", "n2"):
        got[("ridge", "n0", b)] = stores.read_map(out / "ridge" / f"{b}.zarr")
    for a in ("n0", "n1", "n2"):
        for b in {"n0", "n1", "n2"} - {a}:
            got[("procrustes", a, b)] = stores.read_map(out / "procrustes" / a / f"{b}.zarr")
    return got


def _same_stores(x, y):
    assert x.keys() == y.keys()
    for k in x:
        np.testing.assert_array_equal(x[k].weight, y[k].weight, err_msg=str(k))
        np.testing.assert_array_equal(x[k].intercept, y[k].intercept, err_msg=str(k))
        assert {a: v for a, v in x[k].attrs.items() if a != "created"} == {
            a: v for a, v in y[k].attrs.items() if a != "created"}, k


@pytest.fixture(scope="module")
def fit_reference(blocks, tmp_path_factory):
    from embmap import stores

    root = tmp_path_factory.mktemp("fit_engine")
    path = str(root / "blocks.zarr")
    stores.write_blocks(path, blocks, split="train", stores={})
    return path, root, _fit_jobs(path, root / "threads2", None, 2)


def test_the_fit_jobs_run_their_graphs_on_the_engine_and_the_maps_do_not_change(fit_reference, monkeypatch):
    """``engine`` reaches the fit jobs: their graphs run on the scheduler it names (here counted), with the same
    maps to the bit as on the job's threads; outside a job no scheduler is active."""
    path, root, ref = fit_reference
    calls = []
    real = engine.scheduler

    def counted(*a, **k):
        cm = real(*a, **k)

        class Wrap:
            def __enter__(self):
                get = cm.__enter__()
                return lambda graph, keys: calls.append(len(graph)) or get(graph, keys)

            def __exit__(self, *exc):
                return cm.__exit__(*exc)

        return Wrap()

    monkeypatch.setattr(engine, "scheduler", counted)
    got = _fit_jobs(path, root / "synchronous", {"scheduler": "synchronous", "fits": True}, 1)
    _same_stores(got, ref)
    # ridge's graph (a CV list: folds, eigh, maps) and procrustes' three pairs side by side, one task at a time
    assert len(calls) >= 1 + 3 and max(calls) > 3, calls
    assert engine.active() is None
    with engine.running({"scheduler": "synchronous"}, threads=2) as get:  # fits false: the job's own threads
        assert engine.active() is get and engine._ACTIVE[-1][1] == 2


def test_the_fit_jobs_give_the_same_maps_on_one_thread_and_three(fit_reference):
    path, root, ref = fit_reference
    for threads in (1, 3):
        _same_stores(_fit_jobs(path, root / f"threads{threads}", {"scheduler": "threads", "fits": True}, threads), ref)


@pytest.mark.slow
def test_the_fit_jobs_on_a_local_cluster_give_the_same_map_stores(fit_reference):
    path, root, ref = fit_reference
    got = _fit_jobs(path, root / "local", {"scheduler": "local", "workers": 2, "threads_per_worker": 1, "fits": True}, 1)
    _same_stores(got, ref)


@pytest.mark.parametrize("alpha", [10.0, [0.1, 10.0]])
def test_a_fit_graph_of_a_block_store_carries_no_block(blocks, fit_reference, alpha):
    """The tasks read S_AA and S_AB from the store where they run: what a distributed scheduler is sent is small
    (it had carried S_AA, 150 MB for a network of 4,320 features), and the maps are those of blocks in memory."""
    import cloudpickle

    from embmap import stores

    bl = stores.open_blocks(fit_reference[0])
    graph, keys = ridge.fit_graph(bl, "n0", ["n1", "n2"], ridge.alphas_of(alpha))
    s_aa_bytes = bl.gram("n0", "n0").nbytes
    assert len(cloudpickle.dumps(graph)) < s_aa_bytes / 20
    arrays = [v for v in graph.values() if isinstance(v, np.ndarray)]
    assert not arrays
    with engine.scheduler({"scheduler": "synchronous"}) as get:
        got = dict(zip(keys, get(graph, list(keys.values()))))
        want = ridge.fit_maps(blocks, "n0", ["n1", "n2"], alpha, get=get)
    for b in ("n1", "n2"):  # the maps of the same blocks in memory: the same bits
        np.testing.assert_array_equal(got[b].weight, want[b].weight)
        np.testing.assert_array_equal(got[b].intercept, want[b].intercept)
        # fit R2 sums the products of a block as laid out (a view into the pass's panels, or read contiguous)
        assert got[b].attrs.pop("fit_r2") == pytest.approx(want[b].attrs.pop("fit_r2"), rel=1e-14)
        assert got[b].attrs == want[b].attrs
