"""Steps of ``workflow/rules/evaluate.smk``: the tables of every task and analysis."""

from __future__ import annotations

from pathlib import Path

from . import log, step, waits_for_check


def _read_maps(paths: dict) -> dict:
    """{(source, target): map} of the map stores ``paths[source][target]`` (one method's)."""
    from .. import stores as st

    return {(a, b): st.read_map(p) for a, row in paths.items() for b, p in row.items()}


def eval_stores(plan, wc) -> dict:
    """The evaluation split's stores, once checked."""
    return {"network_stores": list(plan.stores(wc.exp, plan.experiments[wc.exp].eval_split).values()),
            **waits_for_check(plan, wc)}


def pairs_stores(plan, wc) -> dict:
    """The stores of split ``pairs`` (open_set), once checked."""
    from ..plan import PAIRS_SPLIT

    return {"network_stores": list(plan.stores(wc.exp, PAIRS_SPLIT).values()), **waits_for_check(plan, wc)}


def _evaluate_closed_set_inputs(plan, wc) -> dict:
    return {**eval_stores(plan, wc), "map_dirs": plan.map_dirs(wc.exp)}


def _evaluate_closed_set_job(plan, wc) -> dict:
    """The evaluation split's stores and every map of every method in ``mapping.methods``."""
    exp = plan.experiments[wc.exp]
    return {"stores": plan.stores(wc.exp, exp.eval_split), "maps": plan.map_paths(wc.exp),
            "intervals": exp.spec["intervals"]}


@step(inputs=_evaluate_closed_set_inputs, job=_evaluate_closed_set_job)
def evaluate_closed_set(stores: dict[str, str], maps: dict, table: str, matrix: str,
                        intervals: dict | None = None) -> None:
    """Table 2: every target classifier on every source's mapped features (``maps[method][a][b]``: the map store
    a -> b of each method), with the ``intervals`` block's paired bootstrap intervals and McNemar tests."""
    from .. import stores as st
    from ..evaluate import closed_set, common

    opened = st.open_matched(stores, need_classifier=True)
    names = list(opened)
    t = closed_set.evaluate(opened, {m: _read_maps(paths) for m, paths in maps.items()}, intervals=intervals)
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.6g")
    common.matrix(t, names, "accuracy").to_csv(matrix, float_format="%.6g")
    log.info("wrote %s and %s (intervals: %s; widest accuracy interval +-%.3f)", table, matrix, intervals,
             float((t.accuracy_high - t.accuracy_low).max()) / 2)


def _analysis_job(plan, wc) -> dict:
    """The evaluation split's stores, every map of every method in ``mapping.methods``, the ``intervals`` block,
    the networks' labels (asymmetry's log names them) and which are ``control``s (composition's summary leaves
    them out)."""
    return {**_evaluate_closed_set_job(plan, wc), "labels": plan.labels(wc.exp), "controls": plan.controls(wc.exp)}


def _analysis_inputs(stores: dict[str, str], maps: dict) -> tuple:
    from .. import stores as st

    return st.open_matched(stores, need_classifier=True), {m: _read_maps(paths) for m, paths in maps.items()}


def _write(t, table: str) -> None:
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.6g")


@step(inputs=_evaluate_closed_set_inputs, job=_analysis_job)
def asymmetry(stores: dict[str, str], maps: dict, table: str, labels: dict, intervals: dict | None = None) -> None:
    """Every unordered pair's two directions, for every method, and the order they imply (``analyses``)."""
    from ..evaluate import asymmetry as asym

    t = asym.asymmetry(*_analysis_inputs(stores, maps), intervals=intervals)
    _write(t, table)
    decided = asym.readings(t, labels)
    log.info("wrote %s: %d pairs x %d methods, %d orders decided at level %s%s", table, t[["a", "b"]].drop_duplicates()
             .shape[0], t.method.nunique(), len(decided), (intervals or {}).get("level"),
             "".join("\n  " + s for s in decided))


