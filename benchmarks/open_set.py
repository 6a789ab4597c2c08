"""Time and memory of the open-set evaluation at LFW's size (prints figures; not a test).

    python benchmarks/open_set.py [--networks 4] [--dim 512]

Synthetic unit-norm embeddings of LFW's shape: 5,749 identities, 13,233 images, a View 2 style pairs file
of 10 folds x (300 matched + 300 mismatched) pairs over about 7,700 of them; four 512-d networks.
"""

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from embmap.data import pairs as pf  # noqa: E402
from embmap.evaluate import identification, verification  # noqa: E402


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--networks", type=int, default=4)
    ap.add_argument("--dim", type=int, default=512)
    a = ap.parse_args()
    ids, feats, pairs, all_ids, all_feats = lfw_like(a.networks, a.dim)
    print(f"{len(pairs)} pairs over {len(ids)} images; {a.networks} networks of {a.dim} features")
    t = time.perf_counter()
    table, _ = verification.verification(feats, ids, pairs, alpha=1.0)
    print(f"verification (10 folds, {len(table)} rows): {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    ident = identification.identification(feats, ids, n_folds=5, seed=0, alpha=1.0)
    print(f"identification (5 folds, {ident.n_probes.iloc[0]} probes, gallery {ident.gallery_size.iloc[0]:.0f}): "
          f"{time.perf_counter() - t:.1f} s")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    with pd.option_context("display.width", 120):
        print(table[table.method != "identity"].head(6).to_string(index=False))


if __name__ == "__main__":
    main()
