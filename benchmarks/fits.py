"""The ridge fits as a Dask graph against the threaded LAPACK solve they replaced (prints figures; not a test).

    python benchmarks/fits.py                    # the paper's ten dimensions / 4, every source network
    python benchmarks/fits.py --scale 2 --cv     # larger, and the cross-validation route too

Blocks of synthetic features are made in memory (their values do not change a
solve's cost). For every source network, alternated and best of ``--repeat``:

  (old) one alpha: ``numpy.linalg.solve(S_AA + alpha I, [S_AB ...])`` on
        ``--threads`` BLAS threads (an LU; its bits depend on the thread count),
        then each target's map and fit R^2, as the fit did before;
  (new) :func:`embmap.fit.ridge.fit_maps`: a Cholesky task, solve tasks on
        fixed column tiles, one map task per target, on Dask's threaded
        scheduler with ``--threads`` threads of one BLAS thread each (the same
        bits on any thread count);
  and with ``--cv`` a five-alpha list (an ``eigh`` per fold and one of the
  whole split): the same graph run one task after another on a threaded BLAS
  (the old route) against side by side on one BLAS thread each (new).

Prints the sums over sources and new/old (the issue's target: <= 1.05), and
whether the new maps are the same bits on 1 and on ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from common import machine, paper_dims, synthetic_features
from threadpoolctl import threadpool_limits

from embmap.fit import gram, ridge  # noqa: E402


def old_one_alpha(bl, a: str, targets: list[str], alpha: float) -> dict:
    """The fit this graph replaced (embmap before the fits were Dask graphs): one LU solve for every target on
    the threaded LAPACK, then each target's map with its fit R^2, as ``fit_maps`` made them."""
    s_aa = bl.gram(a, a)
    cols = [bl.gram(a, b) for b in targets]
    m_all = np.linalg.solve(s_aa + alpha * np.eye(len(s_aa)), np.concatenate(cols, axis=1))
    out, start = {}, 0
    for b, p in zip(targets, cols):
        m = m_all[:, start:start + p.shape[1]]
        start += p.shape[1]
        explained = float(np.sum(m * p)) + alpha * float(np.sum(m * m))
        out[b] = ridge._ridge_map(bl, a, b, np.ascontiguousarray(m), bl.means[a], explained, {"alpha": alpha})
    return out


def best(f, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        out.append(time.perf_counter() - start)
    return min(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=4.0, help="divide the paper's dimensions by this (default 4)")
    ap.add_argument("--networks", type=int, default=10)
    ap.add_argument("--n", type=int, default=0, help="samples for the blocks (default 1.2 x the total dimension)")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cv", action="store_true", help="also the cross-validation route (five alphas, five folds)")
    a = ap.parse_args(argv)
    print(machine())
    print(f"load average before: {os.getloadavg()}")
    dims = paper_dims(a.scale, a.networks)
    n = a.n or int(1.2 * sum(dims.values()))
    print(f"{len(dims)} networks, {sum(dims.values())} features in all ({min(dims.values())}-{max(dims.values())}), "
          f"blocks of {n} samples, {a.threads} threads")
    feats = {k: v.astype(np.float64) for k, v in synthetic_features(n, dims).items()}
    with threadpool_limits(a.threads):
        bl = gram.cross_products(feats, folds=5 if a.cv else 1)
        cached = {(s, t): bl.gram(s, t) for s in dims for t in dims}  # the solves, not the reads, are timed
        bl.read = lambda s, t: cached[(s, t)]
        for f in bl.folds:
            fc = {(s, t): f.gram(s, t) for s in dims for t in dims}
            f.read = lambda s, t, fc=fc: fc[(s, t)]
    names = list(dims)
    totals = {"old": 0.0, "new": 0.0, "old cv": 0.0, "new cv": 0.0}
    same = True
    alphas = [0.01, 0.1, 1.0, 10.0, 100.0]
    for s in names:
        targets = [t for t in names if t != s]
        for _ in range(a.repeat):  # alternated: old, new, old, new ...
            with threadpool_limits(a.threads):
                t_old = best(lambda: old_one_alpha(bl, s, targets, a.alpha), 1)
                t_new = best(lambda: ridge.fit_maps(bl, s, targets, a.alpha), 1)
            totals.setdefault(("old", s), []).append(t_old)
            totals.setdefault(("new", s), []).append(t_new)
        totals["old"] += min(totals[("old", s)])
        totals["new"] += min(totals[("new", s)])
        if a.cv:
            import dask

            o, w = [], []
            for _ in range(a.repeat):
                with threadpool_limits(a.threads):
                    o.append(best(lambda: ridge.fit_maps(bl, s, targets, alphas, get=dask.get), 1))
                    w.append(best(lambda: ridge.fit_maps(bl, s, targets, alphas), 1))
            totals["old cv"] += min(o)
            totals["new cv"] += min(w)
        with threadpool_limits(1):
            one = ridge.fit_maps(bl, s, targets, a.alpha)
        with threadpool_limits(a.threads):
            many = ridge.fit_maps(bl, s, targets, a.alpha)
        same &= all(np.array_equal(one[t].weight, many[t].weight) for t in targets)
        print(f"  {s:>22} d={dims[s]:>5}: old {min(totals[('old', s)]):.3f} s, new {min(totals[('new', s)]):.3f} s")
    print(f"one alpha, all sources: old (LU, threaded LAPACK) {totals['old']:.2f} s, new (Dask graph) "
          f"{totals['new']:.2f} s, new/old = {totals['new'] / totals['old']:.3f}")
    if a.cv:
        print(f"cross-validation, all sources: old (one task after another, threaded LAPACK) {totals['old cv']:.2f} s,"
              f" new (side by side) {totals['new cv']:.2f} s, new/old = {totals['new cv'] / totals['old cv']:.3f}")
    print(f"new maps the same bits on 1 and {a.threads} threads: {same}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