@step(inputs=_evaluate_closed_set_inputs, job=_analysis_job)
def composition(stores: dict[str, str], maps: dict, table: str, controls: list | None = None,
                intervals: dict | None = None) -> None:
    """Every ordered triple's composed map A -> B -> C against A -> C, and the mean loss per hop (``analyses``)."""
    from ..evaluate import composition as comp

    t, summary = comp.composition(*_analysis_inputs(stores, maps), intervals=intervals, controls=controls or ())
    _write(t, table)
    log.info("wrote %s: %d triples x %d methods; the mean accuracy one more hop costs (loss_per_hop, with its "
             "interval), the mean relative distance between the composed and the direct maps' outputs, and the mean "
             "R2 lost:\n%s", table, len(comp.triples(list(stores))), t.method.nunique(), summary.to_string(index=False))


@step(inputs=_evaluate_closed_set_inputs, job=_analysis_job)
def classifier_view(stores: dict[str, str], maps: dict, table: str, intervals: dict | None = None) -> None:
    """The share of every mapped residual in the row space of the target's classifier, beside the accuracy loss
    and the gap to the analytic map (``analyses``)."""
    from ..evaluate import classifier_view as cv

    t = cv.classifier_view(*_analysis_inputs(stores, maps), intervals=intervals)
    _write(t, table)
    full = sorted(set(t.target[t.sees_all]))
    log.info("wrote %s: %d rows; median share of the residual the classifier sees, per method:\n%s%s", table, len(t),
             t.groupby("method", sort=False).seen_fraction.median().to_string(),
             f"\nclassifiers with full column rank (they see every residual): {', '.join(full)}" if full else "")


def _shared_space_inputs(plan, wc) -> dict:
    return {**eval_stores(plan, wc), "blocks": plan.path("blocks", wc.exp), "map_dirs": plan.map_dirs(wc.exp, ["ridge"])}


def _shared_space_job(plan, wc) -> dict:
    """The evaluation split's stores, the direct ridge maps, the ``shared_space`` and ``mapping`` blocks (its
    penalty), the ``intervals`` block and the ``control``s (the summary leaves them out)."""
    exp = plan.experiments[wc.exp]
    return {"stores": plan.stores(wc.exp, exp.eval_split), "maps": plan.map_paths(wc.exp, ["ridge"])["ridge"],
            "options": exp.spec["shared_space"], "mapping": exp.mapping, "intervals": exp.spec["intervals"],
            "controls": plan.controls(wc.exp)}


@step(inputs=_shared_space_inputs, job=_shared_space_job)
def shared_space(blocks: str, stores: dict[str, str], maps: dict, table: str, options: dict | None = None,
                 mapping: dict | None = None, intervals: dict | None = None, controls: list | None = None) -> None:
    """One shared space fitted from the blocks, a map into it and out of it per network, A -> shared -> B against
    the direct ridge map A -> B for every ordered pair, and what each costs (``analyses``)."""
    from .. import stores as st
    from ..evaluate import shared_space as ss

    bl = st.open_blocks(blocks)
    opened = st.open_matched(stores, need_classifier=True)
    direct = {(a, b): st.read_map(p) for a, row in maps.items() for b, p in row.items()}
    alpha = ss.penalty(options, mapping or {}, direct)
    space = ss.fit(bl, (options or {}).get("dim"), alpha)
    direct_seconds = ss.direct_fit_seconds(bl, alpha)
    t, summary = ss.evaluate(opened, direct, space, blocks=bl, intervals=intervals, controls=controls or ())
    _write(t, table)
    n = len(bl.names)
    log.info("wrote %s: %d ordered pairs through a shared space of %d dimensions (%.1f%% of the block-weighted "
             "joint variance; ridge alpha %g)\ncost: %d maps, %d parameters, fitted in %.3f s from the blocks; the "
             "direct ridge maps: %d maps, %d parameters, %.3f s to fit from the same blocks at the same alpha\n"
             "shared - direct accuracy (mean over pairs, with its interval; worst pair):\n%s", table, len(t), space.k,
             100 * space.explained, alpha, 2 * n, space.parameters, space.seconds, n * (n - 1),
             ss.direct_parameters(bl.dims), direct_seconds, summary.to_string(index=False))


def _layers_inputs(plan, wc) -> dict:
    return {**eval_stores(plan, wc), "blocks": plan.path("blocks", wc.exp)}


def _layers_job(plan, wc) -> dict:
    """The evaluation split's stores, the similarity indices and block, each map method's ``mapping`` keys and the
    ``intervals`` block."""
    from ..fit import methods as mt

    exp = plan.experiments[wc.exp]
    return {"stores": plan.stores(wc.exp, exp.eval_split), "indices": list(exp.spec["similarity"]["indices"]),
            "options": exp.spec["similarity"], "intervals": exp.spec["intervals"],
            "methods": {m: {k: exp.mapping[k] for k in mt.get(m).options} for m in exp.methods}}


