"""The task registry is the one place that says what a task writes and asks: the schema, the plan's outputs and
the rules agree with it, and the plan decides nothing by a task's name."""

import re

import pytest

from embmap import config, plan, tasks
from helpers import ROOT, synthetic_stores


def test_the_schema_lists_exactly_the_registered_tasks():
    task = config.schema()["$defs"]["experiment"]["properties"]["task"]
    assert task["enum"] == list(tasks.TASKS)
    for t in tasks.TASKS.values():
        assert f"{t.name} = " in " ".join(task["description"].split()), t.name


def test_every_task_names_outputs_the_plan_knows_and_rules_write():
    rules = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    written = set(re.findall(r'P\.pattern\("(\w+)"', rules))
    for t in tasks.TASKS.values():
        for key in [*t.tables, *t.figures]:
            assert key in plan.OUTPUTS, (t.name, key)
            assert key in written, f"task {t.name}: no rule writes {key}"
        assert set(t.heatmaps) <= set(t.figures)
        for figure, (matrix, _, _) in t.heatmaps.items():
            assert matrix in t.tables, (t.name, figure, matrix)


def test_the_analyses_are_the_schemas_and_each_is_planned_where_the_experiment_lists_it(tmp_path):
    from embmap.config import ConfigError

    enum = config.schema()["$defs"]["experiment"]["properties"]["analyses"]["items"]["enum"]
    assert enum == [a for t in tasks.TASKS.values() for a in t.analyses]
    rules = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    written = set(re.findall(r'P\.pattern\("(\w+)"', rules))
    for t in tasks.TASKS.values():
        for outputs in t.analyses.values():
            assert set(outputs) <= set(plan.OUTPUTS) and set(outputs) <= written, outputs
    dirs = synthetic_stores(tmp_path, names=("a", "b", "c"), dims=(4, 4, 4))
    exp = {"task": "closed_set", "dataset": {"kind": "embeddings"},
           "networks": {k: {"source": "zarr", "path": d} for k, d in dirs.items()}}

    def outputs(**keys):
        return [o.split("/byo/")[1] for o in plan.Plan({"experiments": {"byo": {**exp, **keys}}}, tmp_path).outputs("byo")]

    default = outputs()  # the schema's default: the two that cost one evaluation pass each
    assert "tables/asymmetry.csv" in default and "tables/classifier_view.csv" in default
    assert "figures/asymmetry.png" in default and "tables/composition.csv" not in default
    assert not [o for o in outputs(analyses=[]) if "asymmetry" in o or "classifier_view" in o]
    every = outputs(analyses=["composition", "asymmetry", "classifier_view"])
    assert {"tables/composition.csv", "figures/composition.png", "figures/composition.svg"} <= set(every)
    exp["networks"].pop("c")
    with pytest.raises(ConfigError, match=r"experiments\.byo\.analyses: composition .* three networks"):
        outputs(analyses=["composition"])
    assert "tables/asymmetry.csv" in outputs(analyses=["asymmetry"])  # two networks are one pair


def test_the_shared_space_index_predicts_and_n95_are_planned_or_refused_naming_the_missing_key(tmp_path):
    from embmap.config import ConfigError

    dirs = synthetic_stores(tmp_path, names=("a", "b", "c"), dims=(4, 4, 4))
    exp = {"task": "closed_set", "dataset": {"kind": "embeddings"},
           "networks": {k: {"source": "zarr", "path": d} for k, d in dirs.items()}}

    def outputs(**keys):
        return [o.split("/byo/")[1] for o in plan.Plan({"experiments": {"byo": {**exp, **keys}}}, tmp_path).outputs("byo")]

    assert not [o for o in outputs() if "shared_space" in o or "index_predicts" in o or "n95" in o]
    got = set(outputs(analyses=["shared_space", "index_predicts"], shared_space={"dim": 3}))
    assert {"tables/shared_space.csv", "figures/shared_space.png", "tables/index_predicts.csv",
            "tables/index_predicts_pairs.csv", "figures/index_predicts.svg"} <= got
    assert "tables/similarity.csv" not in got  # index_predicts works without indices: the maps' fit R2 alone
    with pytest.raises(ConfigError, match=r"experiments\.byo: analyses lists n95, .* mapping\.sample_sizes is not set"):
        outputs(analyses=["n95"])
    assert "tables/n95.csv" in outputs(analyses=["n95"], mapping={"sample_sizes": [32, "all"]})
    with pytest.raises(ConfigError, match="shared_space.dim"):
        outputs(shared_space={"dim": 0})


def test_the_plan_decides_nothing_by_a_tasks_name():
    source = (ROOT / "workflow" / "embmap" / "plan.py").read_text()
    assert not re.search(r"task\s*[!=]=", source), "ask the task (embmap.tasks), not its name"


def test_a_task_declares_its_outputs_splits_and_checks(tmp_path, monkeypatch):
    """A task added to the registry alone (here a variant of closed_set without Table 1, evaluated on both
    splits) gives the plan its outputs, splits and checks."""
    import dataclasses

    from embmap.config import ConfigError

    base = tasks.TASKS["closed_set"]
    seen = []

    def check(p, exp, where, ctx):
        seen.append(where)
        base.check(p, exp, where, ctx)

    toy = dataclasses.replace(base, name="closed_set_lite", figures={}, heatmaps={}, check=check, like="closed_set",
                              tables={k: v for k, v in base.tables.items() if k != "networks_table"}, analyses={})
    monkeypatch.setitem(tasks.TASKS, toy.name, toy)
    patched = config.schema()
    patched["$defs"]["experiment"]["properties"]["task"]["enum"].append(toy.name)
    monkeypatch.setattr(config, "_schema", lambda path: patched)  # no dataset kind names it: like= serves it

    dirs = synthetic_stores(tmp_path, names=("a", "b"), dims=(4, 4))
    c = {"experiments": {"byo": {"task": toy.name, "dataset": {"kind": "embeddings"},
                                 "networks": {k: {"source": "zarr", "path": d} for k, d in dirs.items()}}}}
    p = plan.Plan(c, tmp_path)
    assert seen == ["experiments.byo"]
    assert p.outputs("byo") == ["results/byo/tables/closed_set.csv", "results/byo/tables/closed_set_matrix.csv"]
    assert p.experiments["byo"].splits == ["train", "test"]
    c["experiments"]["byo"]["eval_split"] = "train"
    with pytest.raises(ConfigError, match=r"experiments\.byo\.eval_split: equals fit_split"):
        plan.Plan(c, tmp_path)


def test_tasks_that_share_a_rule_declare_its_outputs_alike_and_one_name_is_one_path(monkeypatch):
    import dataclasses

    base = tasks.TASKS["closed_set"]
    common = {k: v for k, v in plan.OUTPUTS.items()
              if k not in {n for t in tasks.TASKS.values()
                           for n in [*t.tables, *t.figures, *(o for a in t.analyses.values() for o in a)]}}
    lite = dataclasses.replace(base, name="closed_set_lite", figures={},
                               tables={"closed_set": base.tables["closed_set"]})
    monkeypatch.setitem(tasks.TASKS, lite.name, lite)
    assert plan._task_outputs(common)["closed_set"] == "tables/closed_set.csv"
    other = dataclasses.replace(lite, tables={"closed_set": "tables/lite.csv"})
    monkeypatch.setitem(tasks.TASKS, lite.name, other)
    with pytest.raises(ValueError, match=r"task closed_set_lite: output 'closed_set' at tables/lite\.csv, but task "
                                         r"closed_set names it tables/closed_set\.csv"):
        plan._task_outputs(common)
