"""Extraction throughput: JPEG files on disk to an embedding store, against its bound.

    python benchmarks/extract.py                       # 1,024 JPEGs of 500x375, MobileNetV2 at 224, batch 64
    python benchmarks/extract.py --images 256 --batch 32

A randomly initialised MobileNetV2 (``tf_keras.applications``, ``weights=None``)
is exported as a feature-vector SavedModel (1,280 features) and read back
through ``embmap.models.hub.hub_model`` (``hub.KerasLayer``), as a TF Hub model is.
Three rates, same images and batch size:

  r_decode   read + decode + resize to 224x224 + scale to [0, 1], batches of float32 arrays;
  r_forward  the model's forward pass alone on an in-memory batch;
  pipeline   ``embmap.extract.extract``: decode, pre-process, batch, run, write the store.

Bound: on a CPU-only machine decoding and the model share the cores, so
1 / (1/r_decode + 1/r_forward); on a GPU node min(r_decode, r_forward).
Target: pipeline >= 0.85 of the bound.

The JPEG reader here is a stand-in for the ImageNet dataset kind (decode with
Pillow, resize the whole image to the network's input).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class JpegFiles:
    """Images by id from JPEG files under ``root``: float32 [batch, size, size, 3] in [0, 1]."""

    def __init__(self, root, size: int = 224):
        self.root, self.size = Path(root), int(size)

    def image(self, i: str) -> np.ndarray:
        from PIL import Image

        with Image.open(self.root / i) as im:
            im = im.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
            return np.asarray(im, dtype=np.float32) / 255.0

    def images(self, ids) -> np.ndarray:
        return np.stack([self.image(i) for i in ids])


def write_jpegs(root: Path, n: int, size=(500, 375), seed: int = 0) -> list[str]:
    """``n`` photo-like JPEGs (smooth colour fields with texture), quality 90: about ImageNet's mean size."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(n):
        low = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
        px = np.asarray(low, dtype=np.int16) + rng.integers(-20, 21, (size[1], size[0], 3))
        name = f"img_{i:05d}.jpg"
        Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)).save(root / name, quality=90)
        ids.append(name)
    return ids


def export_mobilenet(out: Path, size: int = 224, seed: int = 0) -> Path:
    """A randomly initialised MobileNetV2 feature-vector SavedModel (global average pool, 1,280 features)."""
    import tensorflow as tf
    import tf_keras as k

    k.utils.set_random_seed(seed)
    model = k.applications.MobileNetV2(weights=None, include_top=False, pooling="avg", input_shape=(size, size, 3))
    tf.saved_model.save(model, str(out))
    return out


def rate(n: int, seconds: float) -> float:
    return n / seconds


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    n = args.images - args.images % args.batch  # whole batches: one traced shape
    from embmap import steps
    from embmap.extract import extract
    from embmap.models.hub import hub_model

    steps.tf_threads(args.threads)
    print(f"machine: {machine()}")
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        ids = np.array(write_jpegs(tmp / "jpeg", n))
        mb = sum((tmp / "jpeg" / i).stat().st_size for i in ids) / n / 1e3
        net = hub_model("mobilenet_v2", str(export_mobilenet(tmp / "model", args.size)),
                        input_size=(args.size, args.size))
        data = JpegFiles(tmp / "jpeg", args.size)
        print(f"{n} JPEGs of 500x375 ({mb:.0f} kB each on average), MobileNetV2 at {args.size}, batch {args.batch}, "
              f"{args.threads} threads")

        batch = data.images(ids[: args.batch])
        net.features(batch)  # trace once
        start = time.perf_counter()
        for s in range(0, n, args.batch):
            data.images(ids[s : s + args.batch])
        r_decode = rate(n, time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(0, n, args.batch):
            net.features(batch)
        r_forward = rate(n, time.perf_counter() - start)
        start = time.perf_counter()
        extract(net, data, ids, np.zeros(n, int), tmp / "store.zarr", chunk_rows=None, batch_size=args.batch,
                with_classifier=False, progress=False)
        r_pipe = rate(n, time.perf_counter() - start)

    cpu_bound = 1 / (1 / r_decode + 1 / r_forward)
    print(f"r_decode   {r_decode:8.1f} images/s")
    print(f"r_forward  {r_forward:8.1f} images/s")
    print(f"pipeline   {r_pipe:8.1f} images/s")
    print(f"CPU bound 1/(1/r_decode + 1/r_forward) = {cpu_bound:.1f} images/s; pipeline / bound = "
          f"{r_pipe / cpu_bound:.2f} (target >= 0.85)")
    print("(on a GPU node the bound would be min(r_decode, r_forward) with that node's rates)")


if __name__ == "__main__":
    main()