@step(inputs=_layers_inputs, job=_layers_job)
def layers(blocks: str, stores: dict[str, str], similarity_table: str, maps_table: str, indices: list,
           options: dict, methods: dict, intervals: dict | None = None) -> None:
    """Layer by layer (``analyses: [layers]``): the indices that read blocks for every pair of (network, layer)
    nodes, and every method's maps from every node into every network's embedding read by its classifier."""
    import time

    from .. import stores as st
    from ..evaluate import indices as ix
    from ..evaluate import layers as ly
    from ..evaluate import neighbours
    from ..evaluate import similarity as sm

    bl = st.open_blocks(blocks, layers=True)
    nodes = ly.nodes_of(bl)
    opened = st.open_matched(stores, need_classifier=True)
    kept, left = ly.block_indices(indices, samples=True)
    evaluation = None
    if ix.needs(kept, ix.SAMPLES, ix.EVAL):
        o, n = ix.options(options), next(iter(opened.values())).n
        rows = neighbours.eval_rows(n, o["knn_max_samples"], o["seed"])
        evaluation = sm.Rows(ly.node_stores(opened, nodes), rows)
        log.info("neighbourhood indices read %d of the evaluation split's %d images of every node (seed %d; at "
                 "most %d)", len(rows), n, o["seed"], o["knn_max_samples"])
    t0 = time.perf_counter()
    sim = ly.layer_similarity(bl, kept, options, eval_samples=evaluation)
    _write(sim, similarity_table)
    log.info("wrote %s: %d rows, indices %s over %d nodes (%s)%s, %.2f s", similarity_table, len(sim),
             ", ".join(kept) or "none", len(nodes), ", ".join(f"{n.network}:{n.layer}" for n in nodes),
             f"; left out, as they need maps between the nodes: {', '.join(left)} (layer_maps.csv has the R2 of "
             "the maps into each embedding)" if left else "", time.perf_counter() - t0)
    t0 = time.perf_counter()
    maps = ly.fit_layer_maps(bl, methods)
    fitted = time.perf_counter() - t0
    t = ly.layer_maps(opened, bl, maps, intervals=intervals)
    _write(t, maps_table)
    first = next(iter(methods))
    view = ly.depth_curves(t, first)
    log.info("wrote %s: %d rows, %d maps per method (%s) fitted in %.2f s; %s accuracy by depth:\n%s", maps_table,
             len(t), len(next(iter(maps.values()))), ", ".join(methods), fitted, first,
             view[["target", "source", "source_layer", "source_dim", "accuracy", "accuracy_low", "accuracy_high",
                   "r2"]].to_string(index=False))


def _layer_sample_efficiency_job(plan, wc) -> dict:
    """As :func:`_layers_job` without the indices, with ``mapping.sample_sizes`` (whether it lists ``all``)."""
    job, exp = _layers_job(plan, wc), plan.experiments[wc.exp]
    return {"stores": job["stores"], "methods": job["methods"], "intervals": job["intervals"],
            "sizes": exp.sample_sizes, "whole": "all" in exp.mapping["sample_sizes"]}


@step(inputs=_layers_inputs, job=_layer_sample_efficiency_job)
def layer_sample_efficiency(blocks: str, stores: dict[str, str], table: str, methods: dict, sizes: list[int],
                            whole: bool, intervals: dict | None = None) -> None:
    """The layers' maps on nested prefixes of the fit split (``analyses: [layers]`` with ``mapping.sample_sizes``),
    measured on the evaluation split like ``tables/layer_maps.csv``."""
    from .. import stores as st
    from ..evaluate import layers as ly
    from ..evaluate import sample_efficiency as se

    bl = st.open_blocks(blocks, layers=True)
    se.check_sizes(sizes, bl.n)
    opened = st.open_matched(stores, need_classifier=True)
    t = ly.layer_sample_efficiency(opened, bl, methods, sizes, whole, intervals, log=log.info)
    _write(t, table)
    first = next(iter(methods))
    view = t[(t.method == first) & (t.source == t.target)].sort_values(["source", "source_depth", "n_fit"])
    log.info("wrote %s: %d rows, sizes %s; %s, each network's layers into its own classifier:\n%s", table, len(t),
             sizes + (["all"] if whole else []), first,
             view.pivot_table(index=["source", "source_layer"], columns="n_fit", values="accuracy", sort=False)
             .round(3).to_string())


