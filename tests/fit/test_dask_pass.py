"""The pass as a Dask graph: the same blocks, bit for bit, on every scheduler, thread count and completion order."""

import functools
import time

import numpy as np
import pytest

from embmap import engine
from embmap.fit import gram


def _arrays(seed=3, n=900, dims=(40, 25, 9)):
    rng = np.random.default_rng(seed)
    return {f"n{i}": (rng.standard_normal((n, d)) * 2 + 4).astype(np.float32) for i, d in enumerate(dims)}


def _everything(bl):
    """Every array of a pass's result: means and blocks of the whole, each fold and each prefix."""
    out = {}
    sets = [("all", bl)] + [(f"fold{k}", f) for k, f in enumerate(bl.folds)] + \
           [(f"first{m}", b) for m, b in sorted(bl.subsets.items())]
    for tag, b in sets:
        out[(tag, "n")] = np.array(b.n)
        for a in b.names if b.n else []:
            out[(tag, "mean", a)] = b.means[a]
            for c in b.names:
                out[(tag, a, c)] = b.gram(a, c)
    return out


def _same(x, y):
    assert x.keys() == y.keys()
    for k in x:
        np.testing.assert_array_equal(x[k], y[k], err_msg=str(k))


KW = dict(folds=2, block_rows=64, sample_sizes=(100, 333), precision="float32")


@pytest.fixture(scope="module")
def reference():
    with engine.scheduler({"scheduler": "synchronous"}) as get:
        return _everything(gram.cross_products(_arrays(), get=get, **KW))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threads_give_the_synchronous_schedulers_blocks_bit_for_bit(reference, threads):
    with engine.scheduler(None, threads=threads) as get:
        _same(_everything(gram.cross_products(_arrays(), get=get, **KW)), reference)
    _same(_everything(gram.cross_products(_arrays(), num_workers=threads, **KW)), reference)


def _delayed(fn, seconds, *args):
    time.sleep(seconds)
    return fn(*args)


def _shuffled_get(seed, threads=3):
    """A threaded scheduler whose tasks sleep a seeded random while first: tasks finish in another order."""
    import dask

    rng = np.random.default_rng(seed)

    def get(graph, keys):
        slowed = {}
        for k, v in graph.items():
            if isinstance(v, tuple) and v and callable(v[0]):
                v = (functools.partial(_delayed, v[0], float(rng.choice([0.0, 0.0, 0.002, 0.01]))),) + v[1:]
            slowed[k] = v
        return dask.threaded.get(slowed, keys, num_workers=threads)

    return get


@pytest.mark.parametrize("seed", [0, 1])
def test_tasks_finishing_in_another_order_change_nothing(reference, seed):
    _same(_everything(gram.cross_products(_arrays(), get=_shuffled_get(seed), **KW)), reference)


def test_the_graph_keeps_at_most_three_pieces_read_ahead():
    arrays = _arrays()
    lay = gram.pass_layout(arrays, 1, 1, 64)
    graph, _ = gram.pass_graph(arrays, list(arrays), [a.shape[1] for a in arrays.values()], lay, 0, "float64")
    reads = {k[-1]: v for k, v in graph.items() if k[1] == "read"}
    assert len(reads) == lay.n_blocks > 3
    for i, task in reads.items():  # read i waits for piece i - 2 to be multiplied
        assert task[-1] == (None if i < 2 else (graph and next(iter(graph))[0], "piece-done", i - 2))


def test_shards_and_their_reduce_are_unchanged_by_the_engine():
    kw = {**KW, "precision": "float64"}
    ref = _everything(gram.cross_products(_arrays(), **kw))
    parts = []
    for j in range(3):
        with engine.scheduler({"scheduler": "threads"}, threads=2) as get:
            parts.append(gram.cross_products(_arrays(), shard=j, shards=3, get=get, **kw))
    got = _everything(gram.reduce(parts))
    assert got.keys() == ref.keys()
    for k in ref:  # shards pool from their own means: equal to rounding, not bit for bit
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-9, atol=1e-9)


def test_an_unknown_scheduler_or_a_missing_address_is_named():
    with pytest.raises(Exception, match="scheduler"):
        with engine.scheduler({"scheduler": "mpi"}):
            pass
    with pytest.raises(ValueError, match="engine.address"):
        with engine.scheduler({"scheduler": "distributed"}):
            pass


@pytest.mark.slow
def test_a_local_cluster_of_two_single_threaded_workers_gives_the_same_blocks(reference):
    logged = []
    with engine.scheduler({"scheduler": "local", "workers": 2, "threads_per_worker": 1}, log=logged.append) as get:
        _same(_everything(gram.cross_products(_arrays(), get=get, **KW)), reference)
    assert any("dashboard http" in line for line in logged), logged


