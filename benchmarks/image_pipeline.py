"""Throughput of the JPEG pipeline (decode, central crop, bilinear resize) that feeds every image network.

    python benchmarks/image_pipeline.py [--n 512] [--size 331] [--batch 64]

Writes N ImageNet-like JPEGs (500 x 375, quality 90) to benchmarks/out/jpegs and prints images per
second for the parallel tf.data pipeline (embmap.data.images.batches) and, for comparison, one file at a
time (embmap.data.images.load). On a GPU node the pipeline must stay ahead of the network.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--size", type=int, default=331)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()

    import numpy as np
    from PIL import Image

    from embmap.data import images

    out = Path(__file__).parent / "out" / "jpegs"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    base = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
    for i in range(args.n):
        p = out / f"{i:05d}.JPEG"
        if not p.exists():
            x = np.clip(base.astype(int) + rng.integers(-20, 20, (1, 1, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(x).filter(__import__("PIL.ImageFilter").ImageFilter.SMOOTH).save(p, quality=90)
        paths.append(p)
    size = (args.size, args.size)
    list(images.batches(paths[: args.batch], size, batch_size=args.batch))  # warm up
    t = time.perf_counter()
    n = sum(len(b) for _, b in images.batches(paths, size, batch_size=args.batch))
    fast = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for p in paths[:128]:
        images.load(p, size)
    slow = 128 / (time.perf_counter() - t)
    print(f"cores: {os.cpu_count()}, {n} JPEGs 500x375 -> {args.size}x{args.size}, batch {args.batch}")
    print(f"tf.data pipeline (parallel, prefetch): {fast:8.1f} images/s")
    print(f"one file at a time:                    {slow:8.1f} images/s")


if __name__ == "__main__":
    main()