def _index_predicts_inputs(plan, wc) -> dict:
    """``tables/closed_set.csv``, and ``tables/similarity.csv`` where the experiment lists indices."""
    out = {"closed_set": plan.path("closed_set", wc.exp)}
    if plan.experiments[wc.exp].indices:
        out["similarity"] = plan.path("similarity", wc.exp)
    return out


def _tables_job(plan, wc) -> dict:
    """The networks in the tables' order, which are ``control``s and the ``intervals`` block."""
    return {"networks": list(plan.experiments[wc.exp].networks), "controls": plan.controls(wc.exp),
            "intervals": plan.experiments[wc.exp].spec["intervals"]}


@step(inputs=_index_predicts_inputs, job=_tables_job)
def index_predicts(closed_set: str, table: str, pairs_table: str, networks: list, controls: list | None = None,
                   intervals: dict | None = None, similarity: str | None = None) -> None:
    """Spearman of every similarity index and fit R2 with mapped accuracy and pct_change across the pairs without a
    control, with intervals from resampling networks; from the tables alone (``analyses``)."""
    import pandas as pd

    from ..evaluate import index_predicts as ip

    closed = pd.read_csv(closed_set)
    sim = pd.read_csv(similarity) if similarity else None
    pairs = ip.pair_values(closed, sim, controls or ())
    plain = [k for k in networks if k not in (controls or ())]
    sym, hi = ip.index_traits(set(pairs.predictor))
    t = ip.predicts(pairs, plain, intervals, sym, hi)
    _write(t, table)
    _write(pairs, pairs_table)
    ridge = t[(t.method == "ridge") & (t.outcome == "accuracy")]
    log.info("wrote %s and %s: %d predictors (%s) over %d ordered pairs of %d networks without a control%s; "
             "Spearman with ridge accuracy:\n%s", table, pairs_table, pairs.predictor.nunique(),
             ", ".join(dict.fromkeys(pairs.predictor)), int(ridge.pairs.max()) if len(ridge) else 0, len(plain),
             "" if sim is not None else " (no similarity.indices listed: the maps' fit R2 alone)",
             ridge[["predictor", "spearman", "spearman_low", "spearman_high", "resamples_defined"]]
             .to_string(index=False))


def _n95_inputs(plan, wc) -> dict:
    return {"efficiency": plan.path("sample_efficiency", wc.exp), "closed_set": plan.path("closed_set", wc.exp)}


def _n95_job(plan, wc) -> dict:
    """Whether ``mapping.sample_sizes`` lists ``all`` (the curves' largest size is then the full map) and the
    ``control``s."""
    exp = plan.experiments[wc.exp]
    return {"whole": "all" in exp.mapping["sample_sizes"], "controls": plan.controls(wc.exp)}


@step(inputs=_n95_inputs, job=_n95_job)
def n95(efficiency: str, closed_set: str, table: str, whole: bool, controls: list | None = None) -> None:
    """The fewest fit samples reaching 95% of the full map's accuracy, per pair and method (``analyses``)."""
    import pandas as pd

    from ..evaluate import index_predicts as ip

    t = ip.n95(pd.read_csv(efficiency), pd.read_csv(closed_set), whole, controls=controls or ())
    _write(t, table)
    plain = t[~t.control]
    log.info("wrote %s: %d pairs x methods, %d never reach 95%% of the full map's accuracy; median n95 per method "
             "without controls:\n%s", table, len(t), int((~t.reached).sum()),
             plain.groupby("method", sort=False).n95.median().to_string() if len(plain) else "(none)")


def _network_table_job(plan, wc) -> dict:
    """The evaluation split's stores, the networks' ``label``s and which are ``control``s."""
    return {"stores": plan.stores(wc.exp, plan.experiments[wc.exp].eval_split), "labels": plan.labels(wc.exp),
            "controls": plan.controls(wc.exp)}


