"""The cost model of docs/scale-and-cluster.md: flops, bytes and memory of each job type at ImageNet scale.

    python benchmarks/cost_model.py                         # the paper's 11 networks, 1.28M samples
    python benchmarks/cost_model.py --shards 8 --alphas 7 --folds 5 --gflops32 100 --gflops64 50 --cores 32

Counts follow the implementation (embmap.fit.gram, embmap.fit.ridge): the pass forms the upper
triangle of the joint Gram as row panels, a symmetric product on each panel's diagonal part and
GEMMs past it (n D^2 flops; float32 or float64 products, float64 sums); a fit job with one alpha solves one linear system
per source for all targets (an LU, 2/3 d^3, and 2 d^2 (D - d) for the right-hand sides); with
an alpha list it eigendecomposes its source's Gram once per fold and once for the whole split. Wall times divide those counts by per-core rates measured
with benchmarks/ridge.py on this machine (give yours) and a number of cores;
they are estimates, reading speed aside (see --read-gbs).
"""

from __future__ import annotations

import argparse

from common import PAPER_DIMS

N_IMAGENET = 1_281_167
BLOCK_ROWS = 4096
PANEL_ROWS = 1024  # embmap.fit.gram.PANEL_ROWS: networks grouped into row panels of at least this height
EIGH = 9.0  # flops of a symmetric eigendecomposition with vectors, per d^3 (LAPACK syevd, about)
LU = 2.0 / 3.0  # flops of an LU factorisation, per d^3 (LAPACK gesv)


def panel_heights(dims: list[int]) -> list[int]:
    out, h = [], 0
    for d in dims:
        h += d
        if h >= PANEL_ROWS:
            out.append(h)
            h = 0
    return out + ([h] if h else [])


def pass_area(dims: list[int]) -> float:
    """Multiply-adds per sample of the pass's tiles (embmap.fit.gram._tiles): a panel's diagonal part is a
    symmetric product (half its square), the columns past it a GEMM; in all the upper triangle, D^2 / 2."""
    D, area, r0 = sum(dims), 0.0, 0
    for h in panel_heights(dims):
        r1 = r0 + h
        area += h * h / 2 + h * (D - r1)
        r0 = r1
    return area


def costs(dims: list[int], n: int, shards: int, folds: int, alphas: int) -> dict:
    D, sq = sum(dims), sum(d * d for d in dims)
    k = folds if alphas > 1 else 1
    acc = (D * D + sq) / 2 * 8  # upper blocks, float64
    per_shard_folds = 1 if (k == 1 or shards % k == 0) else k
    out = {"D": D, "features_GB": n * D * 4 / 1e9}
    # row panels, stored with their square diagonal part; the GEMMs cover the upper triangle and a strip
    panels = panel_heights(dims)
    acc = sum(h * (D - sum(panels[:i])) for i, h in enumerate(panels)) * 8  # the panels, float64
    out["pass"] = {"flops": 2 * n * pass_area(dims) / shards, "read": n * D * 4 / shards,
                   "write": per_shard_folds * acc, "memory": per_shard_folds * acc + 3 * BLOCK_ROWS * D * 4}
    out["reduce"] = {"flops": 0.0, "read": shards * per_shard_folds * acc, "write": (k + (k > 1)) * acc,
                     "memory": (k + 2) * max(dims) ** 2 * 8}
    fits = []
    for d in dims:
        rest = D - d
        if k > 1:  # one eigh for the whole split and one per fold, shared by every target and alpha
            flops = EIGH * d**3 + 4 * d * d * rest + k * ((EIGH + 4) * d**3 + 5 * d * d * rest)
        else:  # one LU and one solve with every target's columns as right-hand sides
            flops = LU * d**3 + 2 * d * d * rest
        fits.append({"d": d, "flops": flops, "read": (k + (k > 1)) * d * D * 8, "write": d * rest * 8,
                     "memory": (6 * d * d + 4 * d * max(dims)) * 8})
    out["fit"] = fits
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=N_IMAGENET)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--alphas", type=int, default=1, help="number of candidate alphas (1 = no CV)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--gflops32", type=float, required=True, help="float32 product rate per core, GFLOP/s")
    ap.add_argument("--gflops64", type=float, required=True, help="float64 product rate per core, GFLOP/s")
    ap.add_argument("--cores", type=int, default=32)
    ap.add_argument("--read-gbs", type=float, default=1.0, help="storage read rate of one job, GB/s")
    args = ap.parse_args(argv)
    dims = list(PAPER_DIMS.values()) + [PAPER_DIMS["pnasnet_large"]]  # + the random PNASNet-Large control
    c = costs(dims, args.n, args.shards, args.folds, args.alphas)
    r32, r64 = args.gflops32 * 1e9 * args.cores, args.gflops64 * 1e9 * args.cores
    print(f"{len(dims)} networks, D = {c['D']:,}, n = {args.n:,}: features {c['features_GB']:.0f} GB float32; "
          f"{args.shards} shard(s), {args.alphas} alpha(s){f', {args.folds} folds' if args.alphas > 1 else ''}; "
          f"{args.cores} cores at {args.gflops32:g} (float32) / {args.gflops64:g} (float64) GFLOP/s each, "
          f"reading {args.read_gbs:g} GB/s")
    p = c["pass"]
    t32, t64, tr = p["flops"] / r32, p["flops"] / r64, p["read"] / 1e9 / args.read_gbs
    print(f"pass, per shard: {p['flops'] / 1e12:.0f} TFLOP, reads {p['read'] / 1e9:.1f} GB, writes "
          f"{p['write'] / 1e9:.1f} GB, memory {p['memory'] / 1e9:.1f} GB; "
          f"{max(t32, tr) / 60:.1f} min (float32) / {max(t64, tr) / 60:.1f} min (float64), reading alone "
          f"{tr / 60:.1f} min")
    r = c["reduce"]
    print(f"reduce: reads {r['read'] / 1e9:.1f} GB, writes {r['write'] / 1e9:.1f} GB, memory "
          f"{r['memory'] / 1e9:.1f} GB; {(r['read'] + r['write']) / 1e9 / args.read_gbs / 60:.1f} min at the read rate")
    one = args.gflops64 * 1e9  # a fit job has one thread (threads: 1 in workflow/rules/fit.smk)
    for f in sorted({f["d"]: f for f in c["fit"]}.values(), key=lambda f: f["d"]):
        print(f"fit, source d = {f['d']}: {f['flops'] / 1e12:.2f} TFLOP (float64), reads {f['read'] / 1e9:.2f} GB, "
              f"writes {f['write'] / 1e9:.2f} GB, memory {f['memory'] / 1e9:.2f} GB; "
              f"{f['flops'] / one:.0f} s on one core")
    tot = sum(f["flops"] for f in c["fit"])
    longest = max(f["flops"] for f in c["fit"]) / one
    print(f"all {len(dims)} fit jobs: {tot / 1e12:.1f} TFLOP; side by side on one node {longest / 60:.1f} min "
          f"(the largest source)")


if __name__ == "__main__":
    main()
