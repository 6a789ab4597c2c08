"""The map-method registry is the one place that names methods: the schema agrees with it, and a method added
to it alone (here a toy, registered for the test) is planned, fitted, stored and evaluated by every stage."""

import re

import numpy as np
import pandas as pd
import pytest

from embmap import config, plan, steps, stores
from embmap.fit import gram
from embmap.fit import methods as mt
from helpers import face_embeddings, latent_embeddings, pairs_among, synthetic_stores


def test_the_schema_lists_exactly_the_registered_methods_and_their_options():
    schema = config.schema()
    mapping = schema["$defs"]["mapping"]["properties"]
    assert mapping["methods"]["items"]["enum"] == list(mt.METHODS)
    for m in mt.METHODS.values():
        assert m.name in mapping["methods"]["description"], m.name
        assert m.name in mapping["methods"]["errorMessage"], m.name
        assert m.jobs in (mt.SOURCE_JOBS, mt.PAIR_JOBS), m.name
        assert set(m.options) <= set(mapping), (m.name, set(m.options) - set(mapping))
        assert m.summary and m.from_blocks and m.from_part


@pytest.mark.parametrize("name", list(mt.METHODS))
def test_every_method_fits_the_same_map_from_blocks_from_all_pairs_and_from_a_fold(name):
    """The three ways a method is reached (per source, all pairs, per fold) agree on the same samples."""
    from embmap.fit import folds

    _, xs = latent_embeddings(n=300, dims=(8, 6, 9), noise=0.3, offset=1.0, seed=4)
    feats = {f"n{i}": x.astype(np.float64) for i, x in enumerate(xs)}
    options = {k: v for k, v in mt.options().items() if k in mt.get(name).options}  # what its fit jobs get
    bl = gram.blocks_in_memory(feats)
    pairs = dict(mt.get(name).fit_pairs(bl, list(feats), options))
    direct = mt.get(name).from_blocks(bl, "n0", ["n1", "n2"], options)
    for b, m in direct.items():
        scale = np.abs(m.weight).max()
        np.testing.assert_allclose(pairs[("n0", b)].weight, m.weight, rtol=1e-9, atol=1e-12 * scale)
        np.testing.assert_allclose(pairs[("n0", b)].intercept, m.intercept, rtol=1e-9, atol=1e-9)
        assert m.attrs["method"] == name and np.isfinite(m.attrs["fit_r2"])
    fold, held = np.arange(300) % 3, 1
    sf = folds.SourceFolds("n0", feats["n0"], {"n1": feats["n1"], "n2": feats["n2"]}, fold, 3)
    w, c, penalty = sf.weights(held, name)
    keep = fold != held
    rest = mt.fit_maps(gram.blocks_in_memory({k: x[keep] for k, x in feats.items()}), "n0", ["n1", "n2"], name)
    for b, m in rest.items():
        np.testing.assert_allclose(w[:, sf.slices[b]], m.weight, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(c[sf.slices[b]], m.intercept, rtol=1e-8, atol=1e-10)
        assert set(penalty) == {"n1", "n2"}


# -- a method added to the registry alone ------------------------------------------------------------
def _toy_method():
    """``mean``: every image mapped to the target's fit mean (W = 0), a floor any map should beat."""
    from embmap.fit.linear import LinearMap, fit_r2

    def from_blocks(blocks, source, targets, options):
        d, mu = len(blocks.means[source]), blocks.means
        return {b: LinearMap(np.zeros((d, len(mu[b]))), mu[b].copy(),
                             {"source": source, "target": b, "method": "mean", "n": blocks.n,
                              "fit_r2": fit_r2(np.zeros((d, len(mu[b]))), blocks.gram(source, source),
                                               blocks.gram(source, b), float(blocks.sumsq(b).sum()))})
                for b in targets}

    def from_part(t, slices, source, options, chosen):
        return np.zeros((len(t.ma), len(t.mb))), dict.fromkeys(slices, float("nan"))

    return mt.Method(name="mean", summary="the target's mean (W = 0)", options=(), jobs=mt.SOURCE_JOBS,
                     from_blocks=from_blocks, from_part=from_part)


@pytest.fixture
def toy(monkeypatch):
    """Register ``mean`` in the registry and in (a copy of) the schema's method list: the two places the
    architecture's recipe names."""
    monkeypatch.setitem(mt.METHODS, "mean", _toy_method())
    patched = config.schema()
    patched["$defs"]["mapping"]["properties"]["methods"]["items"]["enum"].append("mean")
    monkeypatch.setattr(config, "_schema", lambda path: patched)
    return "mean"


def test_a_method_added_to_the_registry_alone_is_planned_fitted_and_evaluated(tmp_path, monkeypatch, toy):
    monkeypatch.chdir(tmp_path)
    dirs = synthetic_stores(tmp_path, names=("a", "b"), dims=(5, 4))
    c = {"experiments": {"byo": {"task": "closed_set", "dataset": {"kind": "embeddings"},
                                 "mapping": {"methods": ["mean", "ridge"]},
                                 "networks": {k: {"source": "zarr", "path": d} for k, d in dirs.items()}}}}
    p = plan.Plan(c, tmp_path)
    assert p.experiments["byo"].methods == ["ridge", "mean"]  # the registry's order
    assert re.fullmatch(p.method_regex("source"), "mean") and not re.fullmatch(p.method_regex("pairs"), "mean")
    assert "results/byo/maps/mean/a" in p.map_dirs("byo")
    paths = p.map_paths("byo")
    assert paths["mean"]["a"]["b"] == "results/byo/maps/mean/a/b.zarr"

    feats = {k: stores.open_embeddings(f"{d}/train.zarr").embeddings[:] for k, d in dirs.items()}
    blocks = str(tmp_path / "blocks.zarr")
    stores.write_blocks(blocks, gram.blocks_in_memory({k: x.astype(np.float64) for k, x in feats.items()}))
    mapping = p.experiments["byo"].mapping
    for method in p.experiments["byo"].methods:
        for a in ("a", "b"):
            steps.fit_maps(blocks, method, a, [b for b in ("a", "b") if b != a], mapping,
                           p.path("maps", "byo", method=method, source=a), "byo", "train")
    m = stores.read_map(paths["mean"]["a"]["b"])
    np.testing.assert_allclose(m.weight, 0)
    np.testing.assert_allclose(m.intercept, feats["b"].astype(np.float64).mean(0), rtol=1e-6)

    table = tmp_path / "closed_set.csv"
    steps.evaluate_closed_set({k: f"{d}/test.zarr" for k, d in dirs.items()}, paths, str(table),
                              str(tmp_path / "matrix.csv"))
    t = pd.read_csv(table).set_index(["source", "target", "method"])
    mean, ridge = t.loc[("a", "b", "mean"), "accuracy"], t.loc[("a", "b", "ridge"), "accuracy"]
    assert mean < ridge  # every image gets the one class of the mean feature
    assert t.loc[("a", "b", "mean"), "r2"] == pytest.approx(0.0, abs=0.05)


def test_a_method_added_to_the_registry_alone_runs_in_the_pairs_protocols(toy):
    from embmap.evaluate import identification, verification

    ids, feats = face_embeddings(n_id=30, per_id=4, dims=(10, 8, 10), random=(2,))
    pairs = pairs_among(ids, n_folds=4, per_fold=12)
    table, folds = verification.verification(feats, ids, pairs, methods=["ridge", "mean"], alpha=0.5)
    v = table.set_index(["source", "target", "method"]).accuracy_mean
    assert v[("net0", "net1", "ridge")] > 0.7
    assert v[("net0", "net1", "mean")] == pytest.approx(0.5, abs=0.1)  # one point: every pair alike, chance
    assert folds[folds.method == "mean"].alpha.isna().all()
    t = identification.identification(feats, ids, n_folds=3, seed=0, methods=["ridge", "mean"], alpha=0.5)
    r = t.set_index(["source", "target", "method"]).rank1
    assert r[("net0", "net1", "mean")] < r[("net0", "net1", "ridge")]