@step(inputs=eval_stores, job=_network_table_job)
def network_table(stores: dict[str, str], labels: dict, table: str, controls: list | None = None) -> None:
    """Table 1: each network's provenance, feature dimension, parameters and native top-1, and a loud warning
    for a network whose top-1 makes no sense (at chance, or far below the others) that is not a control."""
    from .. import stores as st
    from ..evaluate import network_table as nt

    opened = st.open_matched(stores)
    t = nt.describe(opened, labels, controls or ())
    for r in t.itertuples():
        if r.accuracy_check in ("near chance", "far below the others"):
            log.warning("network %r: native top-1 %.3f on %d labelled images is %s (chance %.3f, the most common "
                        "label's share; median of the others %.3f) and it is not marked control: check its "
                        "preprocessing (input_range, mean/std, channel order, input_size) before reading any table; "
                        "every table that reads its features carries this", r.network, r.top1, r.n,
                        r.accuracy_check, r.chance, t[(t.network != r.network) & (t.accuracy_check != "control")]
                        .top1.median())
        elif r.accuracy_check == "no labels":
            log.info("network %r: no labelled images on this split, so its native accuracy cannot be checked",
                     r.network)
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.6g")
    log.info("wrote %s:\n%s", table, t[["network", "feature_dim", "parameters", "input_size", "top1"]].to_string())


def _pairs_features(stores: dict[str, str]):
    """Whole stores of split ``pairs`` in memory (as stored, float32: rows become float64 where used), their ids
    and attributes."""
    import numpy as np

    from .. import stores as st

    opened = st.open_matched(stores)
    first = next(iter(opened.values()))
    feats = {k: np.asarray(s.embeddings[:]) for k, s in opened.items()}
    return feats, first.ids, {k: s.attrs for k, s in opened.items()}


def _similarity_inputs(plan, wc) -> dict:
    """The blocks; the ridge maps and the fit or evaluation split's stores where an index needs them."""
    from ..evaluate import indices as ix
    from .fit import fit_stores

    wanted = plan.experiments[wc.exp].indices
    out = {"blocks": plan.path("blocks", wc.exp)}
    if ix.needs(wanted, ix.MAPS):
        out["map_dirs"] = plan.map_dirs(wc.exp, ["ridge"])
    read = [split(plan, wc) for which, split in ((ix.FIT, fit_stores), (ix.EVAL, eval_stores))
            if ix.needs(wanted, ix.SAMPLES, which)]
    if read:
        out.update(read[0])
        out["network_stores"] = [s for r in read for s in r["network_stores"]]
    return out


def _similarity_job(plan, wc) -> dict:
    """The ``similarity`` block; the ridge maps or the fit or evaluation split's stores where an index needs them."""
    from ..evaluate import indices as ix

    exp = plan.experiments[wc.exp]
    return {"indices": exp.indices, "options": exp.spec["similarity"],
            "ridge_maps": plan.map_paths(wc.exp, ["ridge"])["ridge"] if ix.needs(exp.indices, ix.MAPS) else {},
            "stores": plan.stores(wc.exp, exp.fit_split) if ix.needs(exp.indices, ix.SAMPLES, ix.FIT) else None,
            "eval_stores": plan.stores(wc.exp, exp.eval_split) if ix.needs(exp.indices, ix.SAMPLES, ix.EVAL)
            else None}


@step(inputs=_similarity_inputs, job=_similarity_job)
def similarity(blocks: str, indices: list[str], options: dict, ridge_maps: dict, stores: dict | None,
               table: str, eval_stores: dict | None = None) -> None:
    """Similarity indices of every pair of networks from the block store (its blocks and squared-norm statistics;
    indices that need them: the ridge maps' fit R2, ``similarity.max_samples`` evenly spaced rows of the fit
    split's ``stores``, or ``similarity.knn_max_samples`` rows of the evaluation split's ``eval_stores`` drawn by
    ``similarity.seed``, read one network at a time)."""
    from .. import stores as st
    from ..evaluate import indices as ix
    from ..evaluate import neighbours
    from ..evaluate import similarity as sim

    bl = st.open_blocks(blocks)
    r2 = {(a, b): float(st.open_group(p, "map store").attrs["fit_r2"])
          for a, row in ridge_maps.items() for b, p in row.items()}
    samples = None
    if stores:
        opened = st.open_matched(stores)
        rows = sim.sample_rows(len(next(iter(opened.values())).ids), options["max_samples"])
        samples = {k: st.read_rows(s, rows) for k, s in opened.items()}
        log.info("indices comparing samples read %d of the fit split's images", len(rows))
    evaluation = None
    if eval_stores:
        opened = st.open_matched(eval_stores)
        o = ix.options(options)
        rows = neighbours.eval_rows(len(next(iter(opened.values())).ids), o["knn_max_samples"], o["seed"])
        evaluation = sim.Rows(opened, rows)
        log.info("neighbourhood indices read %d of the evaluation split's %d images (seed %d; at most %d)",
                 len(rows), len(next(iter(opened.values())).ids), o["seed"], o["knn_max_samples"])
    t = sim.similarity(bl, indices, options, fit_r2=r2, samples=samples, eval_samples=evaluation)
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.8g")
    log.info("wrote %s: %d rows, indices %s over %d fit samples", table, len(t), ", ".join(indices), bl.n)


