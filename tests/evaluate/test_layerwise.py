"""Layer by layer (issue 24, items 2-3): every (network, layer) a node of the one pass, the layer x layer similarity
table and the maps from every layer into a target's classifier, checked on stores whose layers have known linear
relations against independent computations on the raw layer features."""

import numpy as np
import pandas as pd
import pytest

from embmap import contract, stores
from embmap.evaluate import layers as ly
from embmap.fit import gram
from helpers import layered_stores

ALPHA = 1e-3


@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    """The layered stores, their pass with layers (2 shards, as the workflow's jobs run it) and without."""
    from embmap import steps

    root = tmp_path_factory.mktemp("layered")
    dirs, feats, labels = layered_stores(root)
    paths = {k: f"{d}/train.zarr" for k, d in dirs.items()}
    out = {}
    for tag, layers in (("with", True), ("without", False)):
        partials = [str(root / f"{tag}/shard{j}.zarr") for j in range(2)]
        for j, p in enumerate(partials):
            steps.cross_products_shard(paths, "train", 2, 1, "float64", j, p, threads=2, layers=layers)
        steps.cross_products(partials, str(root / f"{tag}/blocks.zarr"), "train", paths)
        out[tag] = str(root / f"{tag}/blocks.zarr")
    return dirs, feats, labels, out


def node_features(feats, split=0):
    return {contract.node(a, layer): v[split] for a, by in feats.items() for layer, v in by.items()}


def centred(x):
    return x - x.mean(axis=0)


def test_every_layer_is_a_node_of_the_pass_and_the_embeddings_read_as_before(layered):
    dirs, feats, _, out = layered
    whole = stores.open_blocks(out["with"], layers=True)
    assert whole.names == ["a", "b", "a@early", "a@mid%2Frelu", "b@conv1"]  # embeddings first, then the layers
    assert [(n["network"], n["layer"]) for n in stores.block_nodes(whole.attrs)][2:] == [
        ("a", "early"), ("a", "mid/relu"), ("b", "conv1")]
    raw = node_features(feats)
    for a, b in whole.pairs():  # an independent computation on the raw layer features
        np.testing.assert_allclose(whole.gram(a, b), centred(raw[a]).T @ centred(raw[b]), rtol=1e-9, atol=1e-9)
    emb, plain = stores.open_blocks(out["with"]), stores.open_blocks(out["without"])
    assert emb.names == plain.names == ["a", "b"] and emb.dims == plain.dims
    for a, b in plain.pairs():
        np.testing.assert_allclose(emb.gram(a, b), plain.gram(a, b), rtol=1e-12, atol=1e-12)
    # the squared-norm statistics of the embeddings' view are the embeddings' own (debiased CKA reads them)
    np.testing.assert_allclose(emb.sqnorms().q, plain.sqnorms().q, rtol=1e-12)
    np.testing.assert_allclose(emb.centred_norm_products("a", "b"), plain.centred_norm_products("a", "b"), rtol=1e-10)


def test_pass_cost_re_derived_pair_by_pair():
    dims, n = [3, 5, 2], 10
    c = gram.pass_cost(dims, n, folds=3, prefixes=2)
    total = sum(dims)
    pairs = sum(dims[i] * dims[j] for i in range(3) for j in range(i, 3))
    assert c["flops"] == 2 * n * total * (total + 1) / 2 and c["block_bytes"] == 8 * pairs * (1 + 3 + 2)
    assert not c["large"] and "10 features" in c["text"]
    assert gram.pass_cost([25_728, 20_000], 1_281_167)["large"]  # the paper's networks with a layer or two


