"""The config: its schema, its one validation and its one filling of defaults.

Every default value lives in ``workflow/schemas/config.schema.yaml`` and
nowhere else. :func:`load` validates a config against the schema (an error
names the key at fault in one line, :class:`ConfigError`) and returns a copy
with every default filled in, so the rest of the package reads values and
never repeats a default.

Standard library only at import time (``jsonschema`` and ``yaml``, which
Snakemake itself needs, are imported when used): the Snakefile imports this
module while parsing, before any rule environment exists.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from functools import lru_cache
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config problem; the message starts with the dotted key at fault."""


def dotted(path) -> str:
    """A config path as users write it: ``experiments.digits.mapping.alpha``; odd keys are quoted."""
    parts = [str(p) if re.fullmatch(r"[A-Za-z0-9_-]+", str(p)) else json.dumps(str(p)) for p in path]
    return ".".join(parts) or "(top level)"


@lru_cache(maxsize=4)
def _schema(path: str) -> dict:
    import yaml

    with open(path) as fh:
        return yaml.safe_load(fh)


def schema(path: str | os.PathLike = SCHEMA) -> dict:
    """The config schema (a fresh copy)."""
    return copy.deepcopy(_schema(str(path)))


def check(config: dict, schema_path: str | os.PathLike = SCHEMA) -> None:
    """Validate ``config`` against the schema; raise :class:`ConfigError` naming the key at fault.

    Reports the most specific error: for an unknown key the key itself and the
    keys allowed there, for a bad value its dotted path and what is allowed. A
    schema node may carry ``errorMessage`` to say why a value is refused.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema(str(schema_path)))
    errors = list(validator.iter_errors(config))
    if not errors:
        check_finite(config)
        return
    err = jsonschema.exceptions.best_match(errors)
    while err.context:  # descend into allOf/if-then to the concrete failure
        err = jsonschema.exceptions.best_match(err.context)
    where = dotted(err.absolute_path)
    if isinstance(err.schema, dict) and "errorMessage" in err.schema:
        raise ConfigError(f"{where}: {err.schema['errorMessage']}")
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        keys = ", ".join(dotted([*err.absolute_path, k]) for k in extra)
        raise ConfigError(f"{keys}: unknown key; allowed here: {', '.join(allowed)}")
    if err.validator == "enum":
        raise ConfigError(f"{where}: {err.instance!r} is not one of {err.validator_value}")
    raise ConfigError(f"{where}: {err.message}")


def check_finite(node, path=()) -> None:
    """Refuse ``.inf``, ``-.inf`` and ``.nan`` anywhere: no config value means them (the schema's bounds let them by)."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{dotted(path)}: {node!r} is not a finite number")
    if isinstance(node, dict):
        for k, v in node.items():
            check_finite(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            check_finite(v, (*path, i))


def read_file(path: str | os.PathLike) -> dict:
    """A config file (YAML, or JSON) read strictly: a key given twice in one mapping is a :class:`ConfigError`.

    YAML parsers, Snakemake's among them, keep the last of duplicated keys
    without a word (a network defined twice runs as the second definition);
    this names the key and both lines.
    """
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _no_duplicates(node, loader, (), path)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        try:  # JSON that YAML cannot read (tabs): Snakemake reads JSON first
            data = json.loads(text, object_pairs_hook=lambda pairs: _json_object(pairs, path))
        except ConfigError:
            raise
        except ValueError:
            raise ConfigError(f"(top level): {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"(top level): {path} holds {type(data).__name__}, not a mapping of keys")
    return data


def _no_duplicates(node, loader, path: tuple, file, seen=None) -> None:
    import yaml

    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias of a node already walked
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: merged keys may be overridden
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                key = repr(key)
            line = key_node.start_mark.line + 1
            if key in lines:
                raise ConfigError(f"{dotted((*path, key))}: given twice in {file} (lines {lines[key]} and {line}); "
                                  "YAML would silently keep the second one only: remove or rename one")
            lines[key] = line
            _no_duplicates(value_node, loader, (*path, key), file, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _no_duplicates(item, loader, (*path, i), file, seen)


def _json_object(pairs, file) -> dict:
    out = {}
    for k, v in pairs:
        if k in out:
            raise ConfigError(f"{dotted([k])}: given twice in one object of {file}; JSON readers keep the second "
                              "one only: remove or rename one")
        out[k] = v
    return out


def check_files(paths) -> None:
    """Read every config file strictly (:func:`read_file`): duplicated keys are refused, naming key and lines."""
    for p in paths or ():
        read_file(p)


def _resolve(node: dict, root: dict) -> dict:
    """Follow ``$ref`` (local references only); sibling keys of a ``$ref`` win over the target's."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"schema: only local references are supported, got {ref!r}")
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def fill_defaults(instance, node: dict, root: dict) -> None:
    """Fill every ``default`` of schema ``node`` into ``instance`` (in place), recursively.

    Handles ``properties``, ``additionalProperties`` and ``items`` with a
    schema, ``$ref``, and ``allOf`` of ``if``/``then``/``else`` (the branch
    that applies to the instance). A missing object whose schema has a
    ``default`` (for example ``{}``) is created and then filled in turn.
    """
    import jsonschema

    node = _resolve(node, root)
    if isinstance(instance, dict):
        for sub in node.get("allOf", []):  # branches first: they may create blocks whose defaults follow
            sub = _resolve(sub, root)
            if "if" in sub:
                cond = jsonschema.Draft202012Validator({**sub["if"], "$defs": root.get("$defs", {})})
                branch = sub.get("then") if cond.is_valid(instance) else sub.get("else")
                if branch:
                    fill_defaults(instance, branch, root)
            else:
                fill_defaults(instance, sub, root)
        props = node.get("properties", {})
        for key, sub in props.items():
            sub = _resolve(sub, root)
            if key not in instance and isinstance(sub, dict) and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
        extra = node.get("additionalProperties")
        for key, value in instance.items():
            if key in props:
                fill_defaults(value, props[key], root)
            elif isinstance(extra, dict):
                fill_defaults(value, extra, root)
    elif isinstance(instance, list) and isinstance(node.get("items"), dict):
        for value in instance:
            fill_defaults(value, node["items"], root)


def load(config: dict, schema_path: str | os.PathLike = SCHEMA) -> dict:
    """Validate ``config`` and return a copy with every schema default filled in."""
    check(config, schema_path)
    out = copy.deepcopy(config)
    root = _schema(str(schema_path))
    fill_defaults(out, root, root)
    return out


def defaults(fragment: str, instance: dict | None = None, schema_path: str | os.PathLike = SCHEMA) -> dict:
    """``instance`` (default empty) completed with the defaults of schema fragment ``#/$defs/NAME``.

    For code that takes one block of a config outside a whole config (tests,
    benchmarks): ``defaults("train", {"architecture": "cnn"})``.
    """
    root = _schema(str(schema_path))
    out = copy.deepcopy(instance or {})
    fill_defaults(out, {"$ref": f"#/$defs/{fragment}"}, root)
    return out


def expand(path: str) -> Path:
    """A config path with ``~`` and ``$VARS`` expanded."""
    return Path(os.path.expandvars(os.path.expanduser(str(path))))


def reference_markdown(schema_path: str | os.PathLike = SCHEMA) -> str:
    """Every config key of the schema as Markdown tables: dotted path, type, default, description.

    ``$ref`` is resolved; an object whose ``allOf`` branches on a key's value
    (a dataset's ``kind``, a network's ``source``) gets one table per branch,
    and other ``if``/``then``/``else`` branches (defaults or refusals that
    depend on another key) are written into the rows they change. The output
    is the generated part of ``docs/configuration.md`` (``tests/test_docs.py``
    checks that it is current).
    """
    root = _schema(str(schema_path))

    def res(node):
        return _resolve(node, root) if isinstance(node, dict) else node

    def cell(text) -> str:
        text = " ".join(str(text).split())
        for a, b in (("|", "\\|"), ("*", "\\*"), ("<", "&lt;")):
            text = text.replace(a, b)
        return text

    def value(v) -> str:
        return f"`{v}`" if isinstance(v, str) else f"`{json.dumps(v)}`"

    def bounds(s) -> str:
        lo = ("(", s["exclusiveMinimum"]) if "exclusiveMinimum" in s else ("[", s.get("minimum"))
        hi = (")", s["exclusiveMaximum"]) if "exclusiveMaximum" in s else ("]", s.get("maximum"))
        if lo[1] is not None and hi[1] is not None:
            return f"in {lo[0]}{lo[1]}, {hi[1]}{hi[0]}"
        if lo[1] is not None:
            return f"{'>' if lo[0] == '(' else '≥'} {lo[1]}"
        return f"{'<' if hi[0] == ')' else '≤'} {hi[1]}" if hi[1] is not None else ""

    def kind(s, plural=False) -> str:
        s = res(s)
        if "const" in s:
            return value(s["const"])
        if "enum" in s:
            return "one of " + ", ".join(value(v) for v in s["enum"])
        if "anyOf" in s:
            return " or ".join(kind(x, plural) for x in s["anyOf"])
        types = s.get("type", [])
        parts = []
        for t in types if isinstance(types, list) else [types]:
            if t == "array":
                item = kind(s.get("items", {}), plural=True) or "values"
                lo, hi = s.get("minItems"), s.get("maxItems")
                text = f"list of {lo} {item}" if lo is not None and lo == hi else f"list of {item}"
                extra = [f"at least {lo}" if lo is not None and lo != hi else "",
                         f"at most {hi}" if hi is not None and lo != hi else "",
                         "no repeats" if s.get("uniqueItems") else "",
                         f"must include {kind(s['contains'])}" if "contains" in s else ""]
                extra = ", ".join(e for e in extra if e)
                parts.append(f"{text} ({extra})" if extra else text)
            elif t in ("number", "integer"):
                word = t + ("s" if plural else "")
                parts.append(" ".join(p for p in (word, bounds(s)) if p))
            elif t == "string":
                word = "strings" if plural else "string"
                parts.append(f"{word} matching `{s['pattern']}`" if "pattern" in s else word)
            elif t == "object" and isinstance(s.get("additionalProperties"), dict):
                ref = s["additionalProperties"].get("$ref", "")
                least = f" (at least {s['minProperties']})" if "minProperties" in s else ""
                parts.append(f"mapping of names to {ref.rsplit('/', 1)[-1] or 'values'}s{least}")
            elif t == "object":
                parts.append("mappings" if plural else "mapping")
            elif t == "boolean":
                parts.append("booleans" if plural else "boolean")
            else:
                parts.append(str(t))
        return " or ".join(parts)

    def condition(cond) -> str:
        props = cond.get("properties", {})
        named = [f"`{k}` is {value(res(v)['const'])}" for k, v in props.items() if "const" in res(v)]
        named += [f"`{k}` is given" for k in cond.get("required", []) if k not in props]
        return " and ".join(named)

    def discriminator(node):
        """The key whose value picks a branch of ``allOf`` (kind, source), or None."""
        for sub in node.get("allOf", []):
            sub = res(sub)
            props = sub.get("then", {}).get("properties", {})
            for key, p in sub.get("if", {}).get("properties", {}).items():
                if "const" in p and "const" in res(props.get(key, {})):
                    return key
        return None

    class Row:
        def __init__(self, path, s, required):
            self.path, self.s, self.required = path, s, required
            self.defaults, self.notes = [], []

        def render(self) -> str:
            s = self.s
            default = [value(s["default"])] if "default" in s else []
            default += self.defaults
            if self.required and not default:
                default = ["required"]
            desc = cell(s.get("description", ""))
            if desc and self.notes and not desc.endswith("."):
                desc += "."
            desc = " ".join([desc, *self.notes]).strip()
            return f"| `{'.'.join(self.path)}` | {cell(kind(s))} | {'; '.join(default)} | {desc} |"

    def rows(node, path, skip=()) -> list:
        node = res(node)
        out, index = [], {}
        required = node.get("required", [])
        for key, sub in node.get("properties", {}).items():
            if key in skip:
                continue
            sub = res(sub)
            row = Row([*path, key], sub, key in required)
            out.append(row)
            index[key] = row
            if "properties" in sub and discriminator(sub) is None:
                inner = rows(sub, [*path, key])
                out += inner
                index.update({".".join(r.path[len(path):]): r for r in inner})
        if discriminator(node) is None:
            for sub in node.get("allOf", []):
                sub = res(sub)
                if "if" in sub:
                    cond = condition(sub["if"])
                    for branch, when in (("then", f"when {cond}"), ("else", f"unless {cond}")):
                        if branch in sub:
                            modify(sub[branch], [], index, out, path, when)
        return out

    def modify(branch, rel, index, out, path, when) -> None:
        for key, sub in res(branch).get("properties", {}).items():
            sub = res(sub)
            name = ".".join([*rel, key])
            row = index.get(name)
            if row is None:
                row = index[name] = Row([*path, *rel, key], {}, False)
                out.append(row)
            if "not" in sub:
                reason = f": {cell(sub['errorMessage'])}" if "errorMessage" in sub else ""
                row.notes.append(f"Refused {when}{reason}.")
            if "default" in sub:
                row.defaults.append(f"{value(sub['default'])} {when}")
            if "properties" in sub:
                modify(sub, [*rel, key], index, out, path, when)

    def table(rs) -> list:
        return ["| key | type | default | description |", "|---|---|---|---|", *(r.render() for r in rs), ""]

    def branched(node, path, title) -> list:
        """A table of the keys every branch shares, then one table per branch."""
        node = res(node)
        disc = discriminator(node)
        common = list(node.get("properties", {}))
        lines = [f"### {title}", ""]
        if "description" in node:
            lines += [cell(node["description"]), ""]
        lines += table(rows(node, path))
        shared = [res(sub) for sub in node.get("allOf", [])  # conditions of every branch (not one branch's own)
                  if "if" in res(sub) and res(res(sub).get("then", {}).get("properties", {}).get(disc, {})).get(
                      "const") is None]
        for sub in node.get("allOf", []):
            sub = res(sub)
            branch = res(sub.get("then", {}))
            const = res(branch.get("properties", {}).get(disc, {})).get("const")
            if const is None:
                continue
            lines += [f"#### {disc}: {const}", ""]
            if "description" in branch:
                lines += [cell(branch["description"]), ""]
            if "oneOf" in branch:
                alts = [" and ".join(f"`{k}`" for k in alt.get("required", [])) for alt in branch["oneOf"]]
                lines += [f"Exactly one of {', '.join(alts)} is given.", ""]
            branch_rows = rows(branch, path, skip=common)
            index = {".".join(r.path[len(path):]): r for r in branch_rows}
            for cond in shared:  # the defaults they give the branch's own keys
                for key, sub_key in res(cond["then"]).get("properties", {}).items():
                    if key in index and "default" in res(sub_key):
                        index[key].defaults.append(f"{value(res(sub_key)['default'])} when {condition(cond['if'])}")
            lines += table(branch_rows)
        return lines

    experiments = root["properties"]["experiments"]
    experiment = res(experiments["additionalProperties"])
    networks = experiment["properties"]["networks"]
    top = [cell(root["description"]), "", "### Top level", "", *table(rows(root, []))]
    exp_path = ["experiments", "NAME"]
    lines = [*top, "### Experiment", "",
             f"Keys of `experiments.NAME`; NAME matches `{experiments['propertyNames']['pattern']}`. "
             "The keys of `dataset` and of each network follow below.", "", *table(rows(experiment, exp_path))]
    lines += branched(experiment["properties"]["dataset"], [*exp_path, "dataset"], "Dataset")
    lines += branched(networks["additionalProperties"], [*exp_path, "networks", "KEY"], "Network")
    return "\n".join(lines).rstrip() + "\n"


REFERENCE_MARKERS = tuple(f"<!-- {w} generated by embmap.config.reference_markdown -->" for w in ("BEGIN", "END"))


def write_reference(path: str | os.PathLike, schema_path: str | os.PathLike = SCHEMA) -> None:
    """Replace the text between :data:`REFERENCE_MARKERS` in ``path`` (``docs/configuration.md``) with
    :func:`reference_markdown` (``python -m embmap reference docs/configuration.md``)."""
    path = Path(path)
    text = path.read_text()
    begin, end = REFERENCE_MARKERS
    if begin not in text or end not in text:
        raise ValueError(f"{path}: no {begin} ... {end} markers to write the reference between")
    head, rest = text.split(begin, 1)
    path.write_text(head + begin + "\n" + reference_markdown(schema_path) + rest[rest.index(end):])