def _sample_efficiency_inputs(plan, wc) -> dict:
    from .fit import fit_stores

    return {**eval_stores(plan, wc), "blocks": plan.path("blocks", wc.exp), "map_dirs": plan.map_dirs(wc.exp),
            "fit_network_stores": fit_stores(plan, wc)["network_stores"]}


def _sample_efficiency_job(plan, wc) -> dict:
    """The evaluation and fit splits' stores, ``mapping.sample_sizes``, the ``mapping`` block and the full maps."""
    exp = plan.experiments[wc.exp]
    return {"stores": plan.stores(wc.exp, exp.eval_split), "fit_stores": plan.stores(wc.exp, exp.fit_split),
            "sizes": exp.sample_sizes, "whole": "all" in exp.mapping["sample_sizes"], "mapping": exp.mapping,
            "maps": plan.map_paths(wc.exp), "intervals": exp.spec["intervals"]}


@step(inputs=_sample_efficiency_inputs, job=_sample_efficiency_job)
def sample_efficiency(blocks: str, stores: dict[str, str], sizes: list[int], whole: bool, mapping: dict,
                      maps: dict, table: str, fit_stores: dict[str, str] | None = None,
                      intervals: dict | None = None) -> None:
    """Maps fitted on nested prefixes of the fit split, measured on the evaluation split like the full maps;
    prefixes of fewer samples than the widest network's features are fitted from the fit split's first rows
    in the sample space where a method can (``fit_stores``)."""
    import numpy as np

    from .. import stores as st
    from ..evaluate import sample_efficiency as se
    from ..fit import FitError

    bl = st.open_blocks(blocks)
    se.check_sizes(sizes, bl.n)
    subsets = se.prefix_blocks(bl, sizes)
    full = {m: _read_maps(paths) for m, paths in maps.items()}
    opened = st.open_matched(stores, need_classifier=True)
    rows = None
    narrow = [m for m in sizes if m < max(bl.dims)]
    if fit_stores and narrow:
        fit = st.open_matched(fit_stores)
        rows = {k: st.read_rows(s, np.arange(max(narrow))) for k, s in fit.items()}
        log.info("read the fit split's first %d rows for the prefixes below %d features", max(narrow), max(bl.dims))
    try:
        t = se.sample_efficiency(opened, full, subsets, bl.n if whole else None, mapping, log=log.info, first_rows=rows,
                                 intervals=intervals)
    except FitError as e:
        raise FitError(f"mapping.sample_sizes: {e}") from None
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.6g")
    log.info("wrote %s: %d rows, sizes %s", table, len(t), sizes + (["all"] if whole else []))


def _evaluate_open_set_inputs(plan, wc) -> dict:
    return {**pairs_stores(plan, wc), "pairs": plan.pairs_file(wc.exp)}


def _evaluate_open_set_job(plan, wc) -> dict:
    """The stores of split ``pairs`` and the ``mapping`` block."""
    from ..plan import PAIRS_SPLIT

    exp = plan.experiments[wc.exp]
    return {"stores": plan.stores(wc.exp, PAIRS_SPLIT), "mapping": exp.mapping, "controls": plan.controls(wc.exp),
            "intervals": exp.spec["intervals"]}


