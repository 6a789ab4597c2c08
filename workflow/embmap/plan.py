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
import re
from dataclasses import dataclass, field
from pathlib import Path

TASKS = ("closed_set", "open_set")
METHODS = ("native", "ridge", "analytic", "identity")
IMAGE_KINDS = ("imagenet", "image_list")
DEFAULT_CROP_FRACTION = 0.875
# input defaults of the architectures built from checkpoints (embmap.inception_v4)
CHECKPOINT_INPUT = {"inception_v4": {"input_size": [299, 299], "input_range": [-1.0, 1.0]}}
PAIRS_SPLIT = "pairs"  # the one split of an open_set experiment: the images its pairs file names
PAIRS_KINDS = ("lfw", "digit_pairs")  # dataset kinds whose images come with a pairs file


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

    @property
    def is_model(self) -> bool:
        """A model this run reads images with (not a bring-your-own store)."""
        return self.source != "zarr"


@dataclass
class Experiment:
    name: str
    spec: dict
    networks: dict[str, Network] = field(default_factory=dict)
    pairs_file: str | None = None  # open_set: the pairs file (written by the workflow for digit_pairs)

    @property
    def task(self) -> str:
        return self.spec["task"]

    @property
    def dataset(self) -> dict:
        """The config's dataset block; a ``digit_pairs`` block also names the pairs file the workflow writes."""
        d = self.spec["dataset"]
        if d["kind"] == "digit_pairs" and self.pairs_file:
            return {**d, "pairs": self.pairs_file}
        return d

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
    def identification(self) -> dict:
        return {"folds": 5, "seed": 0, **self.spec.get("identification", {})}

    @property
    def splits(self) -> list[str]:
        if self.task == "open_set":
            return [PAIRS_SPLIT]
        return list(dict.fromkeys([self.fit_split, self.eval_split]))

    @property
    def uses_manifest(self) -> bool:
        return self.dataset["kind"] != "embeddings"

    @property
    def reads_image_files(self) -> bool:
        return self.dataset["kind"] in IMAGE_KINDS

    @property
    def preprocessing(self) -> dict:
        return dict(self.spec.get("preprocessing", {}))


SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


def dotted(path) -> str:
    """A config path as users write it: ``experiments.digits.mapping.alpha``; odd keys are quoted."""
    parts = [str(p) if re.fullmatch(r"[A-Za-z0-9_-]+", str(p)) else json.dumps(str(p)) for p in path]
    return ".".join(parts) or "(top level)"


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
    where = dotted(err.absolute_path)
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        keys = ", ".join(dotted([*err.absolute_path, k]) for k in extra)
        raise ConfigError(f"{keys}: unknown key; allowed here: {allowed}")
    if err.validator == "enum":
        raise ConfigError(f"{where}: {err.instance!r} is not one of {err.validator_value}")
    if err.validator == "required":
        raise ConfigError(f"{where}: {err.message}")
    raise ConfigError(f"{where}: {err.message}")


