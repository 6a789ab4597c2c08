"""The sample_efficiency job's fits, from the blocks against from the samples (prints figures; not a test).

    python benchmarks/sample_efficiency.py [--dim 1280] [--networks 4] [--n 600] [--sizes 32,64,128,256,512]

Issue 26: four networks of 1,280 features (EfficientNet-Lite) with prefixes of 32 .. 512 fit samples spent
95-121 s in this job, most of it in d^3 factorisations of Gram blocks whose rank is at most the prefix's n.
Both runs here fit ridge, lstsq and procrustes on every prefix and measure them on the evaluation split, as
the job does: (b) every method from the prefix blocks; (s) every method in the m-dimensional sample space
from the fit split's first rows (``Method.like_samples``). Prints each run's time, the ratio and the
largest difference between the two tables.
"""

import argparse
import tempfile
import time

import numpy as np
import pandas as pd
from common import machine, synthetic_features

from embmap import steps, stores  # noqa: E402
from embmap.evaluate import sample_efficiency as se  # noqa: E402
from embmap.fit import gram, methods  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--networks", type=int, default=4)
    ap.add_argument("--n", type=int, default=600, help="fit samples")
    ap.add_argument("--n-eval", type=int, default=200)
    ap.add_argument("--sizes", default="32,64,128,256,512")
    a = ap.parse_args()
    sizes = [int(v) for v in a.sizes.split(",")]
    print(machine())
    dims = {f"net{i}": a.dim for i in range(a.networks)}
    print(f"{a.networks} networks of {a.dim} features, {a.n} fit and {a.n_eval} evaluation samples, sizes {sizes}")
    feats = synthetic_features(a.n + a.n_eval, dims)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, a.n + a.n_eval)
    ids = np.array([f"img{i:06d}" for i in range(a.n + a.n_eval)])
    steps.set_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        fit, ev = {}, {}
        for k, x in feats.items():
            clf = (rng.standard_normal((10, a.dim)) / np.sqrt(a.dim), np.zeros(10))
            for split, sl, out in (("train", slice(0, a.n), fit), ("test", slice(a.n, None), ev)):
                stores.write_embeddings(f"{tmp}/{k}/{split}.zarr", x[sl], ids[sl], labels[sl], classifier=clf,
                                        network=k, split=split)
                out[k] = f"{tmp}/{k}/{split}.zarr"
        fit_s = stores.open_matched(fit)
        ev_s = stores.open_matched(ev, need_classifier=True)
        cp = gram.cross_products({k: s.embeddings for k, s in fit_s.items()}, sample_sizes=sizes)
        opts = methods.options(methods=["ridge", "lstsq", "procrustes"], alpha=1.0)
        full = {m: dict(methods.get(m).fit_pairs(cp, list(dims), opts)) for m in opts["methods"]}
        subsets = se.prefix_blocks(cp, sizes)
        t = time.perf_counter()
        blocks = se.sample_efficiency(ev_s, full, subsets, None, opts)
        t_blocks = time.perf_counter() - t
        t = time.perf_counter()
        rows = {k: stores.read_rows(s, np.arange(max(sizes))) for k, s in fit_s.items()}
        samples = se.sample_efficiency(ev_s, full, subsets, None, opts, first_rows=rows)
        t_samples = time.perf_counter() - t
    num = [c for c in blocks.columns if pd.api.types.is_float_dtype(blocks[c])]
    diff = float(np.nanmax(np.abs(blocks[num].to_numpy(float) - samples[num].to_numpy(float))))
    print(f"(b) from the blocks:                 {t_blocks:7.1f} s")
    print(f"(s) in the sample space:             {t_samples:7.1f} s   (b)/(s) = {t_blocks / t_samples:.1f}")
    print(f"largest difference between the tables: {diff:.2g}")


if __name__ == "__main__":
    main()
