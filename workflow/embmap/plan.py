"""Resolve a validated config into the experiments, stores and targets of a run.

This module uses the standard library only: the Snakefile imports it while
parsing, before any rule environment exists. The JSON schema
(``workflow/schemas/config.schema.yaml``) checks types and key names; this
module checks what a schema cannot (paths that must exist, names that must
agree, networks shared between experiments) and names the offending key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

TASKS = ("closed_set",)
METHODS = ("native", "ridge", "analytic", "identity")


class ConfigError(ValueError):
    """A config problem; the message starts with the dotted key at fault."""


@dataclass(frozen=True)
class Network:
    """One network of one experiment.

    ``owner`` is the experiment whose results folder holds this network's
    model and stores; it differs from the experiment using the network when
    an earlier experiment already extracts the same network on the same data.
    """

    key: str
    spec: dict
    owner: str

    @property
    def source(self) -> str:
        return self.spec["source"]

    @property
    def label(self) -> str:
        default = self.key + ("*" if self.control else "")
        return self.spec.get("label", default)

    @property
    def control(self) -> bool:
        return bool(self.spec.get("control", False))

    @property
    def trained_here(self) -> bool:
        return self.source == "train"


@dataclass
class Experiment:
    name: str
    spec: dict
    networks: dict[str, Network] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.spec["task"]

    @property
    def dataset(self) -> dict:
        return self.spec["dataset"]

    @property
    def fit_split(self) -> str:
        return self.spec.get("fit_split", "train")

    @property
    def eval_split(self) -> str:
        return self.spec.get("eval_split", "test")

    @property
    def mapping(self) -> dict:
        return {"alpha": 1.0, "precision": "float64", "folds": 5, "shards": 1, **self.spec.get("mapping", {})}

    @property
    def alphas(self) -> list[float]:
        """Candidate ridge penalties; more than one means K-fold cross-validation."""
        a = self.mapping["alpha"]
        return [float(v) for v in a] if isinstance(a, list) else [float(a)]

    @property
    def cv_folds(self) -> int:
        """Folds the pass keeps blocks for: ``mapping.folds`` when alpha is a list, else 1."""
        return int(self.mapping["folds"]) if len(self.alphas) > 1 else 1

    @property
    def shards(self) -> int:
        """Jobs the pass over the fit split is cut into (``mapping.shards``)."""
        return int(self.mapping["shards"])

    @property
    def store_options(self) -> dict:
        return {"chunk_rows": 1024, "batch_size": 256, **self.spec.get("store", {})}

    @property
    def splits(self) -> list[str]:
        return list(dict.fromkeys([self.fit_split, self.eval_split]))

    @property
    def uses_manifest(self) -> bool:
        return self.dataset["kind"] != "embeddings"


SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


def _dotted(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def check_schema(config: dict, schema_path: str | os.PathLike = SCHEMA) -> None:
    """Validate ``config`` against the JSON schema; raise :class:`ConfigError` naming the key at fault.

    Reports the most specific error (for an unknown key, the key itself; for a
    bad value, its dotted path and the allowed values).
    """
    import jsonschema
    import yaml

    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(config))
    if not errors:
        return
    err = jsonschema.exceptions.best_match(errors)
    while err.context:  # descend into allOf/if-then to the concrete failure
        err = jsonschema.exceptions.best_match(err.context)
    where = _dotted(err.absolute_path)
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        keys = ", ".join(f"{where}.{k}" if err.absolute_path else k for k in extra)
        raise ConfigError(f"{keys}: unknown key; allowed here: {allowed}")
    if err.validator == "enum":
        raise ConfigError(f"{where}: {err.instance!r} is not one of {err.validator_value}")
    if err.validator == "required":
        raise ConfigError(f"{where}: {err.message}")
    raise ConfigError(f"{where}: {err.message}")


def _dataset_key(dataset: dict) -> str:
    return json.dumps(dataset, sort_keys=True)


def _is_url(handle: str) -> bool:
    return "://" in handle and not handle.startswith("file://")


class Plan:
    """Everything the Snakefile needs to know about a config.

    Parameters
    ----------
    config : dict
        The config after schema validation.
    root : path, default "."
        Directory that relative paths in the config are resolved against
        (the snakemake working directory).
    check_paths : bool, default True
        Check that local handles and ``zarr`` store directories exist.
    """

    def __init__(self, config: dict, root: str | os.PathLike = ".", check_paths: bool = True):
        self.config = config
        self.root = Path(root)
        self.results = config.get("results", "results")
        self.experiments: dict[str, Experiment] = {}
        owners: dict[tuple[str, str], tuple[str, dict]] = {}
        experiments = config.get("experiments") or {}
        if not experiments:
            raise ConfigError("experiments: the config defines no experiment")
        for name, spec in experiments.items():
            exp = Experiment(name, spec)
            nets = spec.get("networks") or {}
            if len(nets) < 2:
                raise ConfigError(
                    f"experiments.{name}.networks: at least two networks are needed to map between, got {len(nets)}"
                )
            if exp.fit_split == exp.eval_split:
                raise ConfigError(
                    f"experiments.{name}.eval_split: equals fit_split ({exp.fit_split!r}); "
                    "maps must be measured on images they were not fitted on"
                )
            dkey = _dataset_key(exp.dataset)
            for key, nspec in nets.items():
                where = f"experiments.{name}.networks.{key}"
                self._check_network(where, nspec, exp, check_paths)
                owner = name
                if nspec["source"] != "zarr":
                    shared = owners.get((dkey, key))
                    if shared is None:
                        owners[(dkey, key)] = (name, nspec)
                    elif shared[1] != nspec:
                        raise ConfigError(
                            f"{where}: experiment {shared[0]!r} defines network {key!r} differently on the "
                            "same dataset; a network key names one network per dataset, rename one of them"
                        )
                    else:
                        owner = shared[0]
                exp.networks[key] = Network(key, nspec, owner)
            self.experiments[name] = exp

    # -- checks -----------------------------------------------------------------
    def _check_network(self, where: str, spec: dict, exp: Experiment, check_paths: bool) -> None:
        source = spec.get("source")
        if source == "savedmodel":
            if "handle" not in spec:
                raise ConfigError(f"{where}.handle: a savedmodel network needs a handle (URL or directory)")
            if exp.task == "closed_set" and "classifier" not in spec:
                raise ConfigError(
                    f"{where}.classifier: closed_set needs the network's classifier; give the handle of its "
                    "classification model"
                )
            for k in ("handle", "classifier"):
                h = spec.get(k)
                if h and check_paths and not _is_url(h):
                    p = self._path(h.removeprefix("file://"))
                    if not p.exists():
                        raise ConfigError(f"{where}.{k}: no SavedModel at {p}")
        elif source == "zarr":
            if "path" not in spec:
                raise ConfigError(f"{where}.path: a zarr network needs the directory holding its stores")
            if check_paths:
                for split in exp.splits:
                    p = self._path(spec["path"]) / f"{split}.zarr"
                    if not (p / "zarr.json").exists():
                        raise ConfigError(f"{where}.path: no store for split {split!r} at {p}")
        elif source == "train":
            if exp.dataset["kind"] == "embeddings":
                raise ConfigError(f"{where}.source: 'train' needs images, but the dataset kind is 'embeddings'")
        else:
            raise ConfigError(f"{where}.source: unknown source {source!r}; use savedmodel, zarr or train")
        if exp.dataset["kind"] == "embeddings" and source != "zarr":
            raise ConfigError(f"{where}.source: dataset kind 'embeddings' takes zarr networks only")

    def _path(self, p: str) -> Path:
        q = Path(os.path.expanduser(p))
        return q if q.is_absolute() else self.root / q

    # -- paths ------------------------------------------------------------------
    def exp_dir(self, exp: str) -> str:
        return f"{self.results}/{exp}"

    def manifest(self, exp: str) -> str:
        return f"{self.exp_dir(exp)}/data/manifest.csv"

    def model_dir(self, exp: str, network: str) -> str:
        return f"{self.exp_dir(self.experiments[exp].networks[network].owner)}/models/{network}"

    def store(self, exp: str, network: str, split: str) -> str:
        """Path of the store holding ``network``'s embeddings of ``split`` for ``exp``."""
        net = self.experiments[exp].networks[network]
        if net.source == "zarr":
            return str(self._path(net.spec["path"]) / f"{split}.zarr")
        return f"{self.exp_dir(net.owner)}/embeddings/{network}/{split}.zarr"

    def stores(self, exp: str, split: str) -> dict[str, str]:
        return {k: self.store(exp, k, split) for k in self.experiments[exp].networks}

    def blocks(self, exp: str) -> str:
        return f"{self.exp_dir(exp)}/fit/blocks.zarr"

    def shard_partials(self, exp: str) -> list[str]:
        """The pass's per-shard partial block stores (temporary), one per shard."""
        return [f"{self.exp_dir(exp)}/fit/shards/{j}.zarr" for j in range(self.experiments[exp].shards)]

    def maps_dir(self, exp: str, source: str) -> str:
        return f"{self.exp_dir(exp)}/maps/{source}"

    def tables(self, exp: str) -> list[str]:
        d = self.exp_dir(exp)
        return [f"{d}/tables/closed_set.csv", f"{d}/tables/closed_set_matrix.csv"]

    def figures(self, exp: str) -> list[str]:
        d = self.exp_dir(exp)
        return [f"{d}/figures/closed_set_heatmap.png", f"{d}/figures/closed_set_heatmap.svg"]

    def targets(self) -> list[str]:
        out = []
        for name in self.experiments:
            out += self.tables(name) + self.figures(name)
        return out

    # -- lookups used by rules --------------------------------------------------
    def owned_stores(self) -> list[tuple[str, str, str]]:
        """(experiment, network, split) of every store this run extracts itself."""
        seen = []
        for name, exp in self.experiments.items():
            for key, net in exp.networks.items():
                if net.source != "zarr" and net.owner == name:
                    seen += [(name, key, s) for s in exp.splits]
        return seen

    def network(self, exp: str, network: str) -> Network:
        try:
            return self.experiments[exp].networks[network]
        except KeyError:
            raise ConfigError(f"experiments.{exp}.networks.{network}: not in the config") from None
