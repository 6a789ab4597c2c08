"""Cost of the analyses beyond the paper against the pass and the ridge fit stage (prints figures; not a test).

    python benchmarks/analyses.py [--n 100000] [--scale 4] [--sizes 256,1024,4096,16384]

At the paper's dimensions / 4 (ten networks, D = 5,352) over n synthetic samples in stores, one run times:

- (p)  the pass: the shard job (``steps.cross_products_shard``) over the stores, one shard, float32 products,
  writing its partial;
- (p') the same pass keeping the prefix blocks of the sample sizes (n_1 < n_2 < ...): the pieces the sizes
  cut the row blocks into, one copy of the blocks at each size, and its writing (``subsets/n/``);
- (f)  the ridge fit stage: ``fit.ridge.fit_maps`` for every source (one linear solve each);
- (f') what procrustes and the sample sizes add to it: procrustes for every pair, and ridge and
  procrustes on every size's blocks;
- (s)  every similarity index for every pair.

Targets (issue 14): (p') / (p) < 1.10 and ((f) + (f')) / (f) < 2.
"""

import argparse
import tempfile
import time


from common import machine, paper_dims, synthetic_features, write_stores

from embmap import steps, stores  # noqa: E402
from embmap.evaluate import similarity as sim  # noqa: E402
from embmap.fit import methods, ridge  # noqa: E402


def fit_stage(bl, method, **kw):
    t = time.perf_counter()
    if method == "ridge":
        for a in bl.names:
            ridge.fit_maps(bl, a, [b for b in bl.names if b != a], kw.get("alpha", 1.0))
    else:
        for _ in methods.fit_pairs(bl, list(bl.names), method, **kw):  # as the fit_method_maps job does
            pass
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
        steps.set_threads(2)

        def shard(out, with_sizes):
            t = time.perf_counter()
            steps.cross_products_shard(paths, "train", 1, 1, "float32", 0, f"{tmp}/{out}", threads=2,
                                       sample_sizes=sizes if with_sizes else None)
            return time.perf_counter() - t

        p = min(shard(f"plain{i}.zarr", False) for i in range(2))
        pp = min(shard(f"sizes{i}.zarr", True) for i in range(2))
        bl = stores.open_blocks(f"{tmp}/sizes0.zarr")
        subsets = {m: bl.subsets[m] for m in sizes}
        f = fit_stage(bl, "ridge", alpha=1.0)
        fp = fit_stage(bl, "procrustes")
        t = time.perf_counter()
        for sub in subsets.values():
            for src in sub.names:  # as the sample_efficiency job fits them: one solve per source
                ridge.fit_maps(sub, src, [b for b in sub.names if b != src], 1.0)
        fr = time.perf_counter() - t
        fpp = sum(fit_stage(sub, "procrustes") for sub in subsets.values())
        t = time.perf_counter()
        table = sim.similarity(bl, [i for i, x in sim.INDICES.items() if x.needs == "blocks"])
        s = time.perf_counter() - t
    print(f"(p)  pass:                                {p:7.1f} s")
    print(f"(p') the pass keeping {len(sizes)} sizes' prefix blocks: {pp:7.1f} s   (p')/(p) = {pp / p:.3f}")
    print(f"(f)  ridge fit, all sources:              {f:7.1f} s")
    print(f"     procrustes, all pairs:               {fp:7.1f} s   ({fp / f:.2f} x (f))")
    print(f"     ridge on {len(sizes)} sizes (one solve each):  {fr:7.1f} s   ({fr / f:.2f} x (f))")
    print(f"     procrustes on {len(sizes)} sizes:           {fpp:7.1f} s   ({fpp / f:.2f} x (f))")
    print(f"     (f) + all of these = {(f + fp + fr + fpp) / f:.2f} x (f); ridge and its sizes alone "
          f"{(f + fr) / f:.2f} x (f)")
    print(f"(s)  similarity, {len(table)} rows:              {s:7.1f} s")


if __name__ == "__main__":
    main()
