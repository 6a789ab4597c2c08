"""Steps of ``workflow/rules/fit.smk``: the one pass (shards and their reduce) and the fit jobs of every map method."""

from __future__ import annotations

import functools
from pathlib import Path

from . import log, step, waits_for_check


def _open_shard(stores: dict[str, str], shards: int, folds: int, shard: int, layers: bool = False):
    """Open the fit stores and check, before any heavy work, that they hold the same samples.

    Counts come from metadata; ids are compared over this shard's row blocks
    only, so over all shards every id is read once, like every feature.
    Returns the arrays of the pass's nodes (the networks' embeddings, then with
    ``layers`` every layer of every store, :func:`embmap.contract.node`), the
    layout and the nodes as the block store lists them (:func:`embmap.stores.block_nodes`).
    """
    from .. import contract
    from .. import stores as st
    from ..fit import gram

    opened = {}
    ref = None
    for name, path in stores.items():
        try:
            s = st.open_embeddings(path)
        except st.StoreError as e:
            raise st.StoreError(f"network {name!r}: {e}") from None
        if ref is None:
            ref = (name, s)
        elif s.n != ref[1].n:
            raise st.StoreError(f"network {name!r}: store {path} has {s.n} samples, network {ref[0]!r} has {ref[1].n}")
        opened[name] = s
    arrays = {k: s.embeddings for k, s in opened.items()}
    nodes = [{"node": k, "network": k, "layer": contract.EMBEDDING} for k in opened]
    for k, s in opened.items() if layers else ():
        for layer in s.layers:
            arrays[contract.node(k, layer)] = s.as_layer(layer).embeddings
            nodes.append({"node": contract.node(k, layer), "network": k, "layer": layer})
    if len(set(arrays)) != len(nodes):
        raise st.StoreError("two layers of one network have the same node name; rename one")  # layer_key is 1:1
    lay = gram.pass_layout(arrays, shards, folds)
    for b in lay.blocks(shard):
        lo, hi = lay.span(b)
        first = None
        for name, s in opened.items():
            here = (name, s.path, st.as_str(s.group["ids"][lo:hi]), None)
            if first is None:
                first = here
            else:
                contract.same_samples(first, here, offset=lo)
    return arrays, lay, nodes


def fit_stores(plan, wc) -> dict:
    """The fit split's stores, once checked."""
    return {"network_stores": list(plan.stores(wc.exp, plan.experiments[wc.exp].fit_split).values()),
            **waits_for_check(plan, wc)}


def _cross_products_shard_job(plan, wc) -> dict:
    """The fit split's stores, ``mapping.shards``, ``mapping.folds`` (when ``mapping.alpha`` is a list),
    ``mapping.precision``, ``mapping.sample_sizes`` and the ``engine`` block (where the pass's graph runs)."""
    exp = plan.experiments[wc.exp]
    return {"stores": plan.stores(wc.exp, exp.fit_split), "split": exp.fit_split, "shards": exp.shards,
            "folds": exp.cv_folds, "precision": exp.mapping["precision"], "sample_sizes": exp.sample_sizes,
            "engine": plan.config["engine"], "layers": exp.layerwise}


