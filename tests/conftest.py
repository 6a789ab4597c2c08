import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# What a test needs says how long it takes: TensorFlow, a Snakemake run, real weights or a SLURM cluster
# cost seconds to minutes each. Those tests are `slow` as well (README "Run the tests": the fast tier first).
NEEDS_TIME = ("tensorflow", "workflow", "real", "slurm")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(item.get_closest_marker(m) for m in NEEDS_TIME) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


def latent_embeddings(n=600, dims=(12, 9, 7), k=5, noise=0.1, offset=0.0, seed=0):
    """Features of several 'networks' that share a k-dimensional latent code, float32."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k))
    out = []
    for d in dims:
        a = rng.standard_normal((k, d))
        out.append((z @ a + noise * rng.standard_normal((n, d)) + offset).astype(np.float32))
    return z, out


def train_demo(spec, images, labels, n_classes, out_dir, **kw):
    """Train a demo network from a partial ``train:`` block (the schema fills the rest)."""
    from embmap import config
    from embmap.models import demo

    t = config.defaults("train", spec)
    return demo.train(t["architecture"], t["width"], t["epochs"], t["seed"], t["batch_size"], t["learning_rate"],
                      images, labels, n_classes, out_dir, **kw)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def synthetic_stores(root, names=("net_a", "net_b", "net_c"), dims=(12, 10, 12), n_train=400, n_test=200,
                     n_classes=4, seed=0, random_control=None):
    """Bring-your-own stores: ``root/<name>/{train,test}.zarr`` with a fitted linear classifier each.

    The networks share a latent code that decides the class, so maps between
    them work; ``random_control`` names a network whose features ignore the code.
    Returns {name: directory}.
    """
    from sklearn.linear_model import LogisticRegression

    from embmap import stores

    rng = np.random.default_rng(seed)
    n = n_train + n_test
    z = rng.standard_normal((n, 6))
    labels = np.argmax(z[:, :n_classes] + 0.3 * rng.standard_normal((n, n_classes)), axis=1)
    ids = np.array([f"img/{i:05d}.png" for i in range(n)])
    out = {}
    for name, d in zip(names, dims):
        if name == random_control:
            f = rng.standard_normal((n, d))
        else:
            f = np.tanh(z @ rng.standard_normal((6, d))) + 0.05 * rng.standard_normal((n, d))
        f = f.astype(np.float32)
        clf = LogisticRegression(max_iter=2000).fit(f[:n_train], labels[:n_train])
        w, b = clf.coef_, clf.intercept_
        if name == random_control:
            w, b = rng.standard_normal(w.shape), np.zeros(n_classes)
        for split, sl in (("train", slice(0, n_train)), ("test", slice(n_train, n))):
            stores.write_embeddings(f"{root}/{name}/{split}.zarr", f[sl], ids[sl], labels[sl], classifier=(w, b),
                                    chunk_rows=64, network=name, source="zarr", split=split)
        out[name] = f"{root}/{name}"
    return out