def linear_cka(x, y):
    x, y = centred(x), centred(y)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def test_layer_similarity_is_linear_cka_of_the_raw_layers_with_whole_matrices(layered):
    dirs, feats, _, out = layered
    both = ly.layer_similarity(stores.open_blocks(out["with"], layers=True), ["cka", "cca", "r2"])
    assert list(both.columns) == ly.SIMILARITY_COLUMNS and set(both["index"]) == {"cka", "cca"}  # r2 needs maps
    t = both[both["index"] == "cka"]
    assert len(t) == 5 * 6 / 2  # every unordered pair of the 5 nodes, each node with itself too
    for r in t.itertuples():
        x, y = feats[r.source][r.source_layer][0], feats[r.target][r.target_layer][0]
        assert r.value == pytest.approx(linear_cka(x, y), rel=1e-9, abs=1e-12)
    own = t[(t.source == t.target) & (t.source_layer == t.target_layer)]
    np.testing.assert_allclose(own.value, 1.0, rtol=1e-12)
    cca = both[(both["index"] == "cca") & (both.source != both.target)].set_index(["source_layer", "target_layer"])
    assert cca.loc[("embedding", "embedding")].value == pytest.approx(1.0, abs=1e-3)  # z times full-rank matrices (CCA's small ridge)
    assert cca.loc[("embedding", "early")].value == pytest.approx(1.0, abs=1e-3)  # b's embedding and a's early layer: z both
    assert cca.loc[("embedding", "conv1")].value < 0.1  # noise
    depth = {(r.source, r.source_layer): r.source_depth for r in t.itertuples()}
    assert depth[("a", "early")] == 0 and depth[("a", "mid/relu")] == 1 and depth[("a", "embedding")] == 2


def independent_map(x, y, alpha=ALPHA):
    """Ridge with an unpenalised intercept, solved on the raw fit features: (W, c)."""
    xc, yc = centred(x), centred(y)
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)
    return w, y.mean(axis=0) - x.mean(axis=0) @ w


def test_maps_from_every_layer_read_by_the_targets_classifier_match_an_independent_computation(layered):
    dirs, feats, labels, out = layered
    whole = stores.open_blocks(out["with"], layers=True)
    ev = stores.open_matched({k: f"{d}/test.zarr" for k, d in dirs.items()}, need_classifier=True)
    maps = ly.fit_layer_maps(whole, {"ridge": {"alpha": ALPHA}})
    t = ly.layer_maps(ev, whole, maps, block_rows=96, intervals={"resamples": 200})
    assert list(t.columns) == ly.MAP_COLUMNS
    # 2 native rows; every node into every network but itself: 5 nodes x 2 networks - 2 embeddings into themselves
    assert len(t) == 2 + 5 * 2 - 2 and set(t.target_layer) == {"embedding"}
    for r in t[t.method == "ridge"].itertuples():
        x, y = feats[r.source][r.source_layer], feats[r.target]["embedding"]
        w, c = independent_map(x[0], y[0])
        mapped = x[1] @ w + c
        weight, bias = ev[r.target].classifier()
        acc = np.mean(np.argmax(mapped @ weight.T + bias, axis=1) == labels)
        assert r.accuracy == pytest.approx(acc, abs=1.5 / len(labels)), (r.source, r.source_layer, r.target)
        r2 = 1 - np.sum((mapped - y[1]) ** 2) / np.sum(centred(y[1]) ** 2)
        assert r.r2 == pytest.approx(r2, rel=1e-6, abs=1e-8)
        assert r.accuracy_low <= r.accuracy <= r.accuracy_high
    ridge = t[t.method == "ridge"].set_index(["source", "source_layer", "target"])
    assert ridge.loc[("a", "early", "b")].r2 > 0.999999  # exact: early = z Ra carries every linear function of z
    assert ridge.loc[("a", "early", "b")].accuracy == pytest.approx(ridge.loc[("a", "early", "b")].target_accuracy)
    assert ridge.loc[("b", "conv1", "a")].accuracy < 0.45  # noise: near chance (4 classes)
    assert ridge.loc[("a", "mid/relu", "a")].accuracy < ridge.loc[("a", "early", "a")].accuracy
    native = t[t.method == "native"].set_index("source")
    assert native.loc["a"].accuracy == 1.0  # the classifier reads z exactly
    # the embeddings' rows repeat the pairwise maps' (the same blocks, the same fit)
    from embmap.fit import methods as mt

    direct = mt.get("ridge").from_blocks(stores.open_blocks(out["with"]), "a", ["b"], {"alpha": ALPHA})["b"]
    np.testing.assert_array_equal(maps["ridge"][("a", "b")].weight, direct.weight)
    curves = ly.depth_curves(t, "ridge")
    assert curves[(curves.source == "a") & (curves.target == "b")].relative_depth.tolist() == [0.0, 0.5, 1.0]


