"""Layer by layer: similarity of every pair of (network, layer) nodes and maps from every layer into a target's
classifier (the ``layers`` analysis: ``tables/layer_similarity.csv`` and ``tables/layer_maps.csv``).

With ``analyses: [layers]`` the one pass covers every layer the networks' stores hold beside their embeddings
(:func:`embmap.contract.node` names them ``NETWORK@KEY`` in the block store, whose attribute ``nodes`` maps them
back, :func:`embmap.stores.block_nodes`), so the blocks hold ``S_LM`` for every pair of nodes. From them:

- :func:`layer_similarity`: every similarity index of the experiment that reads blocks only, for every pair of
  nodes, a network's layers with each other included (the layer x layer matrices of Kornblith et al. 2019). The
  columns of ``tables/similarity.csv``, then ``source_layer``, ``target_layer`` (the layer's name;
  ``embedding``, :data:`embmap.contract.EMBEDDING`, for the embedding itself) and ``source_depth``,
  ``target_depth`` (its position in its network: the layers in the order the store lists them, then the
  embedding last). A node with itself is included (1 for CKA), so every matrix is whole.
- :func:`layer_maps`: for every map method, the map from every node L of network A to the embedding of every
  network B, fitted from the blocks exactly as the pairwise maps are (the method's ``from_blocks``, the
  experiment's ``mapping`` keys), applied to L's features of the evaluation split and read by B's classifier:
  accuracy against depth. A layer of A into A's own embedding is the network's own linear read-out of that
  depth; A's embedding into A is the ``native`` row. The columns of ``tables/closed_set.csv`` (intervals
  included: a paired bootstrap over the evaluation samples, ``pct_change`` relative to A's own accuracy), then
  ``source_layer``, ``target_layer`` (always ``embedding``), ``source_depth`` and ``source_dim``.

- :func:`layer_sample_efficiency`: the same maps fitted on the first n images of the fit split for each size of
  ``mapping.sample_sizes`` (``tables/layer_sample_efficiency.csv``): how many images a map from each depth needs.

The rows whose source is a network's embedding repeat, to the bit, the rows of ``tables/closed_set.csv`` and
``tables/similarity.csv`` for the same pair: the same blocks, the same fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import contract
from .. import stores as st
from ..fit.blocks import Blocks
from . import closed_set as cs
from . import similarity as sim
from .common import NATIVE, cosine
from .indices import BLOCKS, EVAL, INDICES, SAMPLES

LAYER_COLUMNS = ["source_layer", "target_layer"]
SIMILARITY_COLUMNS = sim.COLUMNS + LAYER_COLUMNS + ["source_depth", "target_depth"]
MAP_COLUMNS = cs.COLUMNS + LAYER_COLUMNS + ["source_depth", "source_dim"]


@dataclass(frozen=True)
class Node:
    """One node of the pass: ``name`` in the block store, its ``network``, its ``layer`` (``embedding`` for the
    embedding) and its ``depth`` in its network (layers in the store's order, the embedding last)."""

    name: str
    network: str
    layer: str
    depth: int


def nodes_of(blocks: Blocks) -> list[Node]:
    """The nodes of ``blocks`` (opened with ``layers=True``), each network's layers in order, then its embedding."""
    listed = st.block_nodes(blocks.attrs)
    networks = list(dict.fromkeys(n["network"] for n in listed))
    out = []
    for a in networks:
        mine = [n for n in listed if n["network"] == a and n["layer"] != contract.EMBEDDING]
        mine += [n for n in listed if n["network"] == a and n["layer"] == contract.EMBEDDING]
        out += [Node(n["node"], a, n["layer"], k) for k, n in enumerate(mine)]
    missing = [n.name for n in out if n.name not in blocks.names]
    if missing:
        raise st.StoreError(f"the block store lists nodes {missing} in its attribute 'nodes' but holds no blocks of "
                            "them; re-run the pass")
    return out


def in_order(blocks: Blocks, nodes: list[Node]) -> Blocks:
    """``blocks`` restricted to ``nodes``, in the blocks' own order."""
    wanted = {n.name for n in nodes}
    return blocks.only([a for a in blocks.names if a in wanted])


def block_indices(indices, samples: bool = False) -> tuple[list[str], list[str]]:
    """(the indices of ``indices`` computed layer by layer, the others). Those reading blocks alone always;
    with ``samples`` also those comparing the evaluation split's samples (``mutual_knn``, ``cknna``: every node's
    rows are read from its store). Left out: indices that need maps between the two nodes (``r2``: the maps
    fitted layer by layer go into the networks' embeddings only; ``tables/layer_maps.csv`` has their R2)."""
    def kept(i):
        ix = INDICES[i]
        return ix.needs == BLOCKS or (samples and ix.needs == SAMPLES and ix.split == EVAL)

    return [i for i in indices if kept(i)], [i for i in indices if not kept(i)]


def node_stores(stores: dict[str, st.EmbeddingStore], nodes: list[Node]) -> dict[str, st.EmbeddingStore]:
    """{node name: its network's store read as its layer} (the embedding: the store itself)."""
    missing = sorted({n.network for n in nodes} - set(stores))
    if missing:
        raise st.StoreError(f"network {missing[0]!r}: in the blocks, not among the evaluation stores")
    return {n.name: stores[n.network].as_layer(n.layer) for n in nodes}


def layer_similarity(blocks: Blocks, indices, options: dict | None = None, eval_samples=None) -> pd.DataFrame:
    """:data:`SIMILARITY_COLUMNS` for every pair of nodes of ``blocks`` (opened with ``layers=True``) and every
    index of ``indices`` computed layer by layer (:func:`block_indices`), a node with itself included.

    ``eval_samples`` (node name -> float [n, d], the same evaluation rows of every node, e.g.
    :class:`embmap.evaluate.similarity.Rows` over :func:`node_stores`) adds the indices that compare samples."""
    nodes = nodes_of(blocks)
    by_name = {n.name: n for n in nodes}
    wanted, _ = block_indices(indices, samples=eval_samples is not None)
    t = sim.similarity(in_order(blocks, nodes), wanted, options, with_self=True, eval_samples=eval_samples)
    src, tgt = [by_name[a] for a in t.source], [by_name[b] for b in t.target]
    t["source"], t["target"] = [n.network for n in src], [n.network for n in tgt]
    t["source_layer"], t["target_layer"] = [n.layer for n in src], [n.layer for n in tgt]
    t["source_depth"], t["target_depth"] = [n.depth for n in src], [n.depth for n in tgt]
    return t[SIMILARITY_COLUMNS]


def fit_layer_maps(blocks: Blocks, methods: dict, like: dict | None = None) -> dict:
    """{method: {(source node, target network): LinearMap}}: every node into every network's embedding but its own,
    for each ``methods`` {name: its ``mapping`` options}, fitted from the blocks by the method's ``from_blocks``
    (:func:`embmap.engine.side_by_side`, as the pairwise fit jobs: each node's fit on one BLAS thread).

    ``like`` (maps of this function on the whole fit split) fits ``blocks`` (a prefix's) with the choices those
    maps made, as the sample-efficiency curves do (:meth:`embmap.fit.methods.Method.fit_like`: ridge keeps each
    map's penalty, the one ``mapping.alpha`` gave or its cross-validation chose)."""
    from ..engine import side_by_side
    from ..fit import methods as mt

    nodes = nodes_of(blocks)
    networks = [n.name for n in nodes if n.layer == contract.EMBEDDING]
    out = {}
    for method, options in methods.items():
        m = mt.get(method)
        if like is not None and m.like is not None:
            out[method] = m.like(blocks, [n.name for n in nodes], options, like[method])
            continue

        def one(n, m=m, options=options):
            return n.name, m.from_blocks(blocks, n.name, [b for b in networks if b != n.name], options)

        # nodes side by side, each on one BLAS thread: the same maps to the bit on any number of threads
        out[method] = {(a, b): f for a, fitted in side_by_side(one, nodes) for b, f in fitted.items()}
    return out


def layer_maps(stores: dict[str, st.EmbeddingStore], blocks: Blocks, maps: dict, block_rows: int = 4096,
               intervals: dict | None = None) -> pd.DataFrame:
    """Measure every map of :func:`fit_layer_maps` on the evaluation split, one pass over its stores.

    Parameters
    ----------
    stores : dict network -> EmbeddingStore
        Matched stores of the evaluation split with classifiers, holding the layers the blocks hold.
    blocks : the pass's blocks (``layers=True``), for the nodes
    maps : {method: {(source node, target network): LinearMap}}
    intervals : the ``intervals`` block

    Returns
    -------
    DataFrame with :data:`MAP_COLUMNS`: for every network its ``native`` row, then for every method every node of
    every network into every other network's embedding, and every layer into its own network's.
    """
    nodes = nodes_of(blocks)
    names = list(stores)
    labels = cs.eval_labels(stores)
    known = labels >= 0
    cls = {k: s.classifier() for k, s in stores.items()}
    offset = {k: s.label_offset for k, s in stores.items()}
    by_node = node_stores(stores, nodes)
    by_name = {n.name: n for n in nodes}
    keys = [(a, a, NATIVE) for a in names]
    for method, fitted in maps.items():
        keys += [(n.name, b, method) for n in nodes for b in names if b != n.name]
    for key in keys:
        if key[2] != NATIVE and (key[0], key[1]) not in maps[key[2]]:
            raise KeyError(f"no {key[2]} map from node {key[0]!r} to {key[1]!r}")
    tallies = {key: cs._Tally() for key in keys}
    right = {key: [] for key in keys}
    agreed = {key: [] for key in keys}
    spread = {b: cs.Spread(stores[b].dim) for b in names}
    n_total = 0
    for start, stop, feats in cs.feature_chunks(by_node, block_rows):
        y, mask = labels[start:stop], known[start:stop]
        native = {b: cs.predict(feats[b], cls[b], offset[b]) for b in names}
        for b in names:
            spread[b].add(feats[b])
        n_total += stop - start
        for key in keys:
            a, b, method = key
            mapped = feats[a] if method == NATIVE else maps[method][(a, b)](feats[a])
            pred = cs.predict(mapped, cls[b], offset[b])
            t = tallies[key]
            right[key].append((pred == y) & mask)
            agreed[key].append(pred == native[b])
            t.correct += int(np.sum(pred[mask] == y[mask]))
            t.n += int(mask.sum())
            t.agree += int(np.sum(pred == native[b]))
            t.cos += float(cosine(mapped, feats[b]).sum())
            t.sse += float(np.sum((mapped - feats[b]) ** 2))
    right = {k: np.concatenate(v) for k, v in right.items()}
    agreed = {k: np.concatenate(v) for k, v in agreed.items()}
    native_acc = {a: tallies[(a, a, NATIVE)].correct / tallies[(a, a, NATIVE)].n for a in names}
    # the intervals compare each row with its source network's and its target's own correctness: a layer's row
    # is compared with its network's, so each layer node gets its network's native row under its own name
    alias = {(n.name, n.name, NATIVE): (n.network, n.network, NATIVE) for n in nodes if n.name not in names}
    for k, v in alias.items():
        right[k], agreed[k] = right[v], agreed[v]
    sst = {b: spread[b].total for b in names}
    rows = []
    for key in keys:
        a, b, method = key
        node, t = by_name[a], tallies[key]
        acc, src = t.correct / t.n, native_acc[node.network]
        m = None if method == NATIVE else maps[method][(a, b)]
        rows.append({
            "source": node.network, "target": b, "method": method, "accuracy": acc, "source_accuracy": src,
            "target_accuracy": native_acc[b], "pct_change": 100.0 * (acc - src) / src if src > 0 else np.nan,
            "r2": 1.0 - t.sse / sst[b] if sst[b] > 0 else np.nan, "cosine": t.cos / n_total,
            "agreement": t.agree / n_total, "n": t.n,
            "fit_r2": float(m.attrs.get("fit_r2", np.nan)) if m is not None else np.nan,
            "source_layer": node.layer, "target_layer": contract.EMBEDDING, "source_depth": node.depth,
            "source_dim": by_node[a].dim})
    table = pd.DataFrame(rows)
    extra = cs.with_intervals(keys + list(alias), right, agreed, known, intervals).iloc[:len(keys)]
    return table.join(extra.reset_index(drop=True))[MAP_COLUMNS]


SAMPLE_COLUMNS = MAP_COLUMNS[:3] + ["n_fit"] + MAP_COLUMNS[3:]


def layer_sample_efficiency(stores: dict[str, st.EmbeddingStore], blocks: Blocks, methods: dict, sizes: list[int],
                            whole: bool = True, intervals: dict | None = None, log=None) -> pd.DataFrame:
    """The maps of :func:`fit_layer_maps` fitted on the first n samples of the fit split for each n of ``sizes``
    (the pass's prefix blocks, ``Blocks.subsets``), measured like :func:`layer_maps`.

    Each size's maps keep the choices of the whole split's (ridge: each map's penalty), and every size is measured
    on the same bootstrap resamples of the evaluation split, so the curves are paired across sizes. Prefixes are
    fitted from their blocks, whatever their size (the pairwise curves' sample-space route for prefixes narrower
    than the widest network is not taken: a layer's features are few beside the embeddings').

    Returns
    -------
    DataFrame with :data:`SAMPLE_COLUMNS` (:data:`MAP_COLUMNS` with ``n_fit`` after ``method``): one row per map
    and size, ``whole`` adding the whole split's maps at ``n_fit`` = the split's size, then each network's
    ``native`` row once (``n_fit`` empty).
    """
    import time

    from .sample_efficiency import prefix_blocks

    say = log or (lambda *a: None)
    subsets = prefix_blocks(blocks, sorted(sizes))
    full = fit_layer_maps(blocks, methods)
    runs = [(m, bl, (lambda bl=bl: fit_layer_maps(bl, methods, like=full))) for m, bl in subsets.items()]
    if whole:
        runs.append((blocks.n, blocks, lambda: full))
    parts, native = [], None
    for k, (m, bl, fit) in enumerate(runs):
        start = time.perf_counter()
        maps = fit()
        fitted = time.perf_counter() - start
        t = layer_maps(stores, bl, maps, intervals=intervals)
        say(f"{m} fit samples: {sum(len(v) for v in maps.values())} layer maps fitted in {fitted:.1f} s, measured "
            f"in {time.perf_counter() - start - fitted:.1f} s ({k + 1} of {len(runs)} sizes)")
        if native is None:
            native = t[t.method == NATIVE].assign(n_fit=np.nan)
        parts.append(t[t.method != NATIVE].assign(n_fit=m))
    return pd.concat(parts + [native], ignore_index=True)[SAMPLE_COLUMNS]


def depth_curves(table: pd.DataFrame, method: str) -> pd.DataFrame:
    """The rows of ``tables/layer_maps.csv`` of one method, each source network's layers in depth order per
    target, with ``relative_depth`` = depth / (the network's deepest node's depth): 1 is the embedding. A network's
    curve into itself ends at its ``native`` row (its embedding read by its own classifier, no map)."""
    t = pd.concat([table[table.method == method], table[table.method == NATIVE]]).copy()
    deepest = table.groupby("source").source_depth.max()
    t["relative_depth"] = t.source_depth / t.source.map(deepest).where(lambda d: d > 0, 1)
    return t.sort_values(["target", "source", "source_depth"], kind="stable")
