"""Time and memory of the open-set evaluation at LFW's size (prints figures; not a test).

    python benchmarks/open_set.py [--networks 4] [--dim 512] [--alphas 0.1,1,10] [--threads 2]

Synthetic unit-norm embeddings of LFW's shape: 5,749 identities, 13,233 images, a View 2 style pairs file
of 10 folds x (300 matched + 300 mismatched) pairs over about 7,700 of them; four 512-d networks.

Each evaluation runs in its own process (features read from a temporary .npz), so its peak resident
memory (VmHWM) is its own. In the same run the machine's float64 GEMM rate is measured on the
verification's largest product (distinct first images x d, times d x d, best of 3), and the
verification's unavoidable arithmetic is expressed in that rate: mapping every distinct first image
through every fold's map, 10 folds x 12 ordered pairs; so are all of identification's products
(:func:`identification_flops`). On a shared machine wall times move with the
load; the ratio to the floor moves much less.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "workflow"))
sys.path.insert(0, str(HERE))
from common import machine  # noqa: E402
from embmap.data import pairs as pf  # noqa: E402


def lfw_like(n_networks, dim, seed=0):
    rng = np.random.default_rng(seed)
    # LFW's skew: most people have one image, a few have hundreds
    counts = np.minimum(rng.zipf(2.2, 5749), 530)
    ids = [pf.image_path(f"P{p:04d}", j + 1) for p, c in enumerate(counts) for j in range(c)]
    who = np.repeat(np.arange(len(counts)), counts)
    z = rng.standard_normal((len(counts), 64))[who] + 0.5 * rng.standard_normal((len(who), 64))
    feats = {}
    for k in range(n_networks):
        f = np.tanh(z @ rng.standard_normal((64, dim)) / 8)
        feats[f"net{k}"] = (f / np.linalg.norm(f, axis=1, keepdims=True)).astype(np.float32)
    pairs = pf.make_pairs({f"P{p:04d}": int(c) for p, c in enumerate(counts)}, 10, 300, seed)
    used = np.isin(ids, pairs.images())
    return np.array(ids)[used], {k: f[used] for k, f in feats.items()}, pairs, np.array(ids), feats


def peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(what: str, path: str, alpha, threads: int) -> None:
    """One evaluation in this process: prints a JSON line with its time and peak memory."""
    from embmap.evaluate import identification, verification

    data = np.load(path)
    ids = data["ids"]
    feats = {k[5:]: data[k] for k in data.files if k.startswith("feat_")}
    t = time.perf_counter()
    if what == "verification":
        pairs = pf.read_pairs(path.replace(".npz", ".txt"))
        table, _ = verification.verification(feats, ids, pairs, alpha=alpha, threads=threads)
    else:
        table = identification.identification(feats, ids, n_folds=5, seed=0, alpha=alpha, threads=threads)
    print(json.dumps({"seconds": time.perf_counter() - t, "peak_mib": peak_mib(), "rows": len(table)}))


def run_child(what, path, alpha, threads):
    out = subprocess.run([sys.executable, __file__, "--child", what, "--data", path, "--alphas", alpha,
                          "--threads", str(threads)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def gemm_floor(n_rows: int, dim: int, n_networks: int, folds: int = 10) -> tuple[float, float]:
    """Seconds of the verification's mapping products at this machine's float64 GEMM rate, and that rate."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n_rows, dim))
    w = rng.standard_normal((dim, dim))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        x @ w
        best = min(best, time.perf_counter() - t)
    flops = 2.0 * n_rows * dim * dim
    maps = folds * n_networks * (n_networks - 1)
    return maps * best, flops / best / 1e9


def identification_flops(ids, feats, n_folds: int = 5, seed: int = 0) -> float:
    """Floating-point operations of identification's products (alpha 1, ridge): per source and fold the
    fold's blocks (S_AA by syrk, S_AB), one LU solve for all targets, the probes' mapping; per ordered pair
    (native and identity included) and fold the probe x gallery similarities."""
    from embmap.evaluate import identification

    gallery, gfold, probes, pid = identification.identification_split(ids, n_folds, seed)
    dims = {k: v.shape[1] for k, v in feats.items()}
    n_probe = np.bincount(gfold[pid], minlength=n_folds)
    n_gallery = np.bincount(gfold, minlength=n_folds)
    macs = 0.0
    for a, d in dims.items():
        big_d = sum(v for b, v in dims.items() if b != a)
        for k in range(n_folds):
            macs += n_probe[k] * d * (d / 2 + big_d)        # the fold's blocks
            macs += d ** 3 / 3 + d * d * big_d              # LU and its two triangular solves
            macs += n_probe[k] * d * big_d                  # mapping the fold's probes
        for b, db in dims.items():  # native on the diagonal; ridge, and identity where the dimensions agree
            rows = 1 if b == a else 1 + (db == d)
            macs += rows * sum(n_probe[k] * db * n_gallery[k] for k in range(n_folds))
    return 2 * macs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--networks", type=int, default=4)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--alphas", default="0.1,1,10", help="the alpha list timed against the single alpha 1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child")
    ap.add_argument("--data")
    a = ap.parse_args()
    if a.child:
        alphas = [float(v) for v in a.alphas.split(",")]
        child(a.child, a.data, alphas if len(alphas) > 1 else alphas[0], a.threads)
        return
    print(machine())
    ids, feats, pairs, _, _ = lfw_like(a.networks, a.dim)
    i1, _ = pf.rows_of(pairs, ids)
    distinct = len(np.unique(i1))
    print(f"{len(pairs)} pairs over {len(ids)} images ({distinct} distinct first images); {a.networks} networks "
          f"of {a.dim} features; {a.threads} threads")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lfw.npz")
        np.savez(path, ids=ids, **{f"feat_{k}": v for k, v in feats.items()})
        pf.write_pairs(path.replace(".npz", ".txt"), pairs)
        floor, rate = gemm_floor(distinct, a.dim, a.networks)
        id_floor = identification_flops(ids, feats) / (rate * 1e9)
        v1 = run_child("verification", path, "1.0", a.threads)
        vl = run_child("verification", path, a.alphas, a.threads)
        i1r = run_child("identification", path, "1.0", a.threads)
    print(f"float64 GEMM: {rate:.1f} GFLOP/s; the verification's mapping products at that rate: {floor:.1f} s")
    print(f"verification, alpha 1:      {v1['seconds']:6.1f} s ({v1['seconds'] / floor:.2f} x the mapping floor), "
          f"peak {v1['peak_mib']:.0f} MiB")
    print(f"verification, alphas {a.alphas}: {vl['seconds']:6.1f} s ({vl['seconds'] / v1['seconds']:.2f} x alpha 1), "
          f"peak {vl['peak_mib']:.0f} MiB")
    print(f"identification, alpha 1:    {i1r['seconds']:6.1f} s ({i1r['seconds'] / id_floor:.2f} x its products at "
          f"that rate, {id_floor:.1f} s), peak {i1r['peak_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