def align_key(spec: dict) -> str:
    """A file name for an ``align`` block: ``facenet160m32``, ``arcface112`` (see embmap.faces for defaults)."""
    if spec["style"] == "facenet":
        return f"facenet{spec.get('size', 160)}m{spec.get('margin', 32)}"
    return f"arcface{spec.get('size', 112)}"


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
            self._check_task(exp, check_paths)
            if exp.task == "closed_set" and exp.fit_split == exp.eval_split:
                raise ConfigError(
                    f"experiments.{name}.eval_split: equals fit_split ({exp.fit_split!r}); "
                    "maps must be measured on images they were not fitted on"
                )
            if check_paths:
                self._check_dataset(f"experiments.{name}.dataset", exp.dataset)
            dkey = _dataset_key(exp.dataset)
            # controls last, as in the paper's tables (their rows and columns close the matrix)
            ordered = [k for k in nets if not nets[k].get("control")] + [k for k in nets if nets[k].get("control")]
            for key in ordered:
                nspec = nets[key]
                where = f"experiments.{name}.networks.{key}"
                self._check_network(where, nspec, exp, check_paths)
                owner = name
                if nspec["source"] != "zarr":
                    defines = (nspec, resolve_preprocessing(nspec, exp))
                    shared = owners.get((dkey, key))
                    if shared is None:
                        owners[(dkey, key)] = (name, defines)
                    elif shared[1] != defines:
                        raise ConfigError(
                            f"{where}: experiment {shared[0]!r} defines network {key!r} differently on the "
                            "same dataset; a network key names one network per dataset, rename one of them"
                        )
                    else:
                        owner = shared[0]
                exp.networks[key] = Network(key, nspec, owner)
            self.experiments[name] = exp

    # -- checks -----------------------------------------------------------------
    def _check_dataset(self, where: str, dataset: dict) -> None:
        """Paths of image datasets exist (listing the images waits for the prepare_split job)."""
        kind = dataset.get("kind")
        if kind == "imagenet":
            root = self._path(dataset["root"])
            for sub in ("train", "val"):
                if not (root / sub).is_dir():
                    raise ConfigError(f"{where}.root: no {sub}/ folder in {root} (expected ILSVRC2012's "
                                      "train/<wnid>/*.JPEG and val/)")
            for k in ("synsets", "devkit", "val_labels"):
                if k in dataset:
                    q = Path(os.path.expandvars(os.path.expanduser(dataset[k])))
                    q = q if q.is_absolute() else root / q
                    if not q.exists():
                        raise ConfigError(f"{where}.{k}: {q} does not exist")
        elif kind == "image_list":
            p = self._path(dataset["path"])
            if not p.is_file():
                raise ConfigError(f"{where}.path: no image list at {p}")

    def _check_task(self, exp: Experiment, check_paths: bool) -> None:
        where = f"experiments.{exp.name}"
        kind = exp.dataset["kind"]
        if exp.task == "closed_set":
            if kind in PAIRS_KINDS:
                raise ConfigError(f"{where}.dataset.kind: {kind!r} holds verification pairs; use task open_set")
            if "identification" in exp.spec:
                raise ConfigError(f"{where}.identification: only task open_set identifies faces")
            return
        if kind == "digits":
            raise ConfigError(f"{where}.dataset.kind: open_set needs pairs; use digit_pairs, lfw or embeddings "
                              "with a pairs file")
        if kind == "digit_pairs":
            exp.pairs_file = f"{self.exp_dir(exp.name)}/data/pairs.txt"
            return
        if "pairs" not in exp.dataset:
            raise ConfigError(f"{where}.dataset.pairs: open_set needs a pairs file in LFW format")
        exp.pairs_file = str(self._path(exp.dataset["pairs"]))
        if check_paths and not Path(exp.pairs_file).is_file():
            raise ConfigError(f"{where}.dataset.pairs: no pairs file at {exp.pairs_file}")

    def _check_network(self, where: str, spec: dict, exp: Experiment, check_paths: bool) -> None:
        source = spec.get("source")
        if exp.reads_image_files and source not in ("zarr",):
            if source == "train":
                raise ConfigError(f"{where}.source: 'train' trains the demo architectures on digits only; "
                                  "image files take savedmodel, tfhub or checkpoint networks")
            if not resolve_preprocessing(spec, exp).get("input_size"):
                raise ConfigError(f"{where}.input_size: networks reading image files need their input size "
                                  "(or the experiment's preprocessing.input_size)")
        if source == "tfhub":
            if exp.task == "closed_set" and "classifier" not in spec:
                raise ConfigError(f"{where}.classifier: closed_set needs the network's classifier; give the TF Hub "
                                  "handle of its classification model")
            for k in ("handle", "classifier"):
                h = spec.get(k, "")
                if check_paths and h.startswith(("/", "./", "../", "~", "file://")):
                    p = self._path(h.removeprefix("file://"))
                    if not p.exists():
                        raise ConfigError(f"{where}.{k}: no SavedModel at {p}")
        elif source == "checkpoint":
            p = self._path(spec["checkpoint"])
            if check_paths and not (p.exists() or p.with_name(p.name + ".index").exists()):
                raise ConfigError(f"{where}.checkpoint: no checkpoint at {p} (nor {p.name}.index)")
        elif source == "savedmodel":
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
        elif source in ("frozen_graph", "arcface"):
            key = "graph" if source == "frozen_graph" else "checkpoint"
            if exp.task != "open_set":
                raise ConfigError(f"{where}.source: {source!r} networks have no classifier; use task open_set")
            p = self._path(spec[key])
            if check_paths and not (p.exists() or Path(f"{p}.index").exists()):
                raise ConfigError(f"{where}.{key}: nothing at {p}")
        elif source == "train":
            if exp.dataset["kind"] in ("embeddings", "lfw"):
                raise ConfigError(f"{where}.source: 'train' needs labelled training images, which dataset kind "
                                  f"{exp.dataset['kind']!r} does not have")
            part = spec["train"].get("part")
            if part and not 0 <= part[0] < part[1]:
                raise ConfigError(f"{where}.train.part: {part} must be [i, k] with 0 <= i < k")
        else:
            raise ConfigError(f"{where}.source: unknown source {source!r}; use savedmodel, tfhub, checkpoint, zarr, "
                              "train, frozen_graph or arcface")
        if "align" in spec and exp.dataset["kind"] != "lfw":
            raise ConfigError(f"{where}.align: face alignment needs photographs (dataset kind lfw), "
                              f"not {exp.dataset['kind']!r}")
        if exp.dataset["kind"] == "embeddings" and source != "zarr":
            raise ConfigError(f"{where}.source: dataset kind 'embeddings' takes zarr networks only")

    def _path(self, p: str) -> Path:
        q = Path(os.path.expandvars(os.path.expanduser(p)))
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

    def aligned(self, exp: str, network: str) -> str | None:
        """The cached crops a network reads (``aligned/KEY.zarr`` of the experiment owning it), or None."""
        net = self.network(exp, network)
        if "align" not in net.spec:
            return None
        return f"{self.exp_dir(net.owner)}/aligned/{align_key(net.spec['align'])}.zarr"

    def pairs_file(self, exp: str) -> str:
        """The pairs file of an open_set experiment."""
        p = self.experiments[exp].pairs_file
        if p is None:
            raise ConfigError(f"experiments.{exp}: task {self.experiments[exp].task!r} has no pairs file")
        return p

    def tables(self, exp: str) -> list[str]:
        d = f"{self.exp_dir(exp)}/tables"
        if self.experiments[exp].task == "open_set":
            return [f"{d}/open_set.csv", f"{d}/open_set_folds.csv", f"{d}/open_set_matrix.csv", f"{d}/open_set.json",
                    f"{d}/identification.csv", f"{d}/identification_matrix.csv"]
        return [f"{d}/closed_set.csv", f"{d}/closed_set_matrix.csv"]

    def figures(self, exp: str) -> list[str]:
        d = f"{self.exp_dir(exp)}/figures"
        names = ["open_set", "identification"] if self.experiments[exp].task == "open_set" else ["closed_set"]
        return [f"{d}/{n}_heatmap.{ext}" for n in names for ext in ("png", "svg")]

    def network_table(self, exp: str) -> str:
        """Table 1: one row per network (handle, feature dimension, parameters, input size, native top-1)."""
        return f"{self.exp_dir(exp)}/tables/networks.csv"

    def targets(self) -> list[str]:
        out = []
        for name in self.experiments:
            out += self.tables(name) + self.figures(name)
            if self.experiments[name].task == "closed_set":
                out.append(self.network_table(name))
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

    def preprocessing(self, exp: str, network: str) -> dict:
        """The resolved preprocessing of ``network`` in ``exp`` (see :func:`resolve_preprocessing`)."""
        return resolve_preprocessing(self.network(exp, network).spec, self.experiments[exp])


def resolve_preprocessing(spec: dict, exp: Experiment) -> dict:
    """``input_size``, ``input_range`` and, for image files, ``crop_fraction`` of one network.

    The experiment's ``preprocessing.input_size`` (the paper's single 331 crop)
    replaces the network's own size unless the network is ``fixed_input``;
    ``crop_fraction`` comes from the network, else the experiment, else 0.875.
    Unset values are left out.
    """
    base = CHECKPOINT_INPUT.get(spec.get("architecture"), {}) if spec.get("source") == "checkpoint" else {}
    common = exp.preprocessing
    out = {}
    size = spec.get("input_size", base.get("input_size"))
    if common.get("input_size") and not spec.get("fixed_input", False):
        size = common["input_size"]
    if size:
        out["input_size"] = [int(v) for v in size]
    value_range = spec.get("input_range", base.get("input_range"))
    if value_range:
        out["input_range"] = [float(v) for v in value_range]
    if exp.reads_image_files:
        out["crop_fraction"] = float(spec.get("crop_fraction", common.get("crop_fraction", DEFAULT_CROP_FRACTION)))
    return out