@step(inputs=fit_stores, job=_cross_products_shard_job)
def cross_products_shard(stores: dict[str, str], split: str, shards: int, folds: int, precision: str, shard,
                         partial: str, threads: int = 1, sample_sizes: list | None = None,
                         engine: dict | None = None, layers: bool = False) -> None:
    """One shard of the pass: centred cross products of all networks over this shard's row blocks, a Dask graph
    run where ``engine`` says (default: Dask's threaded scheduler on the job's threads).

    The blocks of each sample-size prefix are written as soon as the pass is
    past it, so they never add to the shard's memory more than one at a time.
    With ``layers`` (the experiment's ``analyses`` lists ``layers``) every layer
    the stores hold is a node of the pass beside the embeddings; the log states
    the pass's cost first (:func:`embmap.fit.gram.pass_cost`), as a warning when it is large.
    """
    from .. import engine as en
    from .. import stores as st
    from ..evaluate.sample_efficiency import check_sizes
    from ..fit import gram

    shard = int(shard)
    arrays, lay, nodes = _open_shard(stores, shards, folds, shard, layers)
    check_sizes(sample_sizes or [], lay.n, f"mapping.sample_sizes (fit split {split!r})")  # before the pass
    sizes = [int(m) for m in sample_sizes or [] if m != "all"]
    mine = lay.blocks(shard)
    log.info("shard %d of %d over split %r: %d of %d blocks of %d rows, %d networks, %d features in all, folds %s, "
             "%s products", shard, shards, split, len(mine), lay.n_blocks, lay.block_rows, len(arrays),
             sum(a.shape[1] for a in arrays.values()), lay.folds_of_shard(shard) if folds > 1 else "-", precision)
    cost = gram.pass_cost([a.shape[1] for a in arrays.values()], lay.n, folds, len(sizes))
    (log.warning if cost["large"] else log.info)("the pass over %d nodes (%d of them layers): %s", len(nodes),
                                                 len(nodes) - len(stores), cost["text"])
    if not len(mine):
        log.warning("shard %d has no rows: more shards (%d) than row blocks (%d)", shard, shards, lay.n_blocks)
    with st.atomic_group(partial) as g, en.scheduler(engine, threads, log=log.info) as get:
        bl = gram.cross_products(arrays, shard, shards, folds, precision=precision, sample_sizes=sizes,
                                 on_subset=functools.partial(st.write_subset, g), get=get)
        st.write_blocks_to(g, bl, full=False, split=split, nodes=nodes)
    log.info("wrote %s (%d samples)", partial, bl.n)


def _cross_products_inputs(plan, wc) -> dict:
    return {"partials": plan.shard_partials(wc.exp)}


def _cross_products_job(plan, wc) -> dict:
    exp = plan.experiments[wc.exp]
    return {"stores": plan.stores(wc.exp, exp.fit_split), "split": exp.fit_split}


@step(inputs=_cross_products_inputs, job=_cross_products_job)
def cross_products(partials: list, blocks: str, split: str, stores: dict[str, str]) -> None:
    """Pool the shard partials into ``fit/blocks.zarr`` (and its per-fold blocks)."""
    from .. import stores as st
    from ..fit import gram

    paths = list(partials)
    merged = gram.reduce([st.open_blocks(p, layers=True) for p in paths], paths)
    st.write_blocks(blocks, merged, split=split, stores=dict(stores))
    log.info("wrote %s: %d samples from %d shard(s), %d fold(s)", blocks, merged.n, len(paths),
             max(1, len(merged.folds)))


def _write_maps(fitted, method: str, path, experiment: str, fit_split: str, blocks: str, threads: int = 1) -> None:
    """Write the maps of the iterator ``fitted`` (((source, target), LinearMap) of ``method``) to
    ``path(source, target)``, on ``threads`` threads (at most that many maps in memory beyond the iterator's),
    logging each with its fit R2, the method's own figures and its warnings."""
    from concurrent.futures import ThreadPoolExecutor

    from .. import stores as st
    from ..fit import FitError
    from ..fit import methods as mt

    m_ = mt.get(method)
    versions = st.versions()
    warned = set()
    pending: list = []
    with ThreadPoolExecutor(max(1, int(threads))) as pool:
        while True:
            try:
                (source, target), m = next(fitted)
            except StopIteration:
                break
            except FitError as e:
                raise FitError(f"experiment {experiment!r}, method {method}: {e}") from None
            out = Path(path(source, target))
            out.parent.mkdir(parents=True, exist_ok=True)
            if len(pending) >= max(1, int(threads)):
                pending.pop(0).result()
            pending.append(pool.submit(st.write_map, str(out), m, experiment=experiment, fit_split=fit_split,
                                       blocks=blocks, versions=versions))
            if source not in warned:
                warned.add(source)
                few = mt.few_samples(int(m.attrs["n"]), m.weight.shape[0])
                if few:
                    log.warning("%s (%s): %s", source, method, few)
            warning = m_.warning(m) if m_.warning else None
            if warning:
                log.warning("%s -> %s: %s", source, target, warning)
            extra = f", {m_.describe(m)}" if m_.describe else ""
            log.info("%s -> %s (%s): fit R2 %.4f%s", source, target, method, m.attrs["fit_r2"], extra)
        for f in pending:
            f.result()


