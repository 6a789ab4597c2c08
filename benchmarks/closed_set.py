"""Time of the closed-set evaluation (Table 2) at the paper's dimensions / 4 with 1,001 classes (prints figures).

    python benchmarks/closed_set.py [--n 10000] [--scale 4] [--networks 10]

Evaluation stores of synthetic features (benchmarks/common.py) with random 1,001-class classifiers;
ridge maps for all ordered pairs fitted from the features' blocks. Times, in one run:

- (r) reading every evaluation store whole, twice (the floor of any evaluation that reads its input twice);
- (e) ``embmap.evaluate.closed_set.evaluate``: every pair and method (native, ridge, analytic, identity) in
  one pass over the stores;
- (g) the products the evaluation cannot avoid at this machine's float64 GEMM rate: per sample and ordered
  pair, mapping (d_A x d_B) and the target's logits (d_B x 1,001) for the ridge and analytic maps, plus the
  identity and native logits;
- (s) the analytic map's factorisations: one SVD per target classifier (now) against ``pinv`` and
  ``matrix_rank`` per ordered pair (before).
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common import machine, paper_dims, synthetic_features

from embmap import stores  # noqa: E402  (common puts this checkout's package first)
from embmap.evaluate import closed_set  # noqa: E402
from embmap.fit import gram, ridge  # noqa: E402

CLASSES = 1001


def gemm_seconds(m, k, n, repeat=3):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000, help="evaluation samples")
    ap.add_argument("--fit", type=int, default=20_000, help="fit samples (for the maps)")
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--networks", type=int, default=10)
    a = ap.parse_args()
    print(machine())
    dims = paper_dims(a.scale, a.networks)
    names = list(dims)
    print(f"{len(dims)} networks, D = {sum(dims.values())}, {a.n} evaluation samples, {CLASSES} classes")
    feats = synthetic_features(a.fit + a.n, dims, seed=1)
    rng = np.random.default_rng(2)
    bl = gram.blocks_in_memory({k: x[:a.fit] for k, x in feats.items()})
    maps = {}
    for s in names:
        for t, m in ridge.fit_maps(bl, s, [b for b in names if b != s], 1.0).items():
            maps[(s, t)] = m
    del bl
    with tempfile.TemporaryDirectory() as tmp:
        ids = np.array([f"img/{i:07d}" for i in range(a.n)])
        labels = rng.integers(0, CLASSES, a.n)
        for k, x in feats.items():
            cls = (rng.standard_normal((CLASSES, dims[k])) / np.sqrt(dims[k]), rng.standard_normal(CLASSES))
            stores.write_embeddings(Path(tmp) / k / "test.zarr", x[a.fit:], ids, labels, classifier=cls,
                                    network=k, split="test")
        del feats
        opened = stores.open_matched({k: str(Path(tmp) / k / "test.zarr") for k in names}, need_classifier=True)
        t = time.perf_counter()
        for _ in range(2):
            for s in opened.values():
                np.asarray(s.embeddings[:])
        r = time.perf_counter() - t
        t = time.perf_counter()
        table = closed_set.evaluate(opened, {"ridge": maps})
        e = time.perf_counter() - t
        cls = {k: s.classifier() for k, s in opened.items()}
    # (g): the unavoidable products (multiply-adds per sample), at the GEMM rate of a typical one
    madds = 0
    for s in names:
        for t_ in names:
            logits = dims[t_] * CLASSES
            if s == t_:
                madds += logits
                continue
            madds += 2 * (dims[s] * dims[t_] + logits)  # ridge and analytic: map, then the target's logits
            if dims[s] == dims[t_]:
                madds += logits  # identity
    rate = 4096 * 512 * CLASSES / gemm_seconds(4096, 512, CLASSES)  # multiply-adds per second
    g = madds * a.n / rate
    # (s): factorisations of the analytic map
    t = time.perf_counter()
    for b in names:
        closed_set.analytic_factor(cls[b])
    per_target = time.perf_counter() - t
    t = time.perf_counter()
    for s in names:
        for b in names:
            if s != b:
                np.linalg.pinv(cls[b][0])
                np.linalg.matrix_rank(cls[b][0])
    per_pair = time.perf_counter() - t
    print(f"(r) reading the evaluation stores twice: {r:.1f} s")
    print(f"(e) evaluate, {len(table)} rows:             {e:.1f} s  (e / r = {e / r:.1f})")
    print(f"(g) its unavoidable products, {madds / 1e6:.0f} M multiply-adds per sample, at the float64 GEMM rate "
          f"({2 * rate / 1e9:.0f} GFLOP/s): {g:.1f} s  (e / g = {e / g:.2f})")
    print(f"(s) analytic factorisations: {per_target:.2f} s, one SVD per target; {per_pair:.2f} s as pinv and "
          f"matrix_rank per ordered pair before")


if __name__ == "__main__":
    main()
