"""All-pairs ridge: the workflow's jobs against per-pair scikit-learn and the one-product floor.

    python benchmarks/ridge.py                       # the paper's ten dimensions / 4, 100,000 samples
    python benchmarks/ridge.py --n 20000 --scale 8   # smaller

Synthetic embeddings with shared latent structure are written to embedding
stores (chunked like the workflow's), then three things are timed:

  (a) the workflow's jobs from the stores: every shard of the pass, the reduce,
      one fit job per source network (all ordered pairs);
  (b) scikit-learn ``Ridge(alpha)`` fitted once per ordered pair on the same
      features in memory, float32 (what a user writes today);
  (c) the floor: one float32 product ``X.T @ X`` of the concatenated features
      of all networks, in memory (numpy hands it to BLAS syrk); and (c') the
      same product summed over 4096-row blocks, which BLAS may run faster;
  (p) the pass's loop alone (``embmap.fit.gram.cross_products`` over the
      opened stores), without the shard job's id checks and writing;
  (g) the machine's own GEMM rate: a square product of 4096 (float32, and
      float64 with ``--precision float64``), best of five.

Prints the times, the ratios a/c (issue 22's target <= 1.3) and b/a (target >= 4), and
``pass / GEMM``: the effective rate of (p) (n D^2 per second, the flops of the
symmetric product) over the GEMM rate of its precision (issue 22's target >= 0.8), with
reading and decompressing the stores included, and the same for the whole
shard job. ``--pools`` also times the fit
stage in fresh processes with and without scipy's BLAS used on its own threads
first (two busy OpenBLAS thread pools in one process, as the pass once had; the
fits call scipy's LAPACK only inside their tasks, on one thread).
The jobs run in this process, one after another, each with ``--threads``
BLAS threads; the stores sit in the page cache after being written.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine, paper_dims, synthetic_features, write_stores


def run_jobs(stores: dict, work: Path, alpha, shards: int, folds: int, precision: str, threads: int) -> dict:
    """The workflow's pass, reduce and fit jobs (embmap.steps), timed one by one."""
    import shutil

    from embmap import steps
    from embmap.fit import methods

    shutil.rmtree(work, ignore_errors=True)
    steps.set_threads(threads)
    t = {}
    partials = [str(work / f"shards/{j}.zarr") for j in range(shards)]
    start = time.perf_counter()
    for j, p in enumerate(partials):
        steps.cross_products_shard(stores, "train", shards=shards, folds=folds, precision=precision, shard=j,
                                   partial=p, threads=threads)
    t["pass"] = time.perf_counter() - start
    start = time.perf_counter()
    steps.cross_products(partials, str(work / "blocks.zarr"), "train", stores)
    t["reduce"] = time.perf_counter() - start
    start = time.perf_counter()
    names = list(stores)
    for a in names:
        steps.fit_maps(str(work / "blocks.zarr"), "ridge", a, [b for b in names if b != a],
                       methods.options(alpha=alpha), str(work / "maps" / a), experiment="benchmark",
                       fit_split="train", threads=threads)
    t["fit"] = time.perf_counter() - start
    t["total"] = t["pass"] + t["reduce"] + t["fit"]
    return t


def products(stores: dict, precision: str, threads: int) -> float:
    """Seconds of the pass's loop alone over the opened stores: what the shard job does between its checks and writes."""
    import zarr

    from embmap.fit import gram

    arrays = {k: zarr.open_array(f"{p}/embeddings", mode="r") for k, p in stores.items()}
    start = time.perf_counter()
    gram.cross_products(arrays, precision=precision, num_workers=threads)
    return time.perf_counter() - start


def best(f, repeat: int):
    """The fastest of ``repeat`` runs of ``f`` (a shared machine only ever slows a run down)."""
    runs = [f() for _ in range(repeat)]
    return min(runs, key=lambda r: r["total"] if isinstance(r, dict) else r)


def per_pair_sklearn(feats: dict, alpha: float) -> float:
    from sklearn.linear_model import Ridge

    start = time.perf_counter()
    for a, xa in feats.items():
        for b, xb in feats.items():
            if a != b:
                Ridge(alpha=alpha).fit(xa, xb)
    return time.perf_counter() - start