@step(inputs=_evaluate_open_set_inputs, job=_evaluate_open_set_job)
def evaluate_open_set(stores: dict[str, str], pairs: str, table: str, folds_table: str, matrix: str, meta: str,
                      mapping: dict, threads: int = 1, controls: list | None = None,
                      intervals: dict | None = None) -> None:
    """Table 6: 10-fold verification through per-fold maps, with its per-fold table and metadata, and a loud
    warning for a network whose own verification accuracy makes no sense (at chance, or far below the others)
    that is not a control."""
    import json

    from ..data.pairs import read_pairs
    from ..evaluate import common, verification
    from ..evaluate.network_table import accuracy_check
    from ..fit.methods.ridge import alphas_of

    p = read_pairs(pairs)
    feats, ids, attrs = _pairs_features(stores)
    log.info("%d pairs in %d folds over %d images, %d networks", len(p), p.n_folds, len(ids), len(feats))
    t, f = verification.verification(feats, ids, p, mapping, threads=threads, intervals=intervals)
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.6g")
    f.to_csv(folds_table, index=False, float_format="%.8g")
    common.matrix(t, list(feats), "accuracy_mean").to_csv(matrix, float_format="%.6g")
    native = t[t.method == "native"].set_index("source").accuracy_mean
    chance = max(float(p.same.mean()), 1.0 - float(p.same.mean()))
    checks = accuracy_check(native.to_dict(), dict.fromkeys(native.index, len(p)), chance, controls or ())
    for k, check in checks.items():
        if check in ("near chance", "far below the others"):
            log.warning("network %r: its own verification accuracy %.3f over %d pairs is %s (chance %.3f; median of "
                        "the others %.3f) and it is not marked control: check its preprocessing (input_range, "
                        "mean/std, channel order, alignment) before reading any table", k, native[k], len(p), check,
                        chance, native.drop(index=[k, *(controls or ())], errors="ignore").median())
    alphas = alphas_of(mapping["alpha"])
    info = {"pairs": pairs, "folds": p.n_folds, "pairs_per_fold": p.per_fold, "n_pairs": len(p),
            "n_images": len(ids), "alpha": alphas if isinstance(mapping["alpha"], list) else alphas[0],
            "alpha_selection": "inner cross-validation over the other folds" if len(alphas) > 1 else "fixed",
            "precision": mapping["precision"], "methods": list(mapping["methods"]), "scale": mapping["scale"],
            "networks": {k: {"store": stores[k], "dim": int(feats[k].shape[1]),
                             "l2_normalised": a.get("l2_normalised"), "flip": bool(a.get("flip", False)),
                             "alignment": a.get("alignment"), "accuracy_check": checks.get(k)}
                         for k, a in attrs.items()}}
    Path(meta).write_text(json.dumps(info, indent=1, default=str))
    for r in t.itertuples():
        log.info("%s -> %s %s: %.4f +- %.4f (std over folds), interval %.4f to %.4f", r.source, r.target, r.method,
                 r.accuracy_mean, r.accuracy_std, r.accuracy_low, r.accuracy_high)


def _evaluate_identification_job(plan, wc) -> dict:
    """The stores of split ``pairs``, the ``mapping`` block and ``identification.folds`` / ``.seed``."""
    from ..plan import PAIRS_SPLIT

    exp = plan.experiments[wc.exp]
    return {"stores": plan.stores(wc.exp, PAIRS_SPLIT), "mapping": exp.mapping,
            "n_folds": exp.identification["folds"], "seed": exp.identification["seed"], "intervals": exp.spec["intervals"]}


@step(inputs=pairs_stores, job=_evaluate_identification_job)
def evaluate_identification(stores: dict[str, str], table: str, matrix: str, n_folds: int, seed: int,
                            mapping: dict, threads: int = 1, intervals: dict | None = None) -> None:
    """Rank-1 and rank-5 identification of each network's probes in every network's gallery, with intervals."""
    from ..evaluate import common, identification

    feats, ids, _ = _pairs_features(stores)
    t = identification.identification(feats, ids, n_folds=int(n_folds), seed=int(seed), mapping=mapping,
                                      log=log.info, threads=threads, intervals=intervals)
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(table, index=False, float_format="%.6g")
    common.matrix(t, list(feats), "rank1").to_csv(matrix, float_format="%.6g")
    log.info("wrote %s: %d probes, gallery of %.0f identities per fold", table, t.n_probes.iloc[0],
             t.gallery_size.iloc[0])


__all__ = ['asymmetry', 'classifier_view', 'composition', 'evaluate_closed_set', 'evaluate_identification', 'evaluate_open_set', 'index_predicts', 'layer_sample_efficiency', 'layers', 'n95', 'network_table', 'sample_efficiency', 'shared_space', 'similarity']
