"""Property: any malformed config is refused with a ConfigError that names a key, never a deep traceback.

Hypothesis mutates valid configs (the digits demo and a bring-your-own one):
it replaces any value by a value of another type (NaN and infinities
included), deletes any key, or adds an unknown key anywhere. Every outcome
must be either a config the plan accepts or a :class:`embmap.ConfigError`
whose message starts with the dotted key at fault, and that key must lie on
the path of the mutation. A second property writes configs as YAML text with
one key given twice somewhere: the strict reader names that key and its lines.
"""

import copy

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embmap import plan, steps
from embmap.fit import methods as mapmethods
from embmap.config import ConfigError, check as check_config, dotted
from helpers import ROOT, synthetic_stores

DEMO = yaml.safe_load((ROOT / "config.yaml").read_text())

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(width=32), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=5)


def _paths(node, prefix=()):
    """Every (path, value) in a nested dict/list config."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated(draw, base):
    config = copy.deepcopy(base)
    paths = [p for p, _ in _paths(config)]
    kind = draw(st.sampled_from(["replace", "delete", "add", "transplant"]))
    exps = list(config.get("experiments", {}))
    if kind == "transplant" and len(exps) > 1:
        a, b = draw(st.permutations(exps))[:2]
        inside = [p[2:] for p in paths if len(p) > 2 and p[:2] == ("experiments", a)
                  and all(isinstance(k, str) for k in p)]
        rest = draw(st.sampled_from(inside))
        parent = config["experiments"][b]
        for k in rest[:-1]:  # create the missing blocks on the way
            if not isinstance(parent.get(k), dict):
                parent[k] = {}
            parent = parent[k]
        parent[rest[-1]] = copy.deepcopy(_get(base, ("experiments", a) + rest))
        return config, ("experiments", b) + rest, kind
    if kind in ("add", "transplant"):
        dicts = [p for p, v in _paths(config) if isinstance(v, dict)]
        where = draw(st.sampled_from(dicts))
        key = draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in _get(config, where)))
        _get(config, where)[key] = draw(values)
        return config, where + (key,), kind
    where = draw(st.sampled_from([p for p in paths if p]))
    parent, last = _get(config, where[:-1]), where[-1]
    if kind == "delete":
        if isinstance(parent, list):
            parent.pop(last)
        else:
            del parent[last]
    else:
        old = parent[last]
        new = draw(values.filter(lambda v: type(v) is not type(old)))
        parent[last] = new
    return config, where, kind


def _get(node, path):
    for k in path:
        node = node[k]
    return node


def _every_job(p):
    """Ask the plan for the inputs and arguments of every job the run would have: none may fail."""
    from types import SimpleNamespace

    def ask(rule, **wc):
        w = SimpleNamespace(**wc)
        p.job(rule)(w)
        if rule in steps.INPUTS:
            p.inputs(rule)(w)

    for exp, e in p.experiments.items():
        ask("prepare_split", exp=exp)
        if e.kind.pairs == "written":
            ask("write_pairs", exp=exp)
        for key, net in e.networks.items():
            if net.trained_here:
                ask("train_network", exp=exp, network=key)
            if net.extracted_here:
                for split in e.splits:
                    ask("extract", exp=exp, network=key, split=split)
            if p.aligned(exp, key):
                ask("detect_faces", exp=exp)
                ask("align_faces", exp=exp, align=p.aligned(exp, key).rsplit("/", 1)[1][:-5])
        ask("check_stores", exp=exp)
        if e.task == "closed_set":
            for j in range(e.shards):
                ask("cross_products_shard", exp=exp, shard=str(j))
            ask("cross_products", exp=exp)
            for m in mapmethods.fitted(e.methods):
                if m.jobs == mapmethods.SOURCE_JOBS:
                    for key in e.networks:
                        ask("fit_maps", exp=exp, method=m.name, source=key)
                else:
                    ask("fit_method_maps", exp=exp, method=m.name)
            for rule in ("evaluate_closed_set", "network_table", "plot_closed_set"):
                ask(rule, exp=exp)
        else:
            for rule in ("evaluate_open_set", "evaluate_identification", "plot_open_set", "plot_identification"):
                ask(rule, exp=exp)
    p.targets()


def _check(config, where, tmp_path, kind=None):
    try:
        check_config(config)
        _every_job(plan.Plan(config, tmp_path))
    except ConfigError as e:
        msg = str(e)
        on_path = [dotted(where[:i]) for i in range(len(where) + 1)]
        inside = dotted(where) + "."  # or a key within the mutated value
        if kind == "transplant":  # a transplanted key may make its new siblings wrong (a kind, a task)
            inside = dotted(where[:-1]) + "."
        assert msg.startswith(inside) or any(msg.startswith(k + ": ") or msg.startswith(k + ", ") for k in on_path), (
            f"mutation at {dotted(where)!r} reported as: {msg}")
    # any other exception propagates and fails the property


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated(DEMO))
def test_mutated_demo_config_fails_naming_the_key(case, tmp_path):
    config, where, kind = case
    _check(config, where, tmp_path, kind)


@pytest.fixture(scope="module")
def byo(tmp_path_factory):
    root = tmp_path_factory.mktemp("byo")
    dirs = synthetic_stores(root, names=("a", "b"), dims=(4, 3), n_train=20, n_test=10)
    config = {"experiments": {"mine": {"task": "closed_set", "dataset": {"kind": "embeddings"},
                                       "fit_split": "train", "eval_split": "test", "mapping": {"alpha": 1.0},
                                       "networks": {k: {"source": "zarr", "path": d} for k, d in dirs.items()}}}}
    return config, root


@settings(max_examples=200, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_bring_your_own_config_fails_naming_the_key(byo, data):
    base, root = byo
    config, where, kind = data.draw(mutated(base))
    _check(config, where, root, kind)


def _mappings(node, prefix=()):
    if isinstance(node, dict):
        yield prefix
        for k, v in node.items():
            yield from _mappings(v, prefix + (k,))


def _yaml_with_duplicate(config, where, key):
    """YAML text of ``config`` in which mapping ``where`` gives ``key`` (already there) a second time, last."""
    def dump(node, path, indent):
        pad = "  " * indent
        lines = []
        if isinstance(node, dict):
            items = list(node.items())
            if path == where:
                items.append((key, node[key]))
            for k, v in items:
                head = f"{pad}{yaml.safe_dump(k, default_flow_style=True).strip().removesuffix('...').strip()}:"
                if isinstance(v, (dict, list)) and v:
                    lines.append(head)
                    lines += dump(v, path + (k,), indent + 1)
                else:
                    lines.append(f"{head} {yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}")
        else:
            for i, v in enumerate(node):
                if isinstance(v, (dict, list)) and v:
                    lines.append(f"{pad}-")
                    lines += dump(v, path + (i,), indent + 1)
                else:
                    lines.append(f"{pad}- {yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}")
        return lines
    return "\n".join(dump(config, (), 0)) + "\n"


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_key_given_twice_anywhere_is_named_with_its_lines(data, tmp_path):
    from embmap.config import read_file

    where = data.draw(st.sampled_from([p for p in _mappings(DEMO) if _get(DEMO, p)]))
    key = data.draw(st.sampled_from(sorted(_get(DEMO, where))))
    path = tmp_path / "config.yaml"
    path.write_text(_yaml_with_duplicate(DEMO, where, key))
    with pytest.raises(ConfigError) as e:
        read_file(path)
    lines = path.read_text().splitlines()
    msg = str(e.value)
    assert msg.startswith(f"{dotted((*where, key))}: given twice in {path} (lines "), msg
    first, second = (int(x) for x in msg.split("(lines ")[1].split(")")[0].split(" and "))
    for n in (first, second):
        assert lines[n - 1].lstrip(" -").startswith(f"{key}:"), (n, lines[n - 1])
    assert read_file(ROOT / "config.yaml") == DEMO  # the file without duplicates reads as before
