"""Table 1 and its sanity check of native accuracy: a preprocessing mistake the classifier check cannot see (a
wrong input_range, a missing mean/std, swapped channels) puts a network at chance, and the table says so."""

import logging

import numpy as np
import pandas as pd
import pytest

from embmap import steps, stores
from embmap.evaluate import network_table as nt
from helpers import synthetic_stores


def test_chance_is_the_most_common_labels_share():
    assert nt.chance_rate(np.array([0, 0, 0, 1, 2, -1, -1])) == pytest.approx(3 / 5)
    assert np.isnan(nt.chance_rate(np.array([-1, -1])))


@pytest.mark.parametrize("acc, n, says", [(0.26, 200, "near chance"), (0.33, 200, "near chance"),
                                          (0.40, 200, "far below the others"), (0.80, 200, "ok"),
                                          (0.33, 10_000, "far below the others")])
def test_a_top1_within_three_standard_errors_of_chance_or_far_below_the_others_is_flagged(acc, n, says):
    # chance 0.25 on 200 images: standard error 0.031, so up to 0.342 is "near chance"; the others sit near 0.85
    top1 = {"x": acc, "a": 0.85, "b": 0.83, "rnd": 0.24}
    got = nt.accuracy_check(top1, dict.fromkeys(top1, n), 0.25, controls=("rnd",))
    assert got["x"] == says and got["a"] == got["b"] == "ok" and got["rnd"] == "control"


def test_no_labels_cannot_be_checked():
    assert nt.accuracy_check({"a": float("nan")}, {"a": 0}, float("nan")) == {"a": "no labels"}


def _scrambled(dirs, name, rng):
    """Rewrite ``name``'s test store with its features permuted across images: its classifier is still its own
    (C f + b is what the model computes) but reads nothing, as after a wrong input_range."""
    s = stores.open_embeddings(f"{dirs[name]}/test.zarr")
    f = s.embeddings[:]
    w, b = s.classifier()
    stores.write_embeddings(f"{dirs[name]}/test_bad.zarr", f[rng.permutation(len(f))], s.ids, s.labels,
                            classifier=(w, b), chunk_rows=64, network=name, source="zarr", split="test")
    return f"{dirs[name]}/test_bad.zarr"


def test_the_table_and_the_log_flag_a_network_at_chance_that_is_not_a_control(tmp_path, caplog):
    dirs = synthetic_stores(tmp_path, names=("a", "b", "c", "rnd"), dims=(8, 6, 7, 8), random_control="rnd")
    paths = {k: f"{d}/test.zarr" for k, d in dirs.items()}
    paths["c"] = _scrambled(dirs, "c", np.random.default_rng(0))
    table = tmp_path / "networks.csv"
    with caplog.at_level(logging.WARNING, logger="embmap"):
        steps.network_table(paths, {k: k for k in paths}, str(table), controls=["rnd"])
    t = pd.read_csv(table).set_index("network")
    assert list(pd.read_csv(table).columns) == nt.COLUMNS
    assert t.loc["a", "accuracy_check"] == t.loc["b", "accuracy_check"] == "ok"
    assert t.loc["c", "accuracy_check"] == "near chance" and t.loc["rnd", "accuracy_check"] == "control"
    assert t.chance.nunique() == 1 and 0.25 <= t.chance.iloc[0] < 0.5
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].startswith("network 'c': native top-1") and "input_range" in warned[0]