def floor(feats: dict) -> float:
    x = np.concatenate(list(feats.values()), axis=1)
    start = time.perf_counter()
    g = x.T @ x  # numpy hands X^T X to BLAS syrk
    elapsed = time.perf_counter() - start
    assert g.shape == (x.shape[1], x.shape[1])
    return elapsed


def floor_blocked(feats: dict, rows: int = 4096) -> float:
    """(c') the same product over row blocks of ``rows``, float32 sums: often faster per flop in BLAS."""
    x = np.concatenate(list(feats.values()), axis=1)
    start = time.perf_counter()
    g = np.zeros((x.shape[1], x.shape[1]), dtype=np.float32)
    for lo in range(0, len(x), rows):
        xb = x[lo : lo + rows]
        g += xb.T @ xb
    return time.perf_counter() - start


def gemm_rate(dtype, size: int = 4096, repeat: int = 5) -> float:
    """FLOP/s of the best of ``repeat`` square products of ``size`` in ``dtype`` (numpy's BLAS)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    a @ b  # warm up the thread pool
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2.0 * size**3 / best


def _timed(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


POOLS_CHILD = """
import sys, time, logging
sys.path.insert(0, {workflow!r})
logging.getLogger("embmap").setLevel(logging.WARNING)
import numpy as np
if {scipy_first}:
    from scipy.linalg import blas  # scipy's own OpenBLAS: a second thread pool in the process
    x = np.ones((2048, 2048), dtype=np.float32, order="F")
    blas.sgemm(1.0, x, x)
from embmap import steps
from embmap.fit import methods
steps.set_threads({threads})
names = {names!r}
start = time.perf_counter()
for a in names:
    steps.fit_maps({blocks!r}, "ridge", a, [b for b in names if b != a], methods.options(alpha={alpha!r}),
                   {out!r} + "/" + a, experiment="benchmark", fit_split="train")