def test_analyses_layers_needs_a_network_with_layers_and_stores_that_agree(tmp_path):
    from embmap import plan
    from embmap.config import ConfigError
    from helpers import synthetic_stores

    dirs = synthetic_stores(tmp_path / "plain", names=("a", "b"), dims=(4, 4))
    exp = {"task": "closed_set", "dataset": {"kind": "embeddings"}, "analyses": ["layers"],
           "networks": {k: {"source": "zarr", "path": d} for k, d in dirs.items()}}
    outs = plan.Plan({"experiments": {"e": exp}}, tmp_path).outputs("e")
    assert any(o.endswith("tables/layer_maps.csv") for o in outs)  # bring-your-own stores may hold layers
    assert not any("layer_sample_efficiency" in o for o in outs)
    sized = {**exp, "mapping": {"sample_sizes": [32, "all"]}}
    outs = plan.Plan({"experiments": {"e": sized}}, tmp_path).outputs("e")
    assert sum(o.endswith("tables/layer_sample_efficiency.csv") for o in outs) == 1  # sample sizes apply to layers
    with pytest.raises(stores.StoreError, match="no store of split 'train' holds a layer"):
        stores.check_experiment({s: {k: f"{d}/{s}.zarr" for k, d in dirs.items()} for s in ("train", "test")},
                                "closed_set", "train", "test", layers=True)
    trained = {"task": "closed_set", "dataset": {"kind": "digits"}, "analyses": ["layers"],
               "networks": {k: {"source": "train", "train": {"architecture": "mlp"}} for k in ("m", "n")}}
    with pytest.raises(ConfigError, match=r"experiments\.d\.analyses: layers .* none of them names layers"):
        plan.Plan({"experiments": {"d": trained}}, tmp_path)
    odd, _, _ = layered_stores(tmp_path / "odd", eval_layers={"b": {"conv2": np.zeros((900, 4), np.float32)}})
    with pytest.raises(stores.StoreError, match=r"network 'b': store .*test.zarr holds layers \{'conv2': 4\}"):
        stores.check_experiment({s: {k: f"{d}/{s}.zarr" for k, d in odd.items()} for s in ("train", "test")},
                                "closed_set", "train", "test", layers=True)
    logged = []
    summary = stores.check_experiment({s: {k: f"{d}/{s}.zarr" for k, d in layered_stores(tmp_path / "ok")[0].items()}
                                       for s in ("train", "test")}, "closed_set", "train", "test",
                                      log=logged.append, layers=True)
    assert summary["pass_cost"]["nodes"] == 5 and summary["pass_cost"]["features"] == 7 + 8 + 5 + 6 + 4
    assert any("the pass over every (network, layer): 5 nodes of 30 features" in m for m in logged)


