"""Shared by the benchmarks: the paper's dimensions, synthetic stores, the machine's description.

Imports this checkout's ``embmap`` (``<repo>/workflow``), not an installed copy.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

# Table 1 of the paper: feature dimension of the ten ImageNet CNNs
PAPER_DIMS = {
    "inception_v1": 1024, "inception_v2": 1024, "mobilenet_v2_140": 1792, "resnet_v1_152": 2048,
    "resnet_v2_152": 2048, "inception_v3": 2048, "inception_v4": 1536, "inception_resnet_v2": 1536,
    "nasnet_large": 4032, "pnasnet_large": 4320,
}


def paper_dims(scale: float = 4.0, networks: int | None = None) -> dict[str, int]:
    """The paper's dimensions divided by ``scale``; the first ``networks`` of them (cycled past ten)."""
    names = list(PAPER_DIMS)
    k = networks or len(names)
    out = {}
    for i in range(k):
        name = names[i % len(names)] + ("" if i < len(names) else f"_{i // len(names)}")
        out[name] = max(1, int(round(PAPER_DIMS[names[i % len(names)]] / scale)))
    return out


def synthetic_features(n: int, dims: dict[str, int], latent: int = 128, seed: int = 0) -> dict[str, np.ndarray]:
    """Features of several 'networks' sharing a latent code: relu(z A + b) + noise, float32 [n, d].

    Rectified features have positive means of the size of their spread, as real embeddings do.
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, latent), dtype=np.float32)
    out = {}
    for name, d in dims.items():
        a = rng.standard_normal((latent, d), dtype=np.float32) / np.float32(np.sqrt(latent))  # stays float32
        x = z @ a
        x += rng.standard_normal(d, dtype=np.float32)
        np.maximum(x, 0, out=x)
        x += 0.1 * rng.standard_normal((n, d), dtype=np.float32)
        assert x.dtype == np.float32, x.dtype
        out[name] = x
    return out


def write_stores(root: Path, feats: dict[str, np.ndarray], chunk_rows: int = 1024) -> dict[str, str]:
    """One embedding store per network, chunked like the workflow's extracted stores."""
    from embmap import stores

    n = len(next(iter(feats.values())))
    ids = np.array([f"img/{i:07d}" for i in range(n)])
    labels = np.zeros(n, dtype=np.int64)
    out = {}
    for name, x in feats.items():
        p = Path(root) / name / "train.zarr"
        stores.write_embeddings(p, x, ids, labels, chunk_rows=chunk_rows, network=name, split="train")
        out[name] = str(p)
    return out


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = "?"
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f"{kb / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {cores} cores, {mem} RAM, load average {load:.2f} at start, numpy {np.__version__}"
