"""Cost of the analyses beyond the paper against the pass and the ridge fit stage (prints figures; not a test).

    python benchmarks/analyses.py [--n 100000] [--scale 4] [--sizes 256,1024,4096,16384]

At the paper's dimensions / 4 (ten networks, D = 5,352) over n synthetic samples in stores, one run times:

- (p)  the pass: ``gram.cross_products`` over the stores (one shard, float32 products);
- (p') the prefix blocks of the sample sizes (n_1 < n_2 < ...): here computed by
  ``evaluate.sample_efficiency.prefix_blocks`` from the stores' first rows, the fallback for block stores
  whose pass kept no ``subsets``: sum(n_i) D^2 / 2 multiply-adds, against n D^2 / 2 for the pass;
- (f)  the ridge fit stage: ``fit.methods.fit_maps(..., "ridge")`` for every source (one ``eigh`` each);
- (f') what procrustes and the sample sizes add to it: procrustes for every pair, and ridge and
  procrustes on every size's blocks;
- (s)  every similarity index for every pair.

Targets (issue 14): (p') / (p) < 0.10 and ((f) + (f')) / (f) < 2.
"""

import argparse
import tempfile
import time

import numpy as np

from common import machine, paper_dims, synthetic_features, write_stores

from embmap import stores  # noqa: E402
from embmap.evaluate import sample_efficiency as se  # noqa: E402
from embmap.evaluate import similarity as sim  # noqa: E402
from embmap.fit import gram, methods  # noqa: E402


def fit_stage(bl, method, **kw):
    t = time.perf_counter()
    for a in bl.names:
        methods.fit_maps(bl, a, [b for b in bl.names if b != a], method, **kw)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--sizes", default="256,1024,4096,16384")
    a = ap.parse_args()
    sizes = [int(v) for v in a.sizes.split(",")]
    print(machine())
    dims = paper_dims(a.scale)
    print(f"{len(dims)} networks, D = {sum(dims.values())}, n = {a.n}, sizes {sizes}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_stores(tmp, synthetic_features(a.n, dims))
        opened = stores.open_matched(paths)
        arrays = {k: s.embeddings for k, s in opened.items()}
        t = time.perf_counter()
        bl = gram.cross_products(arrays, precision="float32", num_workers=2)
        p = time.perf_counter() - t
        t = time.perf_counter()
        subsets = se.prefix_blocks(bl, paths, sizes)
        pp = time.perf_counter() - t
    f = fit_stage(bl, "ridge", alpha=1.0)
    fp = fit_stage(bl, "procrustes")
    t = time.perf_counter()
    for sub in subsets.values():
        for src in sub.names:  # as the sample_efficiency job fits them: one solve per source
            methods.ridge_solve_maps(sub, src, [b for b in sub.names if b != src], 1.0)
    fr = time.perf_counter() - t
    fpp = sum(fit_stage(sub, "procrustes") for sub in subsets.values())
    t = time.perf_counter()
    table = sim.similarity(bl, [i for i in sim.INDICES if i != "r2"])
    s = time.perf_counter() - t
    print(f"(p)  pass:                                {p:7.1f} s")
    print(f"(p') prefix blocks of {len(sizes)} sizes (fallback): {pp:7.1f} s   (p')/(p) = {pp / p:.3f}  "
          f"[arithmetic {sum(sizes) / a.n:.3f}]")
    print(f"(f)  ridge fit, all sources:              {f:7.1f} s")
    print(f"     procrustes, all pairs:               {fp:7.1f} s   ({fp / f:.2f} x (f))")
    print(f"     ridge on {len(sizes)} sizes (one solve each):  {fr:7.1f} s   ({fr / f:.2f} x (f))")
    print(f"     procrustes on {len(sizes)} sizes:           {fpp:7.1f} s   ({fpp / f:.2f} x (f))")
    print(f"     (f) + all of these = {(f + fp + fr + fpp) / f:.2f} x (f); ridge and its sizes alone "
          f"{(f + fr) / f:.2f} x (f)")
    print(f"(s)  similarity, {len(table)} rows:              {s:7.1f} s")


if __name__ == "__main__":
    main()