print("FIT", time.perf_counter() - start)
"""


def fit_in_fresh_process(blocks: str, names: list, alpha, out: str, threads: int, scipy_first: bool) -> float:
    import subprocess
    import sys

    from common import ROOT

    code = POOLS_CHILD.format(workflow=str(ROOT / "workflow"), scipy_first=scipy_first, threads=threads, names=names,
                              blocks=blocks, alpha=alpha, out=out)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    return float(r.stdout.split("FIT")[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="samples (default 100,000)")
    ap.add_argument("--scale", type=float, default=4.0, help="divide the paper's dimensions by this (default 4)")
    ap.add_argument("--networks", type=int, default=10, help="networks (default the paper's ten)")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--precision", default="float32", choices=["float32", "float64"],
                    help="mapping.precision of the pass (default float32, the floor's arithmetic)")
    ap.add_argument("--shards", type=int, default=1, help="mapping.shards (run one after another)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cv", default="", help="also time the jobs with this alpha list, e.g. 0.1,1,10,100,1000")
    ap.add_argument("--folds", type=int, default=5, help="folds for --cv")
    ap.add_argument("--skip-sklearn", action="store_true", help="skip (b), the slowest part")
    ap.add_argument("--repeat", type=int, default=1, help="report the fastest of this many runs of (a) and (c)")
    ap.add_argument("--pools", action="store_true",
                    help="also time the fit stage with and without scipy's BLAS loaded first (fresh processes)")
    ap.add_argument("--workdir", default=None, help="folder for the stores (default a temporary one)")
    args = ap.parse_args(argv)
    logging.getLogger("embmap").setLevel(logging.WARNING)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    dims = paper_dims(args.scale, args.networks)
    print(f"machine: {machine()}")
    print(f"shape: {len(dims)} networks, dims {list(dims.values())} (D = {sum(dims.values())}), n = {args.n:,}, "
          f"alpha {args.alpha}, pass precision {args.precision}, {args.shards} shard(s), {args.threads} threads")
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        feats = synthetic_features(args.n, dims)
        stores = write_stores(work / "stores", feats)
        print(f"setup: features generated and written to stores in {time.perf_counter() - start:.1f} s")

        g32 = gemm_rate(np.float32)
        g = g32 if args.precision == "float32" else gemm_rate(np.float64)
        print(f"(g) GEMM rate of this machine, square 4096, best of 5: float32 {g32 / 1e9:.0f} GFLOP/s"
              + (f", float64 {g / 1e9:.0f} GFLOP/s" if args.precision == "float64" else ""))
        c = best(lambda: floor(feats), args.repeat)
        flops = args.n * sum(dims.values()) ** 2
        print(f"(c) floor, one float32 X.T @ X of all networks in memory: {c:8.2f} s  ({flops / c / 1e9:.0f} GFLOP/s)")
        c2 = best(lambda: floor_blocked(feats), args.repeat)
        print(f"(c') the same over 4096-row blocks in memory:              {c2:8.2f} s  ({flops / c2 / 1e9:.0f} GFLOP/s)")
        a = best(lambda: run_jobs(stores, work / "fit", args.alpha, args.shards, 1, args.precision, args.threads),
                 args.repeat)
        p = best(lambda: products(stores, args.precision, args.threads), args.repeat)
        print(f"(a) workflow jobs from the stores: {a['total']:8.2f} s  (pass {a['pass']:.2f}, reduce "
              f"{a['reduce']:.2f}, fit {a['fit']:.2f})")
        if args.cv:
            alphas = [float(v) for v in args.cv.split(",")]
            cv = run_jobs(stores, work / "fit_cv", alphas, args.shards, args.folds, args.precision, args.threads)
            print(f"(a, CV) with {len(alphas)} alphas and {args.folds} folds: {cv['total']:8.2f} s  (pass "
                  f"{cv['pass']:.2f}, reduce {cv['reduce']:.2f}, fit {cv['fit']:.2f})")
        print(f"a/c = {a['total'] / c:.2f}   (target <= 1.3);  a/c' = {a['total'] / c2:.2f};  pass alone "
              f"{flops / a['pass'] / 1e9:.0f} GFLOP/s")
        print(f"(p) the pass's products from the stores alone (embmap.fit.gram.cross_products: reading, "
              f"decompressing, shifting, GEMMs, float64 sums): {p:.2f} s; the shard job's remaining "
              f"{a['pass'] - p:.2f} s open the stores, compare the ids and write the partial")
        g_after = gemm_rate(np.dtype(args.precision).type)
        print(f"(g) again after the pass: {g_after / 1e9:.0f} GFLOP/s ({args.precision}); the ratios below take the "
              f"faster of the two (a shared machine's clock moves between runs)")
        g = max(g, g_after)
        print(f"pass / GEMM = {flops / p / g:.2f}   (target >= 0.8; {args.precision} products against "
              f"{args.precision} GEMM, reading and decompressing the stores included); the whole shard job "
              f"{flops / a['pass'] / g:.2f}")
        if args.pools:
            fit_dir = str(work / "fit" / "blocks.zarr")
            names = list(stores)
            both = min(fit_in_fresh_process(fit_dir, names, args.alpha, str(work / "pools_a"), args.threads, True)
                       for _ in range(max(2, args.repeat)))
            one = min(fit_in_fresh_process(fit_dir, names, args.alpha, str(work / "pools_b"), args.threads, False)
                      for _ in range(max(2, args.repeat)))
            print(f"fit stage, fresh process: with scipy's BLAS used on its own threads first {both:.2f} s; "
                  f"without (the fits load scipy's LAPACK themselves, on one thread per task) {one:.2f} s; "
                  f"ratio {both / one:.2f}")
        if not args.skip_sklearn:
            b = per_pair_sklearn(feats, args.alpha)
            print(f"(b) sklearn Ridge per ordered pair ({len(dims) * (len(dims) - 1)} fits), float32 in memory: "
                  f"{b:8.2f} s")
            print(f"b/a = {b / a['total']:.2f}   (target >= 4)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
