"""Extraction's ``workers``: batches run side by side, written in order; the store does not depend on how many."""

import threading

import numpy as np
import pytest

from embmap import stores
from embmap.extract import extract, in_order
from embmap.models import Model, classifiers


class Images:
    """An in-memory dataset: ids are row numbers of ``x``."""

    n_classes = 3

    def __init__(self, x):
        self.x = x

    def images(self, ids):
        return self.x[[int(i) for i in ids]]


class Linear(Model):
    """Features relu(x W), logits features C' + b, computed in numpy; no classifier variables (least squares)."""

    def __init__(self, rendezvous=None, parallel=True):
        super().__init__("lin", "lin-handle", "lin-handle", input_size=(4, 4), channels=1)
        rng = np.random.default_rng(0)
        self.w = rng.standard_normal((16, 5)).astype(np.float32)
        self.c, self.b = rng.standard_normal((3, 5)), rng.standard_normal(3)
        self.rendezvous, self.parallel_calls = rendezvous, parallel
        self.lock, self.running, self.most, self.met = threading.Lock(), 0, 0, 0

    @property
    def has_logits(self):
        return True

    def features(self, images):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            meet = self.rendezvous is not None and threading.current_thread() is not threading.main_thread()
            self.met += meet
            meet = meet and self.met <= 2
        try:
            if meet:  # the first two calls on workers wait for each other: they run at once
                self.rendezvous.wait(timeout=60)
            return np.maximum(np.asarray(images, np.float32).reshape(len(images), -1) @ self.w, 0)
        finally:
            with self.lock:
                self.running -= 1

    def logits(self, images):
        return self.features(images).astype(np.float64) @ self.c.T + self.b

    def classifier(self, images, features=None, logits=None, rtol=None):
        raise classifiers.NotLocated("no variables")


@pytest.fixture
def data():
    x = np.random.default_rng(1).random((23, 4, 4, 1)).astype(np.float32)
    return Images(x), np.array([str(i) for i in range(23)]), np.arange(23) % 3


def _extract(net, data, path, workers, **kw):
    ds, ids, labels = data
    extract(net, ds, ids, labels, path, chunk_rows=4, batch_size=3, progress=False, lstsq_images=7, workers=workers,
            **kw)
    return stores.open_embeddings(path)


def test_in_order_keeps_the_order_and_holds_at_most_workers_items_pending():
    pulled, done = [], []

    def items():
        for i in range(10):
            assert len(pulled) - len(done) <= 2  # never more than `workers` taken ahead of what was handed back
            pulled.append(i)
            yield i

    for r in in_order(lambda i: i * i, items(), 2):
        done.append(r)
    assert done == [i * i for i in range(10)]
    assert list(in_order(lambda i: -i, range(4), 1)) == [0, -1, -2, -3]


@pytest.mark.parametrize("flip,normalise", [(False, False), (True, True)])
def test_workers_give_the_store_one_worker_gives(data, tmp_path, flip, normalise):
    one = _extract(Linear(), data, tmp_path / "one.zarr", 1, flip=flip, normalise=normalise)
    net = Linear(rendezvous=threading.Barrier(2))
    three = _extract(net, data, tmp_path / "three.zarr", 3, flip=flip, normalise=normalise)
    assert net.most >= 2  # batches really ran side by side (the barrier needs two at once)
    np.testing.assert_array_equal(three.embeddings[:], one.embeddings[:])
    np.testing.assert_array_equal(three.ids, one.ids)
    for a, b in zip(three.classifier(), one.classifier()):  # least squares on the first 7 images, in order
        np.testing.assert_array_equal(a, b)
    assert three.group["classifier"].attrs["n_images"] == 7
    assert (one.attrs["workers"], three.attrs["workers"]) == (1, 3)


def test_the_least_squares_classifier_is_the_one_of_the_first_images(data, tmp_path):
    s = _extract(Linear(), data, tmp_path / "s.zarr", 2)
    net, (x, ids, _) = Linear(), (data[0].x, *data[1:])
    f = net.features(x[:7]).astype(np.float64)
    w, b = s.classifier()
    np.testing.assert_allclose(f @ w.T.astype(np.float64) + b, net.logits(x[:7]), atol=1e-4)


def test_a_model_that_cannot_be_called_from_threads_runs_one_batch_at_a_time(data, tmp_path):
    net = Linear(parallel=False)
    s = _extract(net, data, tmp_path / "s.zarr", 4)
    assert net.most == 1 and s.attrs["workers"] == 1