def test_figures_draw_every_pair_of_networks_and_every_target(layered, tmp_path):
    from embmap.evaluate import plots

    dirs, feats, labels, out = layered
    whole = stores.open_blocks(out["with"], layers=True)
    sim = ly.layer_similarity(whole, ["cka"])
    fig = plots.layer_similarity_figure(sim, ["a", "b"], {"a": "A net"}, title="layers")
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.images]
    assert [ax.get_title() for ax in shown] == ["A net x A net", "A net x b", "b x b"]
    assert shown[0].images[0].get_array().shape == (3, 3) and shown[1].images[0].get_array().shape == (3, 2)
    np.testing.assert_allclose(np.diag(shown[0].images[0].get_array()), 1.0)  # a layer with itself
    ev = stores.open_matched({k: f"{d}/test.zarr" for k, d in dirs.items()}, need_classifier=True)
    t = ly.layer_maps(ev, whole, ly.fit_layer_maps(whole, {"ridge": {"alpha": ALPHA}}), intervals={"resamples": 50})
    fig = plots.layer_maps_figure(t, ["a", "b"], title="depth")
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.lines]
    assert [ax.get_title() for ax in panels] == ["into a", "into b"]
    assert len(panels[1].lines) == 3  # a's three depths, b's two, b itself dashed
    into_a = panels[0].lines[0].get_xydata()  # a's curve into itself ends at its own accuracy, at depth 1
    assert into_a[:, 0].tolist() == [0.0, 0.5, 1.0] and into_a[-1, 1] == 1.0
    plots.layer_maps(t, ["a", "b"], paths=[tmp_path / "m.png"])
    plots.layer_similarity(sim, ["a", "b"], paths=[tmp_path / "s.png"])
    assert (tmp_path / "m.png").stat().st_size > 1000 and (tmp_path / "s.png").stat().st_size > 1000


def test_sample_sizes_apply_to_every_layer_and_match_raw_prefixes_and_the_pairwise_curves(tmp_path):
    """``tables/layer_sample_efficiency.csv``: each layer's maps fitted on the first n fit samples (the pass's
    prefix blocks, one shard's worth and two shards' rows), checked against ridge on the raw first n rows, with the
    whole split's rows repeating the layer maps and the embeddings' rows repeating the pairwise curves."""
    from embmap import steps
    from embmap.evaluate import sample_efficiency as se
    from embmap.fit import methods as mt

    dirs, feats, labels = layered_stores(tmp_path)
    paths = {k: f"{d}/train.zarr" for k, d in dirs.items()}
    sizes = [24, 300]  # 24 rows lie in the first shard, 300 span both
    partials = [str(tmp_path / f"shard{j}.zarr") for j in range(2)]
    for j, p in enumerate(partials):
        steps.cross_products_shard(paths, "train", 2, 1, "float64", j, p, threads=1, sample_sizes=sizes, layers=True)
    steps.cross_products(partials, str(tmp_path / "blocks.zarr"), "train", paths)
    whole = stores.open_blocks(tmp_path / "blocks.zarr", layers=True)
    ev = stores.open_matched({k: f"{d}/test.zarr" for k, d in dirs.items()}, need_classifier=True)
    methods = {"ridge": {"alpha": ALPHA}, "lstsq": {}}
    said = []
    t = ly.layer_sample_efficiency(ev, whole, methods, sizes, True, {"resamples": 100}, log=said.append)
    assert list(t.columns) == ly.SAMPLE_COLUMNS and len(said) == 3
    maps_rows = 5 * 2 - 2  # every node into every network but itself
    assert len(t) == 2 * maps_rows * 3 + 2 and t[t.method == "native"].n_fit.isna().all()
    assert sorted(set(t.n_fit.dropna())) == [24, 300, 500]
    # the whole split's rows are tables/layer_maps.csv's
    full = ly.layer_maps(ev, whole, ly.fit_layer_maps(whole, methods), intervals={"resamples": 100})
    last = t[t.n_fit == 500].drop(columns="n_fit").reset_index(drop=True)
    pd.testing.assert_frame_equal(last, full[full.method != "native"].reset_index(drop=True)[last.columns])
    weight = {k: s.classifier() for k, s in ev.items()}
    for r in t[(t.method == "ridge") & (t.n_fit < 500)].itertuples():
        m = int(r.n_fit)
        x, y = feats[r.source][r.source_layer], feats[r.target]["embedding"]
        w, c = independent_map(x[0][:m], y[0][:m])
        mapped = x[1] @ w + c
        acc = np.mean(np.argmax(mapped @ weight[r.target][0].T + weight[r.target][1], axis=1) == labels)
        assert r.accuracy == pytest.approx(acc, abs=1.5 / len(labels)), (r.source, r.source_layer, r.target, m)
        assert r.r2 == pytest.approx(1 - np.sum((mapped - y[1]) ** 2) / np.sum(centred(y[1]) ** 2), rel=1e-6)
    # a's exact early layer needs few samples; the noise layer never gets far from chance
    ridge = t[t.method == "ridge"].set_index(["source", "source_layer", "target", "n_fit"])
    assert ridge.loc[("a", "early", "b", 24)].r2 > 0.9999
    assert ridge.loc[("b", "conv1", "a", 300)].accuracy < 0.45
    # the embeddings' rows are the pairwise sample-efficiency curves' (the same prefix blocks, the same choices)
    emb = stores.open_blocks(tmp_path / "blocks.zarr")
    pair_maps = {m: {(a, b): f for a in emb.names for b, f in
                     mt.get(m).from_blocks(emb, a, [x for x in emb.names if x != a], o).items()}
                 for m, o in methods.items()}
    pairs = se.sample_efficiency(ev, pair_maps, se.prefix_blocks(emb, sizes), None, {"alpha": ALPHA},
                                 methods=list(methods), intervals={"resamples": 100})
    mine = t[(t.source_layer == "embedding") & (t.method != "native")].set_index(["source", "target", "method", "n_fit"])
    for r in pairs[pairs.method != "native"].itertuples():
        got = mine.loc[(r.source, r.target, r.method, r.n_fit)]
        assert (got.accuracy, got.accuracy_low, got.accuracy_high) == (r.accuracy, r.accuracy_low, r.accuracy_high)
        assert got.r2 == pytest.approx(r.r2, rel=1e-9)