def test_the_engine_block_is_validated_and_reaches_the_shard_jobs(tmp_path):
    from embmap import plan
    from helpers import synthetic_stores

    dirs = synthetic_stores(tmp_path, names=("a", "b"), dims=(5, 4))
    exp = {"task": "closed_set", "dataset": {"kind": "embeddings"},
           "networks": {k: {"source": "zarr", "path": d} for k, d in dirs.items()}}
    with pytest.raises(Exception, match="engine.scheduler"):
        plan.Plan({"engine": {"scheduler": "mpi"}, "experiments": {"x": exp}}, tmp_path)
    with pytest.raises(Exception, match="engine.slurm"):
        plan.Plan({"engine": {"slurm": {"gpus": 1}}, "experiments": {"x": exp}}, tmp_path)
    p = plan.Plan({"engine": {"scheduler": "local", "workers": 3}, "experiments": {"x": exp}}, tmp_path)

    class W:
        exp, shard = "x", "0"

    job = p.job("cross_products_shard")(W)
    assert job["engine"]["scheduler"] == "local" and job["engine"]["workers"] == 3
    assert job["engine"]["threads_per_worker"] == 1  # the schema's default, filled in


def test_the_docs_example_engine_block_is_valid_and_gives_the_sbatch_script_it_describes(tmp_path):
    """docs/scale-and-cluster.md's example: the schema takes it, the shard jobs get it, and dask-jobqueue writes the
    worker jobs' script with its partition, account, cores, memory and walltime (no job is submitted)."""
    import re

    import yaml

    from embmap import plan
    from helpers import ROOT, synthetic_stores

    text = (ROOT / "docs" / "scale-and-cluster.md").read_text()
    examples = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    blocks = [b["engine"] for b in examples if isinstance(b, dict) and "engine" in b]
    assert blocks, "the docs show no engine block"
    dirs = synthetic_stores(tmp_path, names=("a", "b"), dims=(5, 4))
    exp = {"task": "closed_set", "dataset": {"kind": "embeddings"},
           "networks": {k: {"source": "zarr", "path": d} for k, d in dirs.items()}}

    class W:
        exp, shard = "x", "0"

    for block in blocks:
        job = plan.Plan({"engine": block, "experiments": {"x": exp}}, tmp_path).job("cross_products_shard")(W)
        o = job["engine"]
        assert {k: o[k] for k in block if k != "slurm"} == {k: v for k, v in block.items() if k != "slurm"}
        if o["scheduler"] != "slurm":
            continue
        cluster = engine.slurm_cluster(o)
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
        s = block["slurm"]
        directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
        assert f"#SBATCH -p {s['partition']}" in directives and f"#SBATCH -A {s['account']}" in directives
        assert f"#SBATCH --cpus-per-task={s['cores']}" in directives
        assert f"#SBATCH -t {s['walltime']}" in directives
        assert any(line.startswith("#SBATCH --mem=") for line in directives)
        assert f"--nthreads {s['cores']}" in script and "dask" in script


def test_a_pass_over_zarr_stores_reads_into_the_piece_and_equals_the_pass_over_the_arrays(tmp_path):
    """Zarr decodes each chunk straight into the piece's columns (chunks that straddle the row blocks, a float64
    store sliced the ordinary way beside them): the same rows, and the same blocks bit for bit, as in memory."""
    import zarr

    arrays = _arrays(seed=5, n=700)
    arrays["n3"] = np.random.default_rng(2).standard_normal((700, 6))  # float64: converted on the way in
    stored = {}
    for (k, x), chunk in zip(arrays.items(), (100, 96, 256, 64)):
        z = zarr.create_array(str(tmp_path / f"{k}.zarr"), shape=x.shape, chunks=(chunk, x.shape[1]), dtype=x.dtype)
        z[:] = x
        stored[k] = z
    names, dims = list(arrays), [x.shape[1] for x in arrays.values()]
    for lo, hi in ((0, 128), (130, 333), (640, 700)):
        np.testing.assert_array_equal(gram._read_piece(stored, names, dims, lo, hi, None),
                                      np.concatenate([x[lo:hi].astype(np.float32) for x in arrays.values()], axis=1))
    kw = dict(folds=2, block_rows=128, sample_sizes=(300,), precision="float32")
    mem = {k: x.astype(np.float32) for k, x in arrays.items()}
    with engine.scheduler({"scheduler": "threads"}, threads=2) as get:
        a, b = gram.cross_products(stored, get=get, **kw), gram.cross_products(mem, get=get, **kw)
    ea, eb = _everything(a), _everything(b)
    assert ea.keys() == eb.keys()
    for key in ea:
        np.testing.assert_array_equal(ea[key], eb[key], err_msg=str(key))
