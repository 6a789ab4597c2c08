"""The analyses' steps from plain paths (as their rules call them): map stores in, tables and figures out."""

import logging

import pandas as pd

from embmap import steps, stores
from embmap.evaluate import asymmetry, classifier_view, composition
from helpers import linear_experiment


def test_the_steps_write_the_tables_and_figures_and_log_the_loss_per_hop(tmp_path, caplog):
    ev, maps, _, _ = linear_experiment(tmp_path / "stores")
    paths = {m: {a: {} for a in ev} for m in maps}
    for m, fitted in maps.items():
        for (a, b), f in fitted.items():
            paths[m][a][b] = str(tmp_path / "maps" / m / a / f"{b}.zarr")
            stores.write_map(paths[m][a][b], f)
    eval_paths = {k: s.path for k, s in ev.items()}
    labels = {"a": "A", "b": "B", "c": "C"}
    intervals = {"resamples": 100}
    out = {name: str(tmp_path / "tables" / f"{name}.csv") for name in ("asymmetry", "composition", "classifier_view")}
    with caplog.at_level(logging.INFO, logger="embmap"):
        steps.asymmetry(stores=eval_paths, maps=paths, table=out["asymmetry"], labels=labels, intervals=intervals)
        steps.composition(stores=eval_paths, maps=paths, table=out["composition"], controls=[], intervals=intervals)
        steps.classifier_view(stores=eval_paths, maps=paths, table=out["classifier_view"], intervals=intervals)
    assert "A's features contain C's" in caplog.text and "loss_per_hop" in caplog.text
    for name, module in (("asymmetry", asymmetry), ("composition", composition), ("classifier_view", classifier_view)):
        assert list(pd.read_csv(out[name]).columns) == module.COLUMNS
        figures = [str(tmp_path / f"{name}.{ext}") for ext in ("png", "svg")]
        getattr(steps, f"plot_{name}")(table=out[name], png=figures[0], svg=figures[1], labels=labels,
                                       controls=["c"], title=f"toy: {name}")
        assert all((tmp_path / f"{name}.{ext}").stat().st_size > 1000 for ext in ("png", "svg"))


def test_the_shared_space_index_predicts_and_n95_steps_write_their_tables_and_figures(tmp_path, caplog):
    from embmap.evaluate import closed_set, index_predicts, shared_space
    from embmap.fit import gram

    ev, maps, _, _ = linear_experiment(tmp_path / "stores", methods=("ridge",))
    paths = {a: {} for a in ev}
    for (a, b), f in maps["ridge"].items():
        paths[a][b] = str(tmp_path / "maps" / "ridge" / a / f"{b}.zarr")
        stores.write_map(paths[a][b], f)
    fit = stores.open_matched({k: s.path.replace("test.zarr", "train.zarr") for k, s in ev.items()})
    blocks = str(tmp_path / "blocks.zarr")
    stores.write_blocks(blocks, gram.cross_products({k: s.embeddings for k, s in fit.items()}, block_rows=64))
    eval_paths = {k: s.path for k, s in ev.items()}
    t = {name: str(tmp_path / "tables" / f"{name}.csv") for name in
         ("shared_space", "index_predicts", "index_predicts_pairs", "n95", "closed_set", "sample_efficiency")}
    intervals = {"resamples": 100}
    closed = closed_set.evaluate(ev, maps, intervals=intervals)
    (tmp_path / "tables").mkdir()
    closed.to_csv(t["closed_set"], index=False)
    curve = closed[closed.method == "ridge"][["source", "target", "method", "accuracy"]]
    pd.concat([curve.assign(n_fit=32, accuracy=curve.accuracy / 2), curve.assign(n_fit=400)]).to_csv(
        t["sample_efficiency"], index=False)
    with caplog.at_level(logging.INFO, logger="embmap"):
        steps.shared_space(blocks=blocks, stores=eval_paths, maps=paths, table=t["shared_space"],
                           options={"dim": 8}, mapping={"alpha": 1.0}, intervals=intervals, controls=["c"])
        steps.index_predicts(closed_set=t["closed_set"], table=t["index_predicts"],
                             pairs_table=t["index_predicts_pairs"], networks=list(ev), controls=[],
                             intervals=intervals)
        steps.n95(efficiency=t["sample_efficiency"], closed_set=t["closed_set"], table=t["n95"], whole=True)
    assert "6 maps, " in caplog.text and "the direct ridge maps: 6 maps" in caplog.text
    assert "no similarity.indices listed" in caplog.text
    assert list(pd.read_csv(t["shared_space"]).columns) == shared_space.COLUMNS
    assert list(pd.read_csv(t["index_predicts"]).columns) == index_predicts.COLUMNS
    n95 = pd.read_csv(t["n95"])
    assert list(n95.columns) == index_predicts.N95_COLUMNS and (n95.n95 == 400).all()
    for name, kwargs in (("shared_space", {"table": t["shared_space"], "labels": {}, "controls": ["c"]}),
                         ("index_predicts", {"table": t["index_predicts"], "pairs": t["index_predicts_pairs"]})):
        figures = [str(tmp_path / f"{name}.{ext}") for ext in ("png", "svg")]
        getattr(steps, f"plot_{name}")(png=figures[0], svg=figures[1], title=f"toy: {name}", **kwargs)
        assert all((tmp_path / f"{name}.{ext}").stat().st_size > 1000 for ext in ("png", "svg"))
