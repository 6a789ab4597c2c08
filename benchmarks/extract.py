"""Extraction throughput: JPEG files on disk to an embedding store, through the workflow's own pipeline.

    python benchmarks/extract.py                       # 1,024 JPEGs of 500x375, MobileNetV2 at 224, batch 64
    python benchmarks/extract.py --images 256 --batch 32

The JPEGs form an ``image_list`` dataset, read as the workflow reads ImageNet:
the parallel ``tf.data`` pipeline of ``embmap.data.images`` (decode, central
crop of 87.5%, bilinear resize to 224, scale to [0, 1], prefetch). A randomly
initialised MobileNetV2 (``tf_keras.applications``, ``weights=None``) is
exported as a feature-vector SavedModel (1,280 features) and read back through
``embmap.models.hub.hub_model`` (``hub.KerasLayer``), as a TF Hub model is.
Rates, same images and batch size:

  r_decode    the pipeline alone (all cores), batches of float32 arrays;
  r_decode/1  the pipeline on one core (one parallel call, TensorFlow on one thread in a child process):
              decode throughput per core, what a GPU node's CPU cores must supply;
  r_forward   the model's forward pass alone on an in-memory batch, as extraction runs it: every kernel on
              ``--kernel-threads`` threads (``store.kernel_threads``, default 2) and ``--threads // --kernel-threads``
              batches at once (the same embeddings whatever ``--threads``);
  r_forward/1 the same forward pass with every kernel on one thread and ``--threads`` batches at once (how
              extraction ran until 2026-12-03, in a child process): what the kernels' threads gain;
  pipeline    ``embmap.extract.extract``: decode, pre-process, batch, run, write the store.

Bound: on a CPU-only machine decoding and the model share the cores, so
1 / (1/r_decode + 1/r_forward); on a GPU node min(r_decode, r_forward).
Target: pipeline >= 0.85 of the bound.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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


ONE_CORE = """
import os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {workflow!r})
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
from embmap.data import images
paths = {paths!r}
next(images.batches(paths[:{batch}], ({size}, {size}), 0.875, batch_size={batch}, parallel=1))  # warm up
start = time.perf_counter()
for _ in images.batches(paths, ({size}, {size}), 0.875, batch_size={batch}, parallel=1):
    pass
print("RATE", len(paths) / (time.perf_counter() - start))
"""


KERNEL_THREADS = """
import os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {workflow!r})
import numpy as np
from embmap import steps
from embmap.extract import in_order
steps.tf_threads(1, concurrent={threads})
from embmap.models.hub import hub_model
net = hub_model("mobilenet_v2", {model!r}, input_size=({size}, {size}))
batch = np.load({batch!r})
net.features(batch)  # trace once
start = time.perf_counter()
for _ in in_order(net.features, [batch] * {calls}, {threads}):
    pass
print("RATE", {calls} * len(batch) / (time.perf_counter() - start))
"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kernel-threads", type=int, default=2, help="store.kernel_threads (default 2)")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    n = args.images - args.images % args.batch  # whole batches: one traced shape
    from embmap import data, steps
    from embmap.data import images
    from embmap.extract import extract, in_order
    from embmap.models.hub import hub_model

    batches = max(1, args.threads // args.kernel_threads)
    steps.tf_threads(args.kernel_threads, concurrent=max(2, batches))  # as embmap.steps.extract
    print(f"machine: {machine()}")
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        ids = np.array(write_jpegs(tmp / "jpeg", n))
        (tmp / "jpeg" / "list.csv").write_text("path,label\n" + "".join(f"{i},0\n" for i in ids))
        mb = sum((tmp / "jpeg" / i).stat().st_size for i in ids) / n / 1e3
        net = hub_model("mobilenet_v2", str(export_mobilenet(tmp / "model", args.size)),
                        input_size=(args.size, args.size))
        ds = data.get({"kind": "image_list", "path": str(tmp / "jpeg" / "list.csv")})
        pre = {"input_size": [args.size, args.size], "crop_fraction": 0.875}
        paths = [str(ds.path(i)) for i in ids]
        print(f"{n} JPEGs of 500x375 ({mb:.0f} kB each on average), MobileNetV2 at {args.size}, batch {args.batch}, "
              f"{args.threads} threads")

        batch = next(images.batches(paths[: args.batch], pre["input_size"], 0.875, batch_size=args.batch))[1]
        net.features(batch)  # trace once
        start = time.perf_counter()
        for _ in images.batches(paths, pre["input_size"], 0.875, batch_size=args.batch):
            pass
        r_decode = rate(n, time.perf_counter() - start)
        code = ONE_CORE.format(workflow=str(ROOT / "workflow"), paths=paths, batch=args.batch, size=args.size)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        r_one = float(r.stdout.split("RATE")[-1]) if r.returncode == 0 else float("nan")
        start = time.perf_counter()
        for _ in in_order(net.features, [batch] * (n // args.batch), batches):
            pass
        r_forward = rate(n, time.perf_counter() - start)
        np.save(tmp / "batch.npy", np.asarray(batch))
        code = KERNEL_THREADS.format(workflow=str(ROOT / "workflow"), threads=args.threads, model=str(tmp / "model"),
                                     size=args.size, batch=str(tmp / "batch.npy"), calls=n // args.batch)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        r_kernels = float(r.stdout.split("RATE")[-1]) if r.returncode == 0 else float("nan")
        start = time.perf_counter()
        extract(net, ds, ids, np.zeros(n, int), tmp / "store.zarr", chunk_rows=None, batch_size=args.batch,
                with_classifier=False, progress=False, preprocessing=pre, workers=batches)
        r_pipe = rate(n, time.perf_counter() - start)

    cpu_bound = 1 / (1 / r_decode + 1 / r_forward)
    print(f"r_decode   {r_decode:8.1f} images/s  (the tf.data pipeline on all cores)")
    print(f"r_decode/1 {r_one:8.1f} images/s  (one core: decode, crop and resize per core)")
    print(f"r_forward  {r_forward:8.1f} images/s  ({batches} batch(es) at once, each kernel on {args.kernel_threads} "
          "thread(s): the workflow's extraction)")
    print(f"r_forward/1{r_kernels:8.1f} images/s  ({args.threads} batches at once, each kernel on one thread; "
          f"r_forward / this = {r_forward / r_kernels:.2f})")
    print(f"pipeline   {r_pipe:8.1f} images/s")
    print(f"CPU bound 1/(1/r_decode + 1/r_forward) = {cpu_bound:.1f} images/s; pipeline / bound = "
          f"{r_pipe / cpu_bound:.2f} (target >= 0.85)")
    print(f"(on a GPU node the bound is min(r_decode, r_forward): each core decodes about {r_one:.0f} images/s, "
          f"so a network whose forward pass runs at R images/s needs about R / {r_one:.0f} cores)")


if __name__ == "__main__":
    main()
