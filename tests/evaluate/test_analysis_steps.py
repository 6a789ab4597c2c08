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
