"""The bring-your-own example (docs/bring-your-own.md), run as written, with a stand-in for PyTorch.

torch is not a dependency, so ``torch`` and ``torchvision`` are replaced by a
few lines that behave as the parts the example uses do (``nn.Linear``: y = x
W^T + b with ``weight`` [out, in]; ``nn.Identity``; ``no_grad``; tensors with
``.numpy()`` and ``.detach()``). The stores the example writes must pass every
check and give the model's own predictions through their classifier.
"""

import contextlib
import re
import sys
import types

import numpy as np
import pytest

from embmap import contract, plan, stores
from embmap.evaluate import closed_set
from embmap.fit.linear import LinearMap
from helpers import ROOT

CLASSES, FEATURES, PIXELS = 5, 8, 12


def readme_example() -> str:
    text = (ROOT / "docs" / "bring-your-own.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (code,) = [b for b in blocks if "write_embeddings(" in b]
    assert len([line for line in code.splitlines() if line.strip()]) <= 12, "the example is meant to stay short"
    return code


class Tensor(np.ndarray):
    def numpy(self):
        return np.asarray(self)

    def detach(self):
        return self


def tensor(a):
    return np.asarray(a).view(Tensor)


class Linear:
    def __init__(self, rng, n_in, n_out):
        self.weight, self.bias = tensor(rng.standard_normal((n_out, n_in))), tensor(rng.standard_normal(n_out))

    def __call__(self, x):
        return tensor(np.asarray(x) @ np.asarray(self.weight).T + np.asarray(self.bias))


class Identity:
    def __call__(self, x):
        return x


class ResNet:
    """Features tanh(x P), then ``fc``: what the example relies on of torchvision's models."""

    def __init__(self, weights=None):
        rng = np.random.default_rng(0)
        self.proj = rng.standard_normal((PIXELS, FEATURES))
        self.fc = Linear(rng, FEATURES, CLASSES)

    def eval(self):
        return self

    def __call__(self, x):
        return self.fc(tensor(np.tanh(np.asarray(x).reshape(len(x), -1) @ self.proj)))


@pytest.fixture
def fake_torch(monkeypatch):
    torch = types.ModuleType("torch")
    torch.no_grad = contextlib.nullcontext
    torch.Tensor = type("Tensor", (), {})  # what array libraries (scipy) look up when torch is imported
    torch.nn = types.SimpleNamespace(Identity=Identity)
    vision = types.ModuleType("torchvision")
    vision.models = types.SimpleNamespace(resnet50=ResNet)
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torchvision", vision)


def _loader(split, n, batch=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, PIXELS))
    y = np.argmax(np.tanh(x @ ResNet().proj) @ np.asarray(ResNet().fc.weight).T, axis=1)  # mostly right labels
    y[rng.random(n) < 0.2] = -1  # some unknown
    names = [f"{split}/img_{i:04d}.jpg" for i in range(n)]
    return [(tensor(x[i:i + batch]), tensor(y[i:i + batch]), names[i:i + batch]) for i in range(0, n, batch)], x, y


def test_the_readme_example_writes_stores_that_pass_every_check(fake_torch, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = readme_example()
    data = {}
    for net in ("resnet50", "copy"):  # two "networks": the example run twice under two names
        for split, n in (("train", 70), ("test", 45)):
            loader, x, y = _loader(split, n, seed={"train": 1, "test": 2}[split])
            data[split] = (x, y)
            exec(code.replace("test", split).replace("resnet50\"", f"{net}\"").replace("resnet50/", f"{net}/"),
                 {"loader": loader})
    store = tmp_path / "stores" / "resnet50" / "test.zarr"
    meta = contract.check_store(store, "test", need_classifier=True)
    assert (meta.n, meta.dim, meta.classes) == (45, FEATURES, CLASSES)
    s = stores.open_embeddings(store)
    x, y = data["test"]
    model = ResNet()
    np.testing.assert_allclose(s.embeddings[:], np.tanh(x @ model.proj), rtol=1e-6)
    np.testing.assert_array_equal(s.labels, y)
    assert s.ids[0] == "test/img_0000.jpg" and s.attrs["network"] == "resnet50" and s.attrs["split"] == "test"

    # the run's checks accept them, and the classifier reads the embeddings as the model itself does
    config = {"experiments": {"mine": {"task": "closed_set", "dataset": {"kind": "embeddings"},
                                       "networks": {k: {"source": "zarr", "path": f"stores/{k}"}
                                                    for k in ("resnet50", "copy")}}}}
    p = plan.Plan(config, tmp_path)
    stores.check_experiment({sp: p.stores("mine", sp) for sp in ("train", "test")}, "closed_set", "train", "test")
    opened = stores.open_matched(p.stores("mine", "test"), need_classifier=True)
    eye = LinearMap(np.eye(FEATURES), np.zeros(FEATURES), {})
    t = closed_set.evaluate(opened, {"ridge": {("resnet50", "copy"): eye, ("copy", "resnet50"): eye}})
    logits = np.asarray(model(tensor(x)))
    known = y >= 0
    assert t.n.iloc[0] == known.sum()
    native = t[(t.method == "native") & (t.source == "resnet50")].accuracy.item()
    assert native == pytest.approx(np.mean(np.argmax(logits, axis=1)[known] == y[known]))
