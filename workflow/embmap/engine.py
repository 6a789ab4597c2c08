"""Where the fit stage's Dask graphs run: the scheduler of the config's ``engine`` block.

The pass (:func:`embmap.fit.gram.cross_products`) is a Dask task graph whose
results do not depend on where or in which order its tasks run (each sum is a
chain of tasks in a fixed order); :func:`scheduler` says where it runs:

- ``threads`` (default): Dask's threaded scheduler inside the job, on the
  job's ``threads``; nothing to set up, only ``dask`` needed;
- ``synchronous``: one task after another in the job's own thread (debugging,
  profiling);
- ``distributed``: an existing ``dask.distributed`` scheduler at ``address``
  (its workers must read the stores' paths: a shared file system);
- ``local``: a ``LocalCluster`` of ``workers`` processes x ``threads_per_worker``
  started for the job and closed after it;
- ``slurm``: a ``dask_jobqueue.SLURMCluster`` started for the job: ``workers``
  SLURM jobs of ``slurm.cores`` cores and ``slurm.memory`` each, with
  ``walltime``, ``account``, ``partition`` and ``job_extra_directives``; the
  workers run this Python (``sys.executable``, so the environment must be on a
  file system the nodes share) and must reach the scheduler, which runs in the
  Snakemake job. The job script is written to the log.

With ``engine.fits`` the fit jobs run their graphs (ridge's solves, the pairs methods' fits side by side) in
the same place (else on their own threads): :func:`running` makes a scheduler the job's *active* one, which :func:`active` returns to the code that
computes graphs (:func:`embmap.fit.ridge.fit_maps`, :func:`side_by_side`); without one, a graph runs on
:func:`in_job`. Every task computes on one BLAS thread wherever it runs, so the maps are the same to the bit.

``distributed`` and ``dask_jobqueue`` (the ``dask`` extra) are imported only for
the last three. The log names the dashboard address whenever there is one.
Every worker multiplies on one BLAS thread (:func:`one_blas_thread`), so that
no product depends on a thread count.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable

SCHEDULERS = ("threads", "synchronous", "distributed", "local", "slurm")
_ONE_THREAD: list = []  # the process-wide BLAS limit, once set in a worker process
_ACTIVE: list = []  # the job's active get (running): process-wide, so the threads of side_by_side see it too


def one_blas_thread() -> None:
    """Limit this process's BLAS to one thread, once (a Dask worker process's tasks call it first).

    OpenBLAS's thread count is process-wide; a single-threaded GEMM sums every
    entry in one order, so products are the same on any worker.
    """
    if not _ONE_THREAD:
        from threadpoolctl import threadpool_limits

        _ONE_THREAD.append(threadpool_limits(limits=1, user_api="blas"))


def in_job(threads: int | None = None) -> Callable:
    """``get(graph, keys)`` on Dask's threaded scheduler inside this process, every task on one BLAS thread: how
    the fit jobs run their graphs (:mod:`embmap.fit.ridge`).

    ``threads`` defaults to the BLAS threads allowed now (the job's ``threads``, which the step sets), so a
    caller inside a job needs to pass nothing; no result depends on it.
    """
    import dask

    threads = threads or _blas_threads()

    def get(graph, keys):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return dask.threaded.get(graph, keys, num_workers=max(1, int(threads)))

    return get


def active() -> Callable | None:
    """The ``get`` of the scheduler :func:`running` made active in this process, or None (no job set one; a
    task running on a Dask worker sees none either, and runs its own graphs on :func:`in_job`)."""
    return _ACTIVE[-1][0] if _ACTIVE else None


@contextlib.contextmanager
def running(engine: dict | None = None, threads: int = 1, log: Callable | None = None):
    """:func:`scheduler` made the active one for the block (what the fit jobs run their graphs on); yields its
    ``get``. An ``engine`` whose ``fits`` is false gives the job's own threads (the default scheduler)."""
    o = options(engine)
    chosen = o if o["fits"] else None
    with scheduler(chosen, threads, log) as get:
        width = max(1, int(threads)) if chosen is None or o["scheduler"] == "threads" else None
        _ACTIVE.append((get, width))
        try:
            yield get
        finally:
            _ACTIVE.pop()


def side_by_side(fn: Callable, items, threads: int | None = None):
    """``fn(item)`` for every item, in order, as Dask tasks run ``threads`` at a time (so at most that many
    results are held beyond the one being consumed): on the :func:`active` scheduler where a job set one (on a
    cluster, ``fn`` and the items travel to the workers), else on :func:`in_job`."""
    items = list(items)
    if _ACTIVE and threads is None:
        get, width = _ACTIVE[-1]
        width = width or _cluster_width(get)
    else:
        get = in_job(threads)
        width = max(1, int(threads or _blas_threads()))
    for i in range(0, len(items), width):
        graph = {("item", j): (fn, item) for j, item in enumerate(items[i:i + width])}
        yield from get(graph, list(graph))


def _cluster_width(get) -> int:
    """Tasks side by side on a cluster (or the synchronous scheduler): its threads over all workers, at least 1."""
    client = getattr(get, "client", None)
    if client is None:
        return 1
    return max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max([i.get("num_threads") or 1 for i in threadpool_info() if i.get("user_api") == "blas"] or [1])


def options(engine: dict | None = None, **keys) -> dict:
    """An ``engine`` block with every default of the schema filled in (``keys`` override it)."""
    from . import config

    return config.defaults("engine", {**(engine or {}), **keys})


@contextlib.contextmanager
def scheduler(engine: dict | None = None, threads: int = 1, log: Callable | None = None):
    """Yield ``get(graph, keys)``, which computes the keys of a Dask graph (a dict) where ``engine`` says.

    ``threads`` is the job's thread count (the threaded scheduler's pool).
    A cluster started here is closed when the block ends.
    """
    o = options(engine)
    say = log or (lambda *a: None)
    kind = o["scheduler"]
    if kind not in SCHEDULERS:
        raise ValueError(f"engine.scheduler: {kind!r}; use one of {', '.join(SCHEDULERS)}")
    if kind in ("threads", "synchronous"):
        import dask
        from threadpoolctl import threadpool_limits

        workers = max(1, int(threads)) if kind == "threads" else 1
        say(f"Dask {kind} scheduler in this job, {workers} thread(s), one BLAS thread each")
        with threadpool_limits(limits=1, user_api="blas"):
            if kind == "threads":
                yield lambda graph, keys: dask.threaded.get(graph, keys, num_workers=workers)
            else:
                yield lambda graph, keys: dask.get(graph, keys)
        return
    try:
        from distributed import Client
    except ImportError:
        raise ImportError(f"engine.scheduler {kind}: needs the distributed package (pip install "
                          "'embmap[dask]')") from None
    with contextlib.ExitStack() as stack:
        if kind == "distributed":
            if not o.get("address"):
                raise ValueError("engine.scheduler distributed: give engine.address, the scheduler's address "
                                 "(tcp://host:8786)")
            client = stack.enter_context(Client(o["address"], timeout=o["timeout"]))
        elif kind == "local":
            from distributed import LocalCluster

            cluster = stack.enter_context(LocalCluster(n_workers=o["workers"], threads_per_worker=o["threads_per_worker"],
                                                       processes=True, dashboard_address=":0"))
            client = stack.enter_context(Client(cluster))
        else:
            cluster = stack.enter_context(slurm_cluster(o))
            say("SLURM job script of each Dask worker:\n" + cluster.job_script())
            cluster.scale(jobs=o["workers"])
            client = stack.enter_context(Client(cluster))
            say(f"waiting for {o['workers']} SLURM worker job(s) (at most {o['timeout']} s)")
        client.wait_for_workers(n_workers=_expected_workers(o, kind, client), timeout=o["timeout"])
        say(f"Dask {kind} scheduler {client.scheduler.address}, {len(client.scheduler_info()['workers'])} "
            f"worker(s); dashboard {client.dashboard_link}")
        client.run(one_blas_thread)

        def get(graph, keys):
            return client.get(graph, keys, sync=True)

        get.client = client
        yield get


def _expected_workers(o: dict, kind: str, client) -> int:
    """Workers to wait for: those asked for (an existing scheduler: at least one)."""
    return 1 if kind == "distributed" else int(o["workers"]) * (int(o["slurm"]["processes"]) if kind == "slurm" else 1)


def slurm_cluster(o: dict):
    """The ``dask_jobqueue.SLURMCluster`` of an ``engine`` block's ``slurm`` keys (not yet scaled)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ImportError("engine.scheduler slurm: needs the dask-jobqueue package (pip install 'embmap[dask]')") from None
    s = o["slurm"]
    return SLURMCluster(cores=s["cores"], processes=s["processes"], memory=s["memory"], walltime=s["walltime"],
                        account=s["account"], queue=s["partition"], job_extra_directives=list(s["job_extra_directives"]),
                        python=sys.executable, local_directory=s["local_directory"], log_directory=s["log_directory"],
                        job_name="embmap-dask", scheduler_options={"dashboard_address": ":0"},
                        worker_extra_args=["--nthreads", str(s["cores"] // s["processes"])])