def method_options(plan, wc) -> dict:
    """The ``mapping`` keys the job's method reads (:attr:`embmap.fit.methods.Method.options`), and no other: a
    change to another method's option does not rerun this method's fits."""
    from ..fit import methods as mt

    mapping = plan.experiments[wc.exp].mapping
    return {k: mapping[k] for k in mt.get(wc.method).options}


def _fit_maps_job(plan, wc) -> dict:
    """The other networks, the ``mapping`` keys the method reads and the fit split."""
    exp = plan.experiments[wc.exp]
    return {"experiment": wc.exp, "targets": [b for b in exp.networks if b != wc.source],
            "mapping": method_options(plan, wc), "fit_split": exp.fit_split, "engine": plan.config["engine"]}


@step(job=_fit_maps_job)
def fit_maps(blocks: str, method: str, source: str, targets: list[str], mapping: dict, maps: str, experiment: str,
             fit_split: str, threads: int = 1, engine: dict | None = None) -> None:
    """Maps of a method fitted per source network (ridge: ``alpha`` a number or a list, CV) from ``source`` to
    every target, from the block store, into ``maps/METHOD/SOURCE/TARGET.zarr``, written side by side.

    Ridge's fit is a Dask graph (:func:`embmap.fit.ridge.fit_maps`) run where ``engine`` says (default: the
    job's ``threads``): the same maps to the bit on any scheduler and number of threads."""
    from .. import engine as en
    from .. import stores as st
    from ..fit import FitError
    from ..fit import methods as mt

    bl = st.open_blocks(blocks)
    try:
        with en.running(engine, threads, log=log.info):
            fitted = mt.get(method).from_blocks(bl, source, list(targets), mapping)
    except FitError as e:
        raise FitError(f"experiment {experiment!r}, method {method}, source network {source!r}: {e}") from None
    _write_maps(iter(((source, b), m) for b, m in fitted.items()), method, lambda a, b: f"{maps}/{b}.zarr",
                experiment, fit_split, blocks, threads)


def _fit_method_maps_job(plan, wc) -> dict:
    """Every network, the ``mapping`` keys the method reads and the fit split."""
    exp = plan.experiments[wc.exp]
    return {"experiment": wc.exp, "networks": list(exp.networks), "mapping": method_options(plan, wc),
            "fit_split": exp.fit_split, "engine": plan.config["engine"]}


@step(job=_fit_method_maps_job)
def fit_method_maps(blocks: str, method: str, networks: list[str], mapping: dict, maps: str, experiment: str,
                    fit_split: str, threads: int = 1, engine: dict | None = None) -> None:
    """Maps of a method fitted for all ordered pairs in one job (lstsq, procrustes: work shared between A -> B and
    B -> A), from the block store, into ``maps/METHOD/SOURCE/TARGET.zarr``; the fits side by side as Dask tasks
    where ``engine`` says (:func:`embmap.engine.side_by_side`)."""
    from .. import engine as en
    from .. import stores as st
    from ..fit import methods as mt

    bl = st.open_blocks(blocks)
    with en.running(engine, threads, log=log.info):
        fitted = mt.get(method).fit_pairs(bl, list(networks), mapping)  # one map at a time
        _write_maps(fitted, method, lambda a, b: f"{maps}/{a}/{b}.zarr", experiment, fit_split, blocks, threads)


__all__ = ['_open_shard', 'cross_products', 'cross_products_shard', 'fit_maps', 'fit_method_maps']