def test_neighbourhood_indices_compare_every_layer_on_the_evaluation_rows(layered, tmp_path):
    """``mutual_knn`` and ``cknna`` read every node's rows of the evaluation split (the layers step, as the
    similarity step reads the embeddings'): the embeddings' rows repeat the pairwise table's, a layer's rows equal
    the index on that layer's raw features, and ``r2`` (maps between nodes) is left out, saying so."""
    from embmap import steps
    from embmap.evaluate import similarity as sm
    from embmap.fit import gram

    dirs, feats, _, out = layered
    ev_paths = {k: f"{d}/test.zarr" for k, d in dirs.items()}
    options = {"knn_k": 5, "knn_max_samples": 300, "seed": 3}
    table = tmp_path / "ls.csv"
    steps.layers(out["with"], ev_paths, str(table), str(tmp_path / "lm.csv"), ["cka", "mutual_knn", "cknna", "r2"],
                 options, {"ridge": {"alpha": ALPHA}}, {"resamples": 50})
    t = pd.read_csv(table)
    assert set(t["index"]) == {"cka", "mutual_knn", "cknna"} and (t[t["index"] == "mutual_knn"].n == 300).all()
    assert len(t[t["index"] == "mutual_knn"]) == 5 * 6 / 2
    ev = stores.open_matched(ev_paths)
    from embmap.evaluate import neighbours

    rows = neighbours.eval_rows(400, 300, 3)
    raw = {contract.node(a, layer): v[1][rows] for a, by in feats.items() for layer, v in by.items()}
    names = [n for n in stores.open_blocks(out["with"], layers=True).names]
    alone = sm.similarity(gram.blocks_in_memory({k: raw[k] for k in names}), ["mutual_knn", "cknna"], options,
                          eval_samples={k: raw[k] for k in names}, with_self=True)
    got = t[t["index"] != "cka"].set_index(["index", "source", "source_layer", "target", "target_layer"]).value
    node = {contract.node(a, layer): (a, layer) for a, by in feats.items() for layer in by}
    for r in alone.itertuples():
        key = (r.index, *node[r.source], *node[r.target])
        assert got.loc[key] == pytest.approx(r.value, rel=1e-5, abs=1e-9), key  # the table keeps 6 digits
    pairwise = sm.similarity(stores.open_blocks(out["with"]), ["mutual_knn"], options,
                             eval_samples=sm.Rows(ev, rows))
    assert got.loc[("mutual_knn", "a", "embedding", "b", "embedding")] == pytest.approx(pairwise.value.iloc[0], rel=1e-5)
